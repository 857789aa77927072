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


#: How many of the selected rows an action's confirmation page lists (it says how many there are in all).
CONFIRM_SAMPLE = 50


def action_selection(request, queryset, *, sample: int = CONFIRM_SAMPLE) -> dict:
    """Context for an admin action's confirmation page that works for any number of rows.

    "Select all N" (``select_across``) is carried on as ``select_across`` plus one row id, not as a
    hidden field per row — a form may post at most DATA_UPLOAD_MAX_NUMBER_FIELDS fields — and the
    changelist re-derives the rows from its filters, kept in the URL the page posts back to. Ticked
    rows come from one changelist page, well under that limit. Render the hidden fields with
    ``{% include "admin/includes/action_selection.html" %}``."""
    from django.contrib.admin import helpers

    select_across = request.POST.get("select_across") == "1"
    rows = list(queryset[:sample])
    count = queryset.count()
    return {
        "count": count,
        "sample": rows,
        "more": max(0, count - len(rows)),
        "select_across": select_across,
        "selected_ids": [row.pk for row in rows[:1]] if select_across else list(queryset.values_list("pk", flat=True)),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
