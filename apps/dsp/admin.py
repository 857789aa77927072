"""DSP admin: platforms (edits go through ``services.platform_save``: audited, published to the bid
workers after commit), their audit trail, hourly spend, and ``/admin/dsp/platform/stats/``: charts
per platform and hour of requests, bid rate, timeouts, errors, p50/p99 latency, wins and spend
against budget (ClickHouse ``analytics_events`` plus the spend rows)."""
from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from apps.core import clickhouse as ch
from apps.core.admin_mixins import ReadOnlyAdminMixin, ReadOnlyTabularInline
from apps.core.outbound.secrets_admin import SecretFieldsMixin
from apps.dsp import services, stats
from apps.dsp.models import Platform, PlatformChange, PlatformHourSpend


class PlatformChangeInline(ReadOnlyTabularInline):
    model = PlatformChange
    fields = ("at", "actor", "action", "changes")
    readonly_fields = ("at", "actor", "action", "changes")


@admin.register(Platform)
class PlatformAdmin(SecretFieldsMixin, admin.ModelAdmin):
    change_list_template = "admin/dsp/platform_change_list.html"
    list_display = ["name", "kind", "enabled", "endpoint_url", "timeout_ms", "qps_cap", "hourly_budget",
                    "bid_adjustment", "gzip", "currency", "credentials_state", "updated_at"]
    list_filter = ["kind", "enabled", "gzip", "currency"]
    search_fields = ["name", "endpoint_url"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [PlatformChangeInline]
    actions = ["enable", "disable"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "endpoint_url", "enabled", "params"]}),
        ("Credentials", {"fields": ["credentials"]}),
        ("Limits and pricing", {"fields": ["timeout_ms", "qps_cap", "hourly_budget", "bid_adjustment", "gzip", "currency"]}),
        ("Times", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="credentials")
    def credentials_state(self, obj) -> str:
        return "set" if obj is not None and obj.credentials else "not set"

    def get_secret_keys(self, request, obj, field_name: str):
        """Meta signs with its app secret; the others take a bearer token."""
        if obj is not None and obj.kind == Platform.Kind.META:
            return ["app_secret"]
        return ["bearer_token"]

    def save_model(self, request, obj, form, change):
        services.platform_save(platform=obj, actor=request.user)

    def delete_model(self, request, obj):
        services.platform_delete(platform=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.platform_delete(platform=obj, actor=request.user)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        for obj in queryset:
            obj.enabled = enabled
            services.platform_save(platform=obj, actor=request.user)
        self.message_user(request, f"{queryset.count()} platform(s) {'enabled' if enabled else 'disabled'}.",
                          messages.SUCCESS)

    @admin.action(description="Enable the selected platforms")
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected platforms")
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def get_urls(self):
        return [path("stats/", self.admin_site.admin_view(self.stats_view), name="dsp_platform_stats"),
                *super().get_urls()]

    def stats_view(self, request):
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        try:
            hours = max(1, min(int(request.GET.get("hours") or 24), 24 * 14))
        except ValueError:
            hours = 24
        end = timezone.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        start = end - dt.timedelta(hours=hours)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "DSP platforms per hour", "hours": hours, "error": None, "report": None}
        try:
            report = stats.platform_hourly(start=start, end=end)
            context.update(report=report, chart_data=stats.chart_data(report))
        except ch.ClickHouseError as exc:
            context["error"] = f"ClickHouse is not reachable right now ({type(exc).__name__}); try again shortly."
        return TemplateResponse(request, "admin/dsp/stats.html", context)


@admin.register(PlatformHourSpend)
class PlatformHourSpendAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["platform", "hour", "wins", "spend", "average_win_price"]
    list_filter = ["platform"]
    date_hierarchy = "hour"


@admin.register(PlatformChange)
class PlatformChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["platform_name", "at", "actor", "action"]
    list_filter = ["action"]
    search_fields = ["platform_name"]
