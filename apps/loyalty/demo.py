"""Demo loyalty data for ``manage.py seed_demo``: members in each tier with ledger history, a live
promotion and a channel bonus, and their bidding profiles in Redis.

Idempotent: earns use fixed transaction ids and redeems fixed Idempotency-Keys, so seeding again
replays them and credits nothing; the promotion and bonus are found by name.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from apps.loyalty import services
from apps.loyalty.models import ChannelBonus, LoyaltyAccount, Promotion

PROMOTION_NAME = "Demo: Double Star Days"
BONUS_DESCRIPTION = "Demo: app orders earn +50%"

# user id -> (purchases as (transaction id, amount in cents, channel, digital), redemptions, member details)
MEMBERS = {
    "demo-green-ana": {
        "purchases": [("demo-ana-1", 1250, "in_store", False), ("demo-ana-2", 830, "drive_through", False)],
        "redemptions": [],
        "details": {"birthday": date(1994, 3, 14), "preferred_channel": "drive_through"},
    },
    "demo-gold-ben": {
        "purchases": [("demo-ben-1", 14_999, "app", True), ("demo-ben-2", 9_500, "app", True),
                      ("demo-ben-3", 4_200, "web", False)],
        "redemptions": [("demo-ben-r1", "basic_item")],
        "details": {"birthday": date(1988, 7, 2), "preferred_channel": "app"},
    },
    "demo-reserve-cara": {
        "purchases": [("demo-cara-1", 60_000, "web", True), ("demo-cara-2", 45_000, "in_store", False),
                      ("demo-cara-3", 38_000, "app", True)],
        "redemptions": [("demo-cara-r1", "exclusive_service"), ("demo-cara-r2", "merchandise")],
        "details": {"birthday": date(1979, 11, 30), "preferred_channel": "web"},
    },
}


def seed() -> None:
    """Create the demo promotion, channel bonus and members (see the module docstring)."""
    now = timezone.now()
    if not Promotion.objects.filter(name=PROMOTION_NAME).exists():
        Promotion.objects.create(
            name=PROMOTION_NAME, multiplier=Decimal("2.000"), starts_at=now - timedelta(days=1),
            ends_at=now + timedelta(days=30), description="Every purchase earns double stars for a month.",
        )
    if not ChannelBonus.objects.filter(description=BONUS_DESCRIPTION).exists():
        ChannelBonus.objects.create(channel="app", multiplier=Decimal("1.500"), valid_until=now + timedelta(days=90),
                                    description=BONUS_DESCRIPTION)
    for user_id, member in MEMBERS.items():
        for transaction_id, amount_cents, channel, digital in member["purchases"]:
            services.loyalty_earn(user_id=user_id, amount_cents=amount_cents, channel=channel,
                                  transaction_id=transaction_id, is_digital=digital)
        for key, redemption_tier in member["redemptions"]:
            services.loyalty_redeem(user_id=user_id, redemption_tier=redemption_tier, idempotency_key=key)
        # Member details are plain attributes (not star counters); the profile refresh below picks them up.
        LoyaltyAccount.objects.filter(user_id=user_id).update(**member["details"])
        services.loyalty_profile_refresh(user_id=user_id)
