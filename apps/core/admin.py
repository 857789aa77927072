"""Platform admin pages, read-only: the staff login audit trail, the outbound call log (with its
Excel export) and the background exports, for Admins."""
from django.contrib import admin, messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin
from apps.core.models import AuthAudit, ExportJob, ExportState, OutboundCall
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
    change_list_template = "admin/core/outboundcall/change_list.html"
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

    def get_urls(self):
        return [path("export/", self.admin_site.admin_view(self.export_view), name="core_outboundcall_export"),
                *super().get_urls()]

    def export_view(self, request):
        """The log (the changelist's client/outcome filters, and ?connection=) as .xlsx: inline when small,
        else a background export whose page shows the progress."""
        from apps.core.exports import export_respond

        if not self.can_view(request):
            raise Http404
        params = {"name": request.GET.get("name__exact", ""), "outcome": request.GET.get("outcome__exact", ""),
                  "connection": request.GET.get("connection", "")}
        answer = export_respond(kind="outbound_calls", params={k: v for k, v in params.items() if v},
                                actor=request.user)
        if isinstance(answer, ExportJob):
            messages.info(request, f"{answer.rows_total:,} rows: the export runs in the background.")
            return HttpResponseRedirect(reverse("admin:core_exportjob_change", args=[answer.pk]))
        return answer


@admin.register(ExportJob)
class ExportJobAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "requested_by", "state", "progress", "download", "finished_at")
    list_filter = ("state", "kind")
    readonly_fields = ("kind", "params", "requested_by", "state", "progress", "download", "error", "created_at",
                       "finished_at")
    fields = readonly_fields

    def can_view(self, request) -> bool:
        return request.user.is_active and request.user.is_staff

    def get_queryset(self, request):
        jobs = super().get_queryset(request)
        return jobs if user_has_role(request.user) else jobs.filter(requested_by=request.user)

    @admin.display(description="Progress")
    def progress(self, job: ExportJob):
        if job.rows_total:
            share = min(100.0, 100.0 * job.rows_done / job.rows_total)
            return format_html('<progress max="100" value="{}"></progress> {} of {} rows ({}%)', f"{share:.0f}",
                               f"{job.rows_done:,}", f"{job.rows_total:,}", f"{share:.0f}")
        return f"{job.rows_done:,} rows"

    @admin.display(description="File")
    def download(self, job: ExportJob):
        if job.state != ExportState.DONE:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:core_exportjob_download", args=[job.pk]),
                           job.file_name)

    def get_urls(self):
        return [path("<int:job_id>/download/", self.admin_site.admin_view(self.download_view),
                     name="core_exportjob_download"), *super().get_urls()]

    def download_view(self, request, job_id: int):
        from apps.core.exports import export_file

        job = get_object_or_404(self.get_queryset(request), pk=job_id, state=ExportState.DONE)
        return export_file(job)
