"""DSP platforms (one row per connection, managed in the admin), their audit trail and the hourly
spend flushed from Redis (docs/RULES.md §6)."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from apps.core.outbound.crypto import EncryptedJSONField


class Platform(models.Model):
    class Kind(models.TextChoices):
        TTD = "ttd", "The Trade Desk"
        META = "meta", "Meta Audience Network"
        DV360 = "dv360", "Google DV360"
        AMAZON = "amazon", "Amazon DSP"
        OPENRTB = "openrtb", "Other OpenRTB 2.6 bidder"

    name = models.SlugField(max_length=64, unique=True, help_text="Seat name in our answers and in ext.dsp.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    endpoint_url = models.CharField(
        max_length=500, validators=[RegexValidator(r"^https?://[^\s]+$", "Enter an http(s) URL.")],
        help_text="Where bid requests are POSTed. For The Trade Desk it may hold {supply_id}.")
    credentials = EncryptedJSONField(default=dict, blank=True, secret_keys=("app_secret", "bearer_token"),
                                     help_text="Secrets, encrypted at rest (meta: app_secret; others: bearer_token). "
                                               "Never shown back.")
    params = models.JSONField(default=dict, blank=True, help_text=(
        "Kind settings, not secret. ttd: publisher_id, supply_source_id; meta: platform_id, publisher_id, "
        "placement_id; dv360: billing_ids."))
    enabled = models.BooleanField(default=True)
    timeout_ms = models.PositiveIntegerField(default=200, validators=[MinValueValidator(10), MaxValueValidator(5000)])
    qps_cap = models.PositiveIntegerField(default=0, help_text="Requests per second over all bid workers; 0 = no cap.")
    hourly_budget = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"),
                                        validators=[MinValueValidator(Decimal("0"))],
                                        help_text="Spend per hour in the platform's currency; 0 = no budget.")
    bid_adjustment = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("1"),
                                         validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("10"))],
                                         help_text="Bids are multiplied by this; ${AUCTION_PRICE} is divided by it.")
    gzip = models.BooleanField(default=False, help_text="Gzip request bodies (agreed with the platform).")
    currency = models.CharField(max_length=3, default="USD", validators=[RegexValidator(r"^[A-Z]{3}$", "ISO 4217 code")])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class PlatformChange(models.Model):
    """An edit of a platform: who, when, and each changed field's old and new value (credentials
    only as "changed")."""

    # kept when the platform is deleted (the delete is itself a change): the name says which it was
    platform = models.ForeignKey(Platform, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")
    platform_name = models.CharField(max_length=64, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=16, default="update")
    changes = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-id"]


class PlatformHourSpend(models.Model):
    """Wins and spend of one platform in one UTC hour, copied from the exact Redis counters."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="spend")
    hour = models.DateTimeField(help_text="Start of the UTC hour")
    wins = models.BigIntegerField(default=0)
    spend_micros = models.BigIntegerField(default=0, help_text="Millionths of the platform's currency")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-hour", "platform_id"]
        constraints = [models.UniqueConstraint(fields=["platform", "hour"], name="dsp_spend_one_row_per_hour")]

    @property
    def spend(self) -> Decimal:
        return Decimal(self.spend_micros) / Decimal(1_000_000)

    @property
    def average_win_price(self) -> Decimal | None:
        """Average clearing price as CPM."""
        return (Decimal(self.spend_micros) * 1000 / Decimal(1_000_000) / self.wins) if self.wins else None
