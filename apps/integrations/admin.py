"""Back office for integrations (Admins only: these rows hold vendor credentials).

A connection's credentials are never shown back: each entry says "set" or "not set" and takes a new
value (``SecretFieldsMixin``). "Test connection" (button and list action) calls the vendor the way the
integration will and answers in plain words within 5 s; the page lists the connection's recent calls
from the outbound call log.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin_mixins import ReadOnlyAdminMixin
from apps.core.outbound.calllog import recent_calls
from apps.core.outbound.secrets_admin import SecretFieldsMixin
from apps.core.roles import user_has_role

from . import services
from .models import Connection, ConnectionKind, ExternalTask, PowerBIPush

#: the credential entries each kind's admin form offers
CREDENTIAL_KEYS = {
    ConnectionKind.ASANA: ["token"],
    ConnectionKind.JIRA: ["email", "api_token"],
    ConnectionKind.AEM: ["token", "username", "password"],
    ConnectionKind.BYNDER: ["token", "client_id", "client_secret"],
    ConnectionKind.APRIMO: ["client_id", "client_secret"],
    ConnectionKind.POWERBI: ["tenant_id", "client_id", "client_secret"],
}


class AdminOnlyMixin:
    def _allowed(self, request) -> bool:
        return user_has_role(request.user)

    def has_module_permission(self, request) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._allowed(request)


@admin.register(Connection)
class ConnectionAdmin(AdminOnlyMixin, SecretFieldsMixin, admin.ModelAdmin):
    change_form_template = "admin/integrations/connection/change_form.html"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "kind", "base_url", "enabled", "test_outcome", "last_tested_at")
    list_filter = ("kind", "enabled", "last_test_ok")
    search_fields = ("name", "base_url")
    actions = ["test_selected", "enable_selected", "disable_selected"]
    readonly_fields = ("test_outcome", "last_tested_at", "recent_calls_table", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "base_url", "enabled")}),
        ("Credentials", {"fields": ("credentials",),
                         "description": "Stored encrypted. Leave an entry blank to keep it; tick clear to remove it."}),
        ("Options", {"fields": ("options", "rate_per_second")}),
        ("Health", {"fields": ("test_outcome", "last_tested_at", "recent_calls_table", "created_at", "updated_at")}),
    )

    def get_secret_keys(self, request, obj, field_name):
        if obj is None:
            return sorted({key for keys in CREDENTIAL_KEYS.values() for key in keys})
        return CREDENTIAL_KEYS.get(obj.kind, [])

    @admin.display(description="Last test")
    def test_outcome(self, connection: Connection):
        if connection.last_test_ok is None:
            return "not tested"
        return format_html('<span style="color:{}">{}</span> {}', "#2a7" if connection.last_test_ok else "#c33",
                           "OK" if connection.last_test_ok else "Failed", connection.last_test_message)

    @admin.display(description="Recent calls")
    def recent_calls_table(self, connection: Connection):
        if connection.pk is None:
            return "—"
        rows = recent_calls(connection=str(connection.pk), limit=20)
        if not rows:
            return "No calls yet."
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td>"
                                    "<td>{}</td></tr>",
                                ((f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.method, r.url, r.status_code or "—",
                                  r.get_outcome_display(), r.duration_ms, r.error[:160]) for r in rows))
        return format_html('<table class="recent-calls"><thead><tr><th>When</th><th>Method</th><th>URL</th>'
                           "<th>Status</th><th>Outcome</th><th>Time</th><th>Error</th></tr></thead>"
                           "<tbody>{}</tbody></table>", body)

    def get_urls(self):
        return [path("<int:object_id>/test/", self.admin_site.admin_view(self.test_view),
                     name="integrations_connection_test"),
                path("creatives/<int:offer_id>/", self.admin_site.admin_view(self.creative_search_view),
                     name="integrations_creative_search"), *super().get_urls()]

    def creative_search_view(self, request, offer_id: int):
        """The offer form's creative library panel: search every DAM, import one asset (Marketers)."""
        from apps.campaigns import selectors as campaign_selectors
        from apps.core.exceptions import ServiceError
        from apps.core.roles import Role

        if not user_has_role(request.user, Role.MARKETER):
            raise PermissionDenied
        offer = campaign_selectors.offer_get_or_none(offer_id=offer_id)
        if offer is None:
            raise Http404("No such offer")
        if request.method == "POST":
            try:
                services.creative_import(offer_id=offer_id, connection_id=int(request.POST.get("connection_id", 0)),
                                         asset_id=request.POST.get("asset_id", ""), actor=request.user)
            except (ServiceError, ValueError) as exc:
                messages.error(request, getattr(exc, "message", str(exc)))
                return HttpResponseRedirect(request.get_full_path())
            messages.success(request, f"The creative of {offer.name} now comes from the DAM.")
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[offer.campaign_id]))
        q, source = request.GET.get("q", "")[:200], request.GET.get("source", "")
        kinds = [k.value for k in services.DAM_KINDS]
        result = services.creative_search(query=q, source=source if source in kinds else "")
        context = {**self.admin_site.each_context(request), "title": "Creative library", "offer": offer, "q": q,
                   "source": source, "kinds": kinds, "result": result}
        return TemplateResponse(request, "admin/integrations/creative_search.html", context)

    def test_view(self, request, object_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        connection = get_object_or_404(Connection, pk=object_id)
        if not self.has_change_permission(request, connection):
            messages.error(request, "Only Admins can test connections.")
        else:
            self._report(request, connection)
        return HttpResponseRedirect(reverse("admin:integrations_connection_change", args=[object_id]))

    def _report(self, request, connection: Connection) -> None:
        result = services.connection_test(connection_id=connection.pk)
        level = messages.SUCCESS if result.ok else messages.ERROR
        messages.add_message(request, level, f"{connection.name}: {result.message}")

    @admin.action(description="Test selected connections")
    def test_selected(self, request, queryset):
        for connection in queryset[:20]:
            self._report(request, connection)

    @admin.action(description="Enable selected connections")
    def enable_selected(self, request, queryset):
        for connection in queryset:  # save(): bumps updated_at, so adaptors pick the change up
            connection.enabled = True
            connection.save(update_fields=["enabled", "updated_at"])

    @admin.action(description="Disable selected connections")
    def disable_selected(self, request, queryset):
        for connection in queryset:
            connection.enabled = False
            connection.save(update_fields=["enabled", "updated_at"])


@admin.register(ExternalTask)
class ExternalTaskAdmin(ReadOnlyAdminMixin, AdminOnlyMixin, admin.ModelAdmin):
    list_display = ("campaign", "review_round", "connection", "state", "item_link", "external_status", "open",
                    "decision_cast", "decision_pushed", "note", "created_at")
    list_filter = ("state", "open", "connection")
    search_fields = ("external_key", "external_id", "campaign__name", "note")
    list_select_related = ("campaign", "connection")
    readonly_fields = [f.name for f in ExternalTask._meta.fields]

    @admin.display(description="Item")
    def item_link(self, task: ExternalTask):
        if not task.url:
            return task.external_key or task.external_id or "—"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', task.url,
                           task.external_key or task.external_id)


