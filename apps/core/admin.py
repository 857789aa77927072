"""Platform admin pages, read-only: the staff login audit trail and the outbound call log, for Admins."""
from django.contrib import admin

from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin
from apps.core.models import AuthAudit, OutboundCall
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


@admin.register(OutboundCall)
class OutboundCallAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "name", "connection", "method", "url", "status_code", "outcome", "attempt",
                    "duration_ms", "error")
    list_filter = ("outcome", "name", "method", "status_code")
    search_fields = ("url", "connection", "error")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in OutboundCall._meta.fields]
    list_per_page = 100
    show_full_result_count = False  # the log grows large: no COUNT(*) over it on every page

    def can_view(self, request) -> bool:
        return user_has_role(request.user)
