"""Omnichannel back office: activations with their sends and email numbers, the send ledger,
contacts, ingest events and sources (enable / disable), trigger rules, SendGrid batches and events,
and email analytics per activation and per campaign."""
from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin_mixins import ReadOnlyAdminMixin, ReadOnlyTabularInline

from . import selectors, services
from .models import (
    Activation,
    ActivationTransition,
    Contact,
    EmailEvent,
    EmailStats,
    InboxMessage,
    IngestEvent,
    IngestSource,
    Interaction,
    SendGridBatch,
    SendLedger,
    TriggerRule,
)


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Records written by the system: people look, they do not edit."""


class ReadOnlyInline(ReadOnlyTabularInline):
    show_change_link = True


@admin.register(IngestSource)
class IngestSourceAdmin(admin.ModelAdmin):
    list_display = ["source", "enabled", "disabled_by_env", "note", "updated_at", "updated_by"]
    list_filter = ["enabled"]
    fields = ["source", "enabled", "note"]
    actions = ["enable_sources", "disable_sources"]

    @admin.display(boolean=True, description="Disabled by INGEST_DISABLED_SOURCES")
    def disabled_by_env(self, obj):
        from django.conf import settings

        return obj.source in settings.INGEST_DISABLED_SOURCES

    def save_model(self, request, obj, form, change):
        saved = services.ingest_source_set_enabled(source=obj.source, enabled=obj.enabled, actor=request.user,
                                                   note=obj.note)
        obj.pk = saved.pk

    @admin.action(description="Enable the selected sources")
    def enable_sources(self, request, queryset):
        for row in queryset:
            services.ingest_source_set_enabled(source=row.source, enabled=True, actor=request.user)
        messages.success(request, f"Enabled {queryset.count()} source(s).")

    @admin.action(description="Disable the selected sources (their events get 400)")
    def disable_sources(self, request, queryset):
        for row in queryset:
            services.ingest_source_set_enabled(source=row.source, enabled=False, actor=request.user, note=row.note)
        messages.success(request, f"Disabled {queryset.count()} source(s).")


@admin.register(IngestEvent)
class IngestEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "source", "caller", "event_type", "user_id", "device_id", "occurred_at", "received_at",
                    "transport", "activation_triggered", "stars_earned"]
    list_filter = ["source", "event_type", "transport", "activation_triggered", "loyalty_relevant"]
    search_fields = ["event_id", "caller", "user_id", "device_id", "order_id", "store_id"]
    date_hierarchy = "received_at"


@admin.register(Interaction)
class InteractionAdmin(ReadOnlyAdmin):
    list_display = ["user_id", "item_id", "event_type", "basket_id", "quantity", "weight", "occurred_at"]
    list_filter = ["event_type"]
    search_fields = ["user_id", "item_id", "basket_id"]
    raw_id_fields = ["ingest_event"]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["user_id", "email", "phone", "preferred_channel", "consent_email", "consent_sms",
                    "consent_push", "has_push_token", "present_store_id", "present_until", "updated_at"]
    list_filter = ["preferred_channel", "consent_email", "consent_sms", "consent_push", "consent_in_app"]
    search_fields = ["user_id", "email", "phone", "present_store_id"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(boolean=True, description="Push token")
    def has_push_token(self, obj):
        return bool(obj.fcm_token or obj.apns_token)

    def save_model(self, request, obj, form, change):
        fields = {name: getattr(obj, name) for name in services.CONTACT_FIELDS}
        saved = services.contact_upsert(user_id=obj.user_id, fields=fields)
        obj.pk = saved.pk


@admin.register(TriggerRule)
class TriggerRuleAdmin(admin.ModelAdmin):
    list_display = ["event_type", "enabled", "title", "campaign", "offer", "cooldown_minutes"]
    list_filter = ["enabled"]
    raw_id_fields = ["campaign", "offer"]


class SendInline(ReadOnlyInline):
    model = SendLedger
    fields = ["channel", "provider", "recipient", "status", "attempts", "provider_message_id", "error_code", "error",
              "sent_at", "delivered_at"]
    readonly_fields = fields


class TransitionInline(ReadOnlyInline):
    model = ActivationTransition
    fields = ["at", "from_status", "to_status", "reason", "source"]
    readonly_fields = fields
    show_change_link = False


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


@admin.register(Activation)
class ActivationAdmin(ReadOnlyAdmin):
    list_display = ["id", "user_id", "channel", "status", "trigger", "campaign", "offer", "created_at",
                    "emails_sent", "unique_opens", "unique_clicks", "open_rate"]
    list_filter = ["channel", "status", "trigger", "campaign"]
    search_fields = ["user_id", "title"]
    date_hierarchy = "created_at"
    list_select_related = ["campaign", "offer", "email_stats"]
    readonly_fields = ["user_id", "campaign", "offer", "trigger", "ingest_event", "channel", "status", "reason",
                       "title", "body", "url", "data", "cascade", "created_by", "created_at", "sent_at",
                       "delivered_at", "email_analytics"]
    inlines = [SendInline, TransitionInline]
    change_list_template = "admin/omnichannel/activation/change_list.html"

    def _stats(self, obj):
        try:
            return obj.email_stats
        except EmailStats.DoesNotExist:
            return None

    @admin.display(description="Emails sent")
    def emails_sent(self, obj):
        stats = self._stats(obj)
        return stats.total_sent if stats else "–"

    @admin.display(description="Unique opens")
    def unique_opens(self, obj):
        stats = self._stats(obj)
        return stats.unique_opens if stats else "–"

    @admin.display(description="Unique clicks")
    def unique_clicks(self, obj):
        stats = self._stats(obj)
        return stats.unique_clicks if stats else "–"

    @admin.display(description="Open rate")
    def open_rate(self, obj):
        stats = self._stats(obj)
        if not stats:
            return "–"
        return _pct(selectors.email_rates({"total_sent": stats.total_sent, "unique_opens": stats.unique_opens})["open_rate"])

    @admin.display(description="Email analytics")
    def email_analytics(self, obj):
        if not self._stats(obj):
            return "Not an email activation."
        row = selectors.email_analytics_for_activation(activation_id=obj.pk)
        cells = format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>",
            ((name.replace("_", " "), value) for name, value in row.items()
             if name not in ("activation_id", "campaign_id", "offer_id", "user_id", "status")),
        )
        return format_html('<table class="email-analytics">{}</table>', cells)

    def get_urls(self):
        return [
            path("email-analytics/", self.admin_site.admin_view(self.email_analytics_view),
                 name="omnichannel_activation_email_analytics"),
            *super().get_urls(),
        ]

    def email_analytics_view(self, request):
        """Email numbers per campaign (sums over its email activations) and overall."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Email analytics by campaign",
            "opts": self.model._meta,
            "campaigns": selectors.email_analytics_by_campaign(),
            "totals": selectors.email_analytics_totals(),
            "activations_url": reverse("admin:omnichannel_activation_changelist"),
        }
        return TemplateResponse(request, "admin/omnichannel/email_analytics.html", context)


