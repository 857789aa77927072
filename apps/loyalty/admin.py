"""Loyalty in the admin: accounts (with their recent ledger and an "adjust stars" action), the
read-only ledger, promotions, channel bonuses and reward signals. Changes of stars go through
apps.loyalty.services, never through model forms."""
from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.core.admin_mixins import ReadOnlyAdminMixin, action_selection
from apps.core.exceptions import ServiceError
from apps.core.roles import user_has_role
from apps.loyalty import services
from apps.loyalty.models import ChannelBonus, LedgerEntry, LoyaltyAccount, Promotion, RewardSignal

RECENT_LEDGER_ROWS = 20


class RecentLedgerFormSet(BaseInlineFormSet):
    def get_queryset(self):
        # Only the newest rows: an account's full history lives in the ledger changelist.
        if not hasattr(self, "_queryset"):
            self._queryset = self.queryset.order_by("-created_at", "-id")[:RECENT_LEDGER_ROWS]
        return self._queryset


class RecentLedgerInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LedgerEntry
    formset = RecentLedgerFormSet
    fk_name = "account"
    verbose_name_plural = f"Recent ledger (newest {RECENT_LEDGER_ROWS})"
    fields = ("created_at", "kind", "stars", "balance_after", "tier_after", "transaction_id", "idempotency_key",
              "channel", "redemption_tier", "reason")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


class AdjustStarsForm(forms.Form):
    stars = forms.IntegerField(help_text="Positive to credit, negative to debit (never below a zero balance)")
    reason = forms.CharField(max_length=255, help_text="Recorded on the ledger row")
    # One key per rendered form: submitting the same form twice adjusts once.
    request_key = forms.CharField(widget=forms.HiddenInput)

    def clean_stars(self) -> int:
        stars = self.cleaned_data["stars"]
        if stars == 0:
            raise forms.ValidationError("Enter a non-zero number of stars.")
        return stars


@admin.register(LoyaltyAccount)
class LoyaltyAccountAdmin(admin.ModelAdmin):
    list_display = ("user_id", "tier", "balance", "qualifying_stars", "lifetime_stars", "total_redemptions",
                    "last_activity_at", "qualifying_period_end", "preferred_channel")
    list_filter = ("tier", "preferred_channel", "enrolment_channel")
    search_fields = ("user_id",)
    ordering = ("-last_activity_at",)
    date_hierarchy = "last_activity_at"
    readonly_fields = ("user_id", "tier", "balance", "qualifying_stars", "qualifying_period_start",
                       "qualifying_period_end", "lifetime_stars", "total_redemptions", "last_earn_at",
                       "last_redeem_at", "last_activity_at", "enrolled_at", "enrolment_channel", "updated_at",
                       "full_ledger")
    fieldsets = (
        (None, {"fields": ("user_id", "tier", "balance", "full_ledger")}),
        ("Qualifying", {"fields": ("qualifying_stars", "qualifying_period_start", "qualifying_period_end",
                                   "lifetime_stars", "total_redemptions")}),
        ("Activity", {"fields": ("last_earn_at", "last_redeem_at", "last_activity_at", "enrolled_at",
                                 "enrolment_channel", "updated_at")}),
        ("Member details", {"fields": ("birthday", "preferred_channel")}),
    )
    inlines = [RecentLedgerInline]
    actions = ["adjust_stars"]

    def has_add_permission(self, request) -> bool:
        return False  # members are enrolled by their first earn

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the ledger keeps its account

    @admin.display(description="Ledger")
    def full_ledger(self, obj: LoyaltyAccount) -> str:
        url = reverse("admin:loyalty_ledgerentry_changelist") + f"?account__id__exact={obj.pk}"
        return format_html('<a href="{}">All {} ledger entries</a>', url, obj.ledger.count())

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        # Birthday and preferred channel are part of the bid-time loyalty vector.
        transaction.on_commit(lambda: services.loyalty_profile_refresh(user_id=obj.user_id))

    def has_adjust_permission(self, request) -> bool:
        return user_has_role(request.user)

    @admin.action(description="Adjust stars of the selected accounts…", permissions=["adjust"])
    def adjust_stars(self, request, queryset):
        if "apply" in request.POST:
            form = AdjustStarsForm(request.POST)
            if form.is_valid():
                done = 0
                for account in queryset.order_by("pk"):
                    try:
                        services.loyalty_adjust(
                            user_id=account.user_id, stars=form.cleaned_data["stars"], reason=form.cleaned_data["reason"],
                            actor=request.user, idempotency_key=f"admin:{form.cleaned_data['request_key']}:{account.pk}",
                        )
                        done += 1
                    except ServiceError as exc:
                        self.message_user(request, f"Account {account.user_id}: {exc.message}", messages.ERROR)
                if done:
                    self.message_user(request, f"Adjusted {done} account(s) by {form.cleaned_data['stars']:+d} stars.",
                                      messages.SUCCESS)
                return None
        else:
            form = AdjustStarsForm(initial={"request_key": uuid.uuid4().hex})
        context = {
            **self.admin_site.each_context(request),
            **action_selection(request, queryset),
            "title": "Adjust stars",
            "opts": self.model._meta,
            "form": form,
            "action": "adjust_stars",
        }
        return TemplateResponse(request, "admin/loyalty/adjust_stars.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "account", "kind", "stars", "balance_after", "tier_after", "transaction_id",
                    "idempotency_key", "channel", "redemption_tier", "actor")
    list_filter = ("kind", "tier_after", "channel", "created_at")
    search_fields = ("account__user_id", "transaction_id", "idempotency_key", "reason")
    list_select_related = ("account", "actor")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in LedgerEntry._meta.fields]


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin):
    list_display = ("name", "multiplier", "starts_at", "ends_at", "is_active", "live_now")
    list_filter = ("is_active",)
    search_fields = ("name", "description")
    date_hierarchy = "starts_at"
    actions = ["switch_off"]

    @admin.display(boolean=True, description="Live now")
    def live_now(self, obj: Promotion) -> bool:
        now = timezone.now()
        return obj.is_active and obj.starts_at <= now < obj.ends_at

    @admin.action(description="Switch off the selected promotions")
    def switch_off(self, request, queryset):
        count = queryset.update(is_active=False)
        self.message_user(request, f"Switched off {count} promotion(s).", messages.SUCCESS)


@admin.register(ChannelBonus)
class ChannelBonusAdmin(admin.ModelAdmin):
    list_display = ("channel", "multiplier", "valid_until", "is_active", "valid_now", "description")
    list_filter = ("is_active", "channel")
    search_fields = ("channel", "description")

    @admin.display(boolean=True, description="Valid now")
    def valid_now(self, obj: ChannelBonus) -> bool:
        return obj.is_active and obj.valid_until > timezone.now()


@admin.register(RewardSignal)
class RewardSignalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "user_id", "offer_id", "signal_type", "tier", "reward", "published",
                    "publish_attempts")
    list_filter = ("signal_type", "tier", "published")
    search_fields = ("user_id", "offer_id", "signal_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in RewardSignal._meta.fields]
    actions = ["publish_now"]

    def has_publish_permission(self, request) -> bool:
        return user_has_role(request.user)

    @admin.action(description="Publish the selected unpublished signals now", permissions=["publish"])
    def publish_now(self, request, queryset):
        pending = list(queryset.filter(published=False).values_list("pk", flat=True))
        sent = services.loyalty_publish_signals(signal_ids=pending)
        level = messages.SUCCESS if sent == len(pending) else messages.WARNING
        self.message_user(request, f"Published {sent} of {len(pending)} unpublished signal(s).", level)