@admin.register(PowerBIPush)
class PowerBIPushAdmin(ReadOnlyAdminMixin, AdminOnlyMixin, admin.ModelAdmin):
    """Where each push dataset stands. A push whose answer was lost stops the dataset (shown in red
    with the batch's hours and rows): count those hours' rows in the Power BI table, then say which."""

    list_display = ("connection", "state", "dataset_id", "cursor", "cursor_offset", "rows_pushed", "last_push_at",
                    "note")
    list_filter = ("connection",)
    readonly_fields = [f.name for f in PowerBIPush._meta.fields]
    actions = ["resume_arrived", "resume_resend"]

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request)  # for the resume actions; every field stays read-only

    @admin.display(description="State")
    def state(self, push: PowerBIPush):
        if push.uncertain_from is None:
            return format_html('<span style="color:{}">pushing</span>', "#2a7")
        last = push.uncertain_to or push.uncertain_from
        return format_html(
            '<strong class="powerbi-needs-check" style="color:#c33">stopped: needs a check</strong><br>'
            "{} rows of {} to {} UTC sent, answer lost. Count those hours in the table, then use an action.",
            push.uncertain_rows, f"{push.uncertain_from:%Y-%m-%d %H:00}", f"{last:%Y-%m-%d %H:00}")

    def _resume(self, request, queryset, *, arrived: bool) -> None:
        for push in queryset:
            done = services.powerbi_resume(connection_id=push.connection_id, arrived=arrived,
                                           actor=request.user.get_username())
            messages.info(request, f"{push.connection.name}: {done}")

    @admin.action(description="Resume: the unconfirmed rows ARE in the table (skip them)")
    def resume_arrived(self, request, queryset):
        self._resume(request, queryset, arrived=True)

    @admin.action(description="Resume: the unconfirmed rows are NOT in the table (send them again)")
    def resume_resend(self, request, queryset):
        self._resume(request, queryset, arrived=False)
