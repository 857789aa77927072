"""Admin building blocks every slice shares.

Audit trails, ledgers, events and other rows the services write are shown read-only: staff look,
nobody adds, edits or deletes them in the admin (a change goes through a service, which audits it).
"""
from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdminMixin:
    """No add, change or delete permission: mix into a ``ModelAdmin`` or an inline, before it.

    (The signatures take ``obj`` so the same methods serve both: an inline's ``has_add_permission``
    gets the parent object, a ``ModelAdmin``'s does not.)"""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    """A read-only table of child rows on the parent's page."""

    extra = 0
    can_delete = False


class ViewerAdminMixin:
    """The module and its rows are visible to whoever :meth:`can_view` allows (a role check),
    instead of Django's per-model view permission."""

    def can_view(self, request) -> bool:
        raise NotImplementedError

    def has_module_permission(self, request) -> bool:
        return self.can_view(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self.can_view(request)
