"""Request and response shapes of /v1/loyalty/* (the response serializers document the schema)."""
from django.conf import settings
from rest_framework import serializers

from apps.core import fields
from apps.core.filters import FilterParams
from apps.core.identifiers import USER_ID_PATTERN
from apps.loyalty import rules
from apps.loyalty.models import LedgerEntry, LedgerKind, SignalType, Tier
from apps.loyalty.services import TRANSACTION_ID_MAX, USER_ID_MAX

USER_ID_HELP = "1-128 characters, no whitespace or control characters (docs/RULES.md, user ids)"


class EarnRequestSerializer(serializers.Serializer):
    user_id = fields.StrictRegexField(USER_ID_PATTERN, max_length=USER_ID_MAX, help_text=USER_ID_HELP)
    amount_cents = fields.StrictIntegerField(min_value=1, help_text="Purchase amount in cents (> 0)")
    channel = fields.StrictRegexField(
        r"^[a-z][a-z0-9_]{0,31}$", max_length=32,
        error_messages={"invalid": "Use a lower-case channel name of letters, digits and underscores, e.g. app, web, in_store."},
        help_text="Where the purchase happened: in_store, app, web, drive_through, pos, kiosk, ...",
    )
    transaction_id = fields.StrictCharField(max_length=TRANSACTION_ID_MAX, help_text="Unique per user; the idempotency key of the earn")
    is_referral = fields.StrictBooleanField(default=False)
    is_digital = fields.StrictBooleanField(default=False)

    def get_fields(self):
        # The maximum is a setting (LOYALTY_MAX_EARN_AMOUNT_CENTS): read when the serializer is built, so
        # both the check and the OpenAPI schema (``maximum``) follow it.
        declared = super().get_fields()
        declared["amount_cents"] = fields.StrictIntegerField(
            min_value=1, max_value=settings.LOYALTY_MAX_EARN_AMOUNT_CENTS,
            help_text="Purchase amount in cents (> 0, at most LOYALTY_MAX_EARN_AMOUNT_CENTS)")
        return declared


class EarnResponseSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    stars_earned = serializers.IntegerField()
    new_balance = serializers.IntegerField()
    earn_rate_applied = serializers.CharField(help_text="Decimal as a string: the whole multiplier applied to ceil(amount/100)")
    tier = serializers.ChoiceField(choices=Tier.choices, help_text="Tier after this earn")
    tier_changed = serializers.BooleanField()
    new_tier = serializers.ChoiceField(choices=Tier.choices, allow_null=True)
    transaction_id = serializers.CharField()


class RedeemRequestSerializer(serializers.Serializer):
    user_id = fields.StrictRegexField(USER_ID_PATTERN, max_length=USER_ID_MAX, help_text=USER_ID_HELP)
    redemption_tier = serializers.ChoiceField(choices=[(r.key, f"{r.label}: {r.stars} stars, ${r.value}") for r in rules.REDEMPTIONS.values()])


class RedeemResponseSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    redemption_tier = serializers.CharField()
    stars_spent = serializers.IntegerField()
    value = serializers.CharField(help_text="USD value of the reward, Decimal as a string")
    new_balance = serializers.IntegerField()
    tier = serializers.ChoiceField(choices=Tier.choices)
    total_redemptions = serializers.IntegerField()
    ledger_entry_id = serializers.IntegerField()


class BalanceResponseSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    tier = serializers.ChoiceField(choices=Tier.choices)
    balance = serializers.IntegerField()
    qualifying_stars = serializers.IntegerField()
    lifetime_stars = serializers.IntegerField()
    tier_progress = serializers.FloatField(help_text="0–1: qualifying stars / next tier's threshold; Reserve is 1.0")
    effective_earn_rate = serializers.CharField(help_text="Tier multiplier + active promotions (no channel bonus), Decimal string")
    total_redemptions = serializers.IntegerField()
    next_tier = serializers.ChoiceField(choices=Tier.choices, allow_null=True)
    stars_to_next_tier = serializers.IntegerField()
    qualifying_period_start = serializers.DateTimeField()
    qualifying_period_end = serializers.DateTimeField()
    last_earn_at = serializers.DateTimeField(allow_null=True)
    last_redeem_at = serializers.DateTimeField(allow_null=True)
    preferred_channel = serializers.CharField()
    birthday_eligible = serializers.BooleanField()


class RewardSignalRequestSerializer(serializers.Serializer):
    user_id = fields.StrictRegexField(USER_ID_PATTERN, max_length=USER_ID_MAX, help_text=USER_ID_HELP)
    offer_id = fields.StrictCharField(max_length=64)
    signal_type = serializers.ChoiceField(choices=SignalType.choices)
    tier = serializers.ChoiceField(choices=Tier.choices, required=False, allow_null=True,
                                   help_text="Defaults to the member's current tier")


class RewardSignalResponseSerializer(serializers.Serializer):
    signal_id = serializers.UUIDField()
    user_id = serializers.CharField()
    offer_id = serializers.CharField()
    signal_type = serializers.ChoiceField(choices=SignalType.choices)
    tier = serializers.ChoiceField(choices=Tier.choices)
    reward = serializers.CharField(help_text="Server-side reward: clicked 1.0, redeemed 2.0, ignored -0.1")


class LedgerEntrySerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=LedgerKind.choices)
    earn_rate = serializers.DecimalField(max_digits=10, decimal_places=4, allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = [
            "id", "kind", "stars", "balance_after", "transaction_id", "idempotency_key", "amount_cents",
            "channel", "earn_rate", "redemption_tier", "tier_after", "reason", "created_at",
        ]
        read_only_fields = fields


class LedgerFilters(FilterParams):
    kind = serializers.ChoiceField(choices=LedgerKind.choices, required=False, help_text="Only entries of this kind")
