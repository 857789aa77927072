"""The loyalty rules of docs/RULES.md §2 as pure functions (no database, no clock of their own).

Everything that counts stars is ``Decimal`` or ``int``: ``ceil(25 x 1.2 x 1.2)`` must be 36, and the
binary float product 36.00000000000001 would credit 37.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Iterable

from apps.loyalty.models import PreferredChannel, Tier

# §2.1 tiers by qualifying stars, and their earn multipliers
TIER_ORDER = (Tier.GREEN, Tier.GOLD, Tier.RESERVE)
TIER_THRESHOLDS = {Tier.GREEN: 0, Tier.GOLD: 500, Tier.RESERVE: 2500}
TIER_MULTIPLIERS = {Tier.GREEN: Decimal("1.0"), Tier.GOLD: Decimal("1.2"), Tier.RESERVE: Decimal("1.7")}
REFERRAL_FACTOR = Decimal("2.0")
DIGITAL_FACTOR = Decimal("1.2")
QUALIFYING_PERIOD_MONTHS = 12
GREEN_EXPIRY_DAYS = 180

# §2.7 feature vector
TIER_FEATURE = {Tier.GREEN: 0.0, Tier.GOLD: 0.5, Tier.RESERVE: 1.0}
BIRTHDAY_WINDOW_DAYS = {Tier.GREEN: 1, Tier.GOLD: 7, Tier.RESERVE: 30}
CHANNEL_FEATURE = {
    PreferredChannel.IN_STORE: 0.0,
    PreferredChannel.APP: 0.33,
    PreferredChannel.WEB: 0.66,
    PreferredChannel.DRIVE_THROUGH: 1.0,
}
NO_CHANNEL_FEATURE = -1.0
FEATURE_VECTOR_LENGTH = 8

# Earn channels that count as one of the four preferred channels of the feature vector.
CANONICAL_CHANNEL = {
    "in_store": PreferredChannel.IN_STORE,
    "pos": PreferredChannel.IN_STORE,
    "kiosk": PreferredChannel.IN_STORE,
    "store": PreferredChannel.IN_STORE,
    "app": PreferredChannel.APP,
    "mobile_app": PreferredChannel.APP,
    "web": PreferredChannel.WEB,
    "drive_through": PreferredChannel.DRIVE_THROUGH,
}


@dataclass(frozen=True)
class Redemption:
    key: str
    stars: int
    value: Decimal
    min_tier: Tier
    label: str


# §2.4 the redemption catalogue
REDEMPTIONS: dict[str, Redemption] = {
    r.key: r
    for r in (
        Redemption("customization", 25, Decimal("0.80"), Tier.GREEN, "Customization"),
        Redemption("discount", 60, Decimal("2.00"), Tier.GREEN, "Discount"),
        Redemption("basic_item", 100, Decimal("3.50"), Tier.GREEN, "Basic item"),
        Redemption("premium_item", 200, Decimal("6.50"), Tier.GREEN, "Premium item"),
        Redemption("premium_food", 300, Decimal("8.00"), Tier.GREEN, "Premium food"),
        Redemption("merchandise", 400, Decimal("15.00"), Tier.GREEN, "Merchandise"),
        Redemption("exclusive_service", 500, Decimal("25.00"), Tier.GOLD, "Exclusive service"),
    )
}

# §2.6 server-side rewards
SIGNAL_REWARDS = {"clicked": Decimal("1.0"), "redeemed": Decimal("2.0"), "ignored": Decimal("-0.1")}


def tier_rank(tier: str) -> int:
    return TIER_ORDER.index(Tier(tier))


def tier_for_qualifying(qualifying_stars: int) -> Tier:
    """The highest tier whose threshold ``qualifying_stars`` reaches."""
    best = Tier.GREEN
    for tier in TIER_ORDER:
        if qualifying_stars >= TIER_THRESHOLDS[tier]:
            best = tier
    return best


def tier_after_earn(current: str, qualifying_stars: int) -> Tier:
    """Upgrades apply at once; an earn never lowers the tier (downgrades happen only at rollover)."""
    earned = tier_for_qualifying(qualifying_stars)
    return earned if tier_rank(earned) > tier_rank(current) else Tier(current)


def base_stars(amount_cents: int) -> int:
    """``ceil(amount_cents / 100)`` in integer arithmetic."""
    return -(-amount_cents // 100)


def earn_rate(
    *,
    tier: str,
    promotion_multipliers: Iterable[Decimal] = (),
    channel_bonus_multipliers: Iterable[Decimal] = (),
    is_referral: bool = False,
    is_digital: bool = False,
) -> Decimal:
    """The whole multiplier applied to the base stars (docs/RULES.md §2.2):
    ``(tier + Σ(promo - 1) + Σ(channel bonus - 1)) x 2.0 if referral x 1.2 if digital``."""
    rate = TIER_MULTIPLIERS[Tier(tier)]
    rate += sum((Decimal(m) - 1 for m in promotion_multipliers), Decimal(0))
    rate += sum((Decimal(m) - 1 for m in channel_bonus_multipliers), Decimal(0))
    if is_referral:
        rate *= REFERRAL_FACTOR
    if is_digital:
        rate *= DIGITAL_FACTOR
    return rate


def stars_for(*, amount_cents: int, rate: Decimal) -> int:
    """``ceil(base x rate)``, exactly."""
    return int((Decimal(base_stars(amount_cents)) * rate).to_integral_value(rounding=ROUND_CEILING))


def effective_earn_rate(*, tier: str, promotion_multipliers: Iterable[Decimal] = ()) -> Decimal:
    """The rate a member earns at right now regardless of channel: tier multiplier plus active
    promotions. Channel bonuses, referral and digital factors depend on the purchase, so they are
    left out (used by the balance endpoint and the feature vector)."""
    return earn_rate(tier=tier, promotion_multipliers=promotion_multipliers)


def tier_progress(*, tier: str, qualifying_stars: int) -> float:
    """0–1 progress toward the next tier: qualifying stars over the next tier's threshold.
    Reserve (no next tier) is 1.0."""
    rank = tier_rank(tier)
    if rank == len(TIER_ORDER) - 1:
        return 1.0
    target = TIER_THRESHOLDS[TIER_ORDER[rank + 1]]
    return max(0.0, min(qualifying_stars / target, 1.0))


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months; the day is clamped (Feb 29 + 12 months → Feb 28)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_end(start: datetime) -> datetime:
    return add_months(start, QUALIFYING_PERIOD_MONTHS)


def _birthday_in_year(birthday: date, year: int) -> date:
    day = min(birthday.day, calendar.monthrange(year, birthday.month)[1])
    return date(year, birthday.month, day)


def birthday_eligible(*, birthday: date | None, tier: str, today: date) -> bool:
    """True from the birthday for the tier's window (Green 1 day, Gold 7, Reserve 30): the days since
    the most recent birthday are in ``[0, window)``. Feb 29 birthdays fall on Feb 28 in other years."""
    if birthday is None:
        return False
    last = _birthday_in_year(birthday, today.year)
    if last > today:
        last = _birthday_in_year(birthday, today.year - 1)
    return (today - last).days < BIRTHDAY_WINDOW_DAYS[Tier(tier)]


def redeem_recency(*, last_redeem_at: datetime | None, now: datetime) -> float:
    """``1 / (1 + days_since_redeem / 30)`` with fractional days; 0 when never redeemed."""
    if last_redeem_at is None:
        return 0.0
    days = max((now - last_redeem_at) / timedelta(days=1), 0.0)
    return 1.0 / (1.0 + days / 30.0)


def feature_vector(
    *,
    tier: str,
    balance: int,
    qualifying_stars: int,
    effective_rate: Decimal,
    last_redeem_at: datetime | None,
    birthday: date | None,
    preferred_channel: str,
    lifetime_stars: int,
    now: datetime,
) -> list[float]:
    """The 8 floats of docs/RULES.md §2.7 (bid feature columns [128..136))."""
    vector = [
        TIER_FEATURE[Tier(tier)],
        min(balance / 5000, 1.0),
        tier_progress(tier=tier, qualifying_stars=qualifying_stars),
        float(effective_rate) / 2,
        redeem_recency(last_redeem_at=last_redeem_at, now=now),
        1.0 if birthday_eligible(birthday=birthday, tier=tier, today=now.date()) else 0.0,
        CHANNEL_FEATURE.get(preferred_channel, NO_CHANNEL_FEATURE) if preferred_channel else NO_CHANNEL_FEATURE,
        min(lifetime_stars / 50000, 1.0),
    ]
    return [round(float(v), 6) for v in vector]