@admin.register(SendLedger)
class SendLedgerAdmin(ReadOnlyAdmin):
    list_display = ["id", "activation_link", "user_id", "channel", "provider", "recipient", "status", "attempts",
                    "error_code", "created_at", "sent_at", "delivered_at"]
    list_filter = ["channel", "provider", "status", "error_code"]
    search_fields = ["user_id", "recipient", "provider_message_id"]
    date_hierarchy = "created_at"

    @admin.display(description="Activation")
    def activation_link(self, obj):
        url = reverse("admin:omnichannel_activation_change", args=[obj.activation_id])
        return format_html('<a href="{}">{}</a>', url, obj.activation_id)


@admin.register(InboxMessage)
class InboxMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "channel", "user_id", "store_id", "title", "created_at", "expires_at", "fetched_at"]
    list_filter = ["channel"]
    search_fields = ["user_id", "store_id", "title"]


@admin.register(EmailStats)
class EmailStatsAdmin(ReadOnlyAdmin):
    list_display = ["activation", "campaign", "total_sent", "delivered", "opens", "unique_opens", "clicks",
                    "unique_clicks", "bounces", "spam_reports", "unsubscribes", "open_rate", "click_rate",
                    "bounce_rate"]
    list_filter = ["activation__campaign"]
    search_fields = ["activation__user_id"]
    list_select_related = ["activation__campaign"]

    @admin.display(description="Campaign")
    def campaign(self, obj):
        return obj.activation.campaign

    def _rates(self, obj):
        return selectors.email_rates({name: getattr(obj, name) for name in selectors.COUNTERS})

    @admin.display(description="Open rate")
    def open_rate(self, obj):
        return _pct(self._rates(obj)["open_rate"])

    @admin.display(description="Click rate")
    def click_rate(self, obj):
        return _pct(self._rates(obj)["click_rate"])

    @admin.display(description="Bounce rate")
    def bounce_rate(self, obj):
        return _pct(self._rates(obj)["bounce_rate"])


@admin.register(EmailEvent)
class EmailEventAdmin(ReadOnlyAdmin):
    list_display = ["sg_event_id", "event", "email", "occurred_at", "activation", "bounce_type", "url"]
    list_filter = ["event", "bounce_type"]
    search_fields = ["email", "sg_event_id", "sg_message_id"]
    raw_id_fields = ["activation", "batch"]


@admin.register(SendGridBatch)
class SendGridBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "event_count", "new_events", "signature_verified", "processed_at"]
    list_filter = ["signature_verified"]
    actions = ["reprocess"]

    @admin.action(description="Process again (events already counted are skipped)")
    def reprocess(self, request, queryset):
        new = sum(services.sendgrid_batch_process(batch_id=batch.pk) for batch in queryset)
        messages.success(request, f"{new} new event(s) applied.")
