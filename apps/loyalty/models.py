"""Loyalty state (docs/RULES.md §2): an account row per user plus an append-only ledger.

The account row holds the running totals the API answers from; the ledger holds every change with
the request that caused it. Invariant: ``account.balance == sum(ledger.stars)`` for every account.
Totals change only inside ``apps.loyalty.services`` under a row lock (``select_for_update``) with
``F()`` updates; the database refuses a negative balance (check constraint) and any UPDATE or
DELETE of a ledger row (trigger, see migration 0002).
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.channels import LoyaltyChannel


class Tier(models.TextChoices):
    GREEN = "green", "Green"
    GOLD = "gold", "Gold"
    RESERVE = "reserve", "Reserve"


#: A member's preferred purchase channel: the loyalty subset of the one vocabulary (apps/core/channels.py).
PreferredChannel = LoyaltyChannel


class LedgerKind(models.TextChoices):
    EARN = "earn", "Earn"
    REDEEM = "redeem", "Redeem"
    EXPIRE = "expire", "Expiry"
    ADJUST = "adjust", "Adjustment"
    ROLLOVER = "rollover", "Qualifying period rollover"


class SignalType(models.TextChoices):
    CLICKED = "clicked", "Clicked"
    REDEEMED = "redeemed", "Redeemed"
    IGNORED = "ignored", "Ignored"


class LoyaltyAccount(models.Model):
    user_id = models.CharField(max_length=128, unique=True)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.GREEN, db_index=True)
    balance = models.BigIntegerField(default=0, help_text="Spendable stars")
    qualifying_stars = models.BigIntegerField(default=0, help_text="Stars earned in the current qualifying period")
    qualifying_period_start = models.DateTimeField(default=timezone.now)
    qualifying_period_end = models.DateTimeField(db_index=True, help_text="Start + 12 months; rollover is due then")
    lifetime_stars = models.BigIntegerField(default=0)
    total_redemptions = models.PositiveIntegerField(default=0)
    last_earn_at = models.DateTimeField(null=True, blank=True)
    last_redeem_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(default=timezone.now, db_index=True,
                                            help_text="Last earn or redeem (enrolment until then); drives Green expiry")
    birthday = models.DateField(null=True, blank=True, help_text="Only month and day matter")
    preferred_channel = models.CharField(max_length=16, choices=PreferredChannel.choices, blank=True)
    enrolled_at = models.DateTimeField(default=timezone.now)
    enrolment_channel = models.CharField(max_length=32, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="loyalty_account_balance_non_negative"),
            models.CheckConstraint(condition=Q(qualifying_stars__gte=0), name="loyalty_account_qualifying_non_negative"),
            models.CheckConstraint(condition=Q(lifetime_stars__gte=0), name="loyalty_account_lifetime_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} ({self.get_tier_display()}, {self.balance} stars)"


class LedgerEntry(models.Model):
    """One change of an account. Append-only: the database refuses UPDATE and DELETE."""

    account = models.ForeignKey(LoyaltyAccount, on_delete=models.PROTECT, related_name="ledger")
    kind = models.CharField(max_length=10, choices=LedgerKind.choices, db_index=True)
    stars = models.BigIntegerField(help_text="Signed change of the balance")
    balance_after = models.BigIntegerField()
    # Earn: the purchase's transaction id (unique per account). Other writes: the Idempotency-Key.
    transaction_id = models.CharField(max_length=128, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    amount_cents = models.BigIntegerField(null=True, blank=True)
    channel = models.CharField(max_length=32, blank=True)
    earn_rate = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    redemption_tier = models.CharField(max_length=32, blank=True)
    tier_after = models.CharField(max_length=10, choices=Tier.choices)
    reason = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "transaction_id"], condition=~Q(transaction_id=""),
                                    name="loyalty_ledger_account_transaction_uniq"),
        ]
        indexes = [models.Index(fields=["account", "-created_at"], name="loyalty_ledger_account_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.stars:+d} -> {self.balance_after}"


def _multiplier_field(help_text: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=6, decimal_places=3,
        validators=[MinValueValidator(Decimal("1")), MaxValueValidator(Decimal("10"))],
        help_text=help_text,
    )


class Promotion(models.Model):
    """A time-boxed earn bonus: adds ``multiplier - 1`` to the earn rate inside its window."""

    name = models.CharField(max_length=120)
    multiplier = _multiplier_field("e.g. 2.000 for double stars (adds +1.0 to the rate); 1–10")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    is_active = models.BooleanField(default=True, help_text="Switch off to stop it early without editing the window")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="loyalty_promotion_window"),
            models.CheckConstraint(condition=Q(multiplier__gte=1), name="loyalty_promotion_multiplier_min"),
        ]

    def __str__(self) -> str:
        return f"{self.name} x{self.multiplier}"


class ChannelBonus(models.Model):
    """An earn bonus for purchases on one channel, valid until a moment."""

    channel = models.CharField(max_length=32, db_index=True,
                               help_text="The earn request's channel, e.g. app, web, in_store, drive_through, pos")
    multiplier = _multiplier_field("e.g. 1.500 adds +0.5 to the rate on this channel; 1–10")
    valid_until = models.DateTimeField()
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "channel bonus"
        verbose_name_plural = "channel bonuses"
        ordering = ["channel", "-valid_until"]
        constraints = [models.CheckConstraint(condition=Q(multiplier__gte=1), name="loyalty_channel_bonus_multiplier_min")]

    def __str__(self) -> str:
        return f"{self.channel} x{self.multiplier}"


class RewardSignal(models.Model):
    """Feedback for model training (docs/RULES.md §2.6), published on NATS ``loyalty.reward-signals``."""

    signal_id = models.UUIDField(unique=True)
    user_id = models.CharField(max_length=128, db_index=True)
    offer_id = models.CharField(max_length=64)
    signal_type = models.CharField(max_length=10, choices=SignalType.choices)
    tier = models.CharField(max_length=10, choices=Tier.choices)
    reward = models.DecimalField(max_digits=6, decimal_places=2)
    published = models.BooleanField(default=False, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.signal_type} {self.user_id}/{self.offer_id} ({self.reward:+})"
