"""Reads of the loyalty slice (other slices use these, never the models)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from apps.core.exceptions import NotFound
from apps.loyalty import rules
from apps.loyalty.models import ChannelBonus, LedgerEntry, LoyaltyAccount, Promotion, Tier


@dataclass(frozen=True)
class LoyaltyBalance:
    user_id: str
    tier: str
    balance: int
    qualifying_stars: int
    lifetime_stars: int
    tier_progress: float
    effective_earn_rate: Decimal
    total_redemptions: int
    next_tier: str | None
    stars_to_next_tier: int
    qualifying_period_start: datetime
    qualifying_period_end: datetime
    last_earn_at: datetime | None
    last_redeem_at: datetime | None
    preferred_channel: str
    birthday_eligible: bool


def active_promotions(*, now: datetime | None = None) -> QuerySet[Promotion]:
    """Promotions switched on whose window ``[starts_at, ends_at)`` contains ``now``."""
    now = now or timezone.now()
    return Promotion.objects.filter(is_active=True, starts_at__lte=now, ends_at__gt=now).order_by("pk")


def active_channel_bonuses(*, channel: str, now: datetime | None = None) -> QuerySet[ChannelBonus]:
    """Bonuses switched on for ``channel`` that are still before their ``valid_until``."""
    now = now or timezone.now()
    return ChannelBonus.objects.filter(is_active=True, channel=channel, valid_until__gt=now).order_by("pk")


def account_effective_earn_rate(*, tier: str, now: datetime | None = None) -> Decimal:
    """Tier multiplier + active promotions (channel bonuses excluded: they depend on the purchase)."""
    multipliers = list(active_promotions(now=now).values_list("multiplier", flat=True))
    return rules.effective_earn_rate(tier=tier, promotion_multipliers=multipliers)


def loyalty_account_find(*, user_id: str) -> LoyaltyAccount | None:
    return LoyaltyAccount.objects.filter(user_id=user_id).first()


def _get_account(user_id: str) -> LoyaltyAccount:
    account = loyalty_account_find(user_id=user_id)
    if account is None:
        raise NotFound(f"No loyalty account for user {user_id!r}.", field="user_id")
    return account


def loyalty_balance(*, user_id: str) -> LoyaltyBalance:
    """The member's standing (docs/RULES.md §2.5). Raises NotFound (404) for a user never enrolled."""
    account = _get_account(user_id)
    now = timezone.now()
    rank = rules.tier_rank(account.tier)
    next_tier = rules.TIER_ORDER[rank + 1] if rank + 1 < len(rules.TIER_ORDER) else None
    to_next = max(rules.TIER_THRESHOLDS[next_tier] - account.qualifying_stars, 0) if next_tier else 0
    return LoyaltyBalance(
        user_id=account.user_id,
        tier=account.tier,
        balance=account.balance,
        qualifying_stars=account.qualifying_stars,
        lifetime_stars=account.lifetime_stars,
        tier_progress=rules.tier_progress(tier=account.tier, qualifying_stars=account.qualifying_stars),
        effective_earn_rate=account_effective_earn_rate(tier=account.tier, now=now),
        total_redemptions=account.total_redemptions,
        next_tier=str(next_tier) if next_tier else None,
        stars_to_next_tier=to_next,
        qualifying_period_start=account.qualifying_period_start,
        qualifying_period_end=account.qualifying_period_end,
        last_earn_at=account.last_earn_at,
        last_redeem_at=account.last_redeem_at,
        preferred_channel=account.preferred_channel,
        birthday_eligible=rules.birthday_eligible(birthday=account.birthday, tier=account.tier, today=now.date()),
    )


def account_feature_vector(account: LoyaltyAccount, *, now: datetime | None = None) -> list[float]:
    now = now or timezone.now()
    return rules.feature_vector(
        tier=account.tier,
        balance=account.balance,
        qualifying_stars=account.qualifying_stars,
        effective_rate=account_effective_earn_rate(tier=account.tier, now=now),
        last_redeem_at=account.last_redeem_at,
        birthday=account.birthday,
        preferred_channel=account.preferred_channel,
        lifetime_stars=account.lifetime_stars,
        now=now,
    )


def loyalty_accounts_after(*, last_id: int, limit: int) -> list[LoyaltyAccount]:
    """Accounts in primary-key order after ``last_id`` (keyset pagination for batch jobs)."""
    return list(LoyaltyAccount.objects.filter(pk__gt=last_id).order_by("pk")[:limit])


def loyalty_feature_vector(*, user_id: str) -> list[float]:
    """The 8-float loyalty vector of docs/RULES.md §2.7; eight zeros for a user with no account
    (docs/RULES.md §1 step 5: "zeros when no loyalty data")."""
    account = loyalty_account_find(user_id=user_id)
    if account is None:
        return [0.0] * rules.FEATURE_VECTOR_LENGTH
    return account_feature_vector(account)


def loyalty_ledger(*, user_id: str, kind: str | None = None) -> QuerySet[LedgerEntry]:
    """The member's ledger, newest first. Raises NotFound for a user never enrolled."""
    account = _get_account(user_id)
    entries = LedgerEntry.objects.filter(account=account).order_by("-created_at", "-id")
    if kind:
        entries = entries.filter(kind=kind)
    return entries


def loyalty_ledger_sum(*, user_id: str) -> int:
    """Sum of every ledger row of the member (equals the balance; used by checks and tests)."""
    return LedgerEntry.objects.filter(account__user_id=user_id).aggregate(total=Sum("stars"))["total"] or 0


def accounts_due_for_rollover(*, now: datetime) -> QuerySet[LoyaltyAccount]:
    return LoyaltyAccount.objects.filter(qualifying_period_end__lte=now).order_by("pk")


def accounts_due_for_expiry(*, now: datetime) -> QuerySet[LoyaltyAccount]:
    """Green accounts with stars and no earn or redeem for ``GREEN_EXPIRY_DAYS``."""
    cutoff = now - timedelta(days=rules.GREEN_EXPIRY_DAYS)
    return LoyaltyAccount.objects.filter(tier=Tier.GREEN, balance__gt=0, last_activity_at__lte=cutoff).order_by("pk")
