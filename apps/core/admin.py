"""The staff login audit trail, read-only, for Admins."""
from django.contrib import admin

from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin
from apps.core.models import AuthAudit
from apps.core.roles import user_has_role


@admin.register(AuthAudit)
class AuthAuditAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "event", "username", "ip_address", "detail", "path")
    list_filter = ("event",)
    search_fields = ("username", "ip_address")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuthAudit._meta.fields]

    def can_view(self, request) -> bool:
        return user_has_role(request.user)
