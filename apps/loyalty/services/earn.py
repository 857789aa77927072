"""Earning stars (docs/RULES.md §2.2, §2.3)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from apps.core.exceptions import Conflict
from apps.loyalty import rules, selectors
from apps.loyalty.models import (
    LedgerEntry,
    LedgerKind,
    LoyaltyAccount,
)
from apps.loyalty.validation import _clean_amount, _clean_channel, _clean_flag, _clean_transaction_id, _clean_user_id

from .accounts import _lock_or_enrol, _rollover_locked
from .effects import _after_commit_ledger, _tier_change_event, _written_together
from .results import EarnResult

log = structlog.get_logger("apps.loyalty.services")

STARS_EARNED = Counter("loyalty_stars_earned_total", "Stars credited by earns")
EARNS = Counter("loyalty_earns_total", "Earn requests", ["outcome"])  # credited | replayed
RATE_QUANTUM = Decimal("0.0001")  # rates are sums and products of 3-decimal multipliers and 1.2: exact at 4


def _earn_replay(entry: LedgerEntry, request: dict[str, Any]) -> EarnResult:
    stored = {
        "amount_cents": entry.amount_cents,
        "channel": entry.channel,
        "is_referral": entry.details.get("is_referral", False),
        "is_digital": entry.details.get("is_digital", False),
    }
    differing = sorted(name for name, value in stored.items() if request[name] != value)
    if differing:
        raise Conflict(
            f"transaction_id {entry.transaction_id!r} was already credited with a different "
            f"{', '.join(differing)}.",
            field="transaction_id",
            code="idempotency_conflict",
        )
    EARNS.labels("replayed").inc()
    _after_commit_ledger(entry.account.user_id, _written_together(entry))
    return EarnResult(
        user_id=entry.account.user_id,
        stars_earned=entry.stars,
        new_balance=entry.balance_after,
        earn_rate_applied=entry.earn_rate,
        tier=entry.tier_after,
        tier_changed=entry.details.get("tier_changed", False),
        new_tier=entry.tier_after if entry.details.get("tier_changed") else None,
        transaction_id=entry.transaction_id,
        replayed=True,
    )


def loyalty_earn(
    *,
    user_id: str,
    amount_cents: int,
    channel: str,
    transaction_id: str,
    is_referral: bool = False,
    is_digital: bool = False,
) -> EarnResult:
    """Credit stars for a purchase (docs/RULES.md §2.2), enrolling an unknown user as Green.

    ``stars = ceil(ceil(amount_cents / 100) x rate)`` with
    ``rate = (tier + Σ(active promotion - 1) + Σ(channel bonus - 1)) x 2 if referral x 1.2 if digital``
    computed in Decimal; ``earn_rate_applied`` is that whole ``rate``. The rate uses the tier the
    member had before this purchase; an upgrade the purchase reaches applies at once to the account.

    Idempotent on ``(user_id, transaction_id)``: a replay returns the first result (``replayed=True``)
    and credits nothing; the same id with a different amount, channel or flags raises Conflict (409).
    """
    user_id = _clean_user_id(user_id)
    request = {
        "amount_cents": _clean_amount(amount_cents),
        "channel": _clean_channel(channel),
        "is_referral": _clean_flag(is_referral, "is_referral"),
        "is_digital": _clean_flag(is_digital, "is_digital"),
    }
    transaction_id = _clean_transaction_id(transaction_id)
    now = timezone.now()
    with transaction.atomic():
        account, enrolled = _lock_or_enrol(user_id=user_id, channel=request["channel"], now=now)
        previous = LedgerEntry.objects.filter(account=account, transaction_id=transaction_id).select_related("account").first()
        if previous is not None:
            return _earn_replay(previous, request)

        _rollover_locked(account, now=now)  # its ledger row stands for its event (_after_commit_ledger)

        promotions = list(selectors.active_promotions(now=now).values_list("pk", "multiplier"))
        bonuses = list(selectors.active_channel_bonuses(channel=request["channel"], now=now).values_list("pk", "multiplier"))
        rate = rules.earn_rate(
            tier=account.tier,
            promotion_multipliers=[m for _, m in promotions],
            channel_bonus_multipliers=[m for _, m in bonuses],
            is_referral=request["is_referral"],
            is_digital=request["is_digital"],
        )
        stars = rules.stars_for(amount_cents=request["amount_cents"], rate=rate)
        tier_before = account.tier
        tier_after = rules.tier_after_earn(tier_before, account.qualifying_stars + stars)
        tier_changed = tier_after != tier_before
        # The row is locked, so the values read above are current; F() keeps the update itself atomic.
        updates: dict[str, Any] = {
            "balance": F("balance") + stars,
            "qualifying_stars": F("qualifying_stars") + stars,
            "lifetime_stars": F("lifetime_stars") + stars,
            "tier": tier_after,
            "last_earn_at": now,
            "last_activity_at": now,
            "updated_at": now,
        }
        if not account.preferred_channel and request["channel"] in rules.CANONICAL_CHANNEL:
            updates["preferred_channel"] = rules.CANONICAL_CHANNEL[request["channel"]]
        LoyaltyAccount.objects.filter(pk=account.pk).update(**updates)
        new_balance = account.balance + stars
        entry = LedgerEntry.objects.create(
            account=account,
            kind=LedgerKind.EARN,
            stars=stars,
            balance_after=new_balance,
            transaction_id=transaction_id,
            amount_cents=request["amount_cents"],
            channel=request["channel"],
            earn_rate=rate,
            tier_after=tier_after,
            details={
                "base_stars": rules.base_stars(request["amount_cents"]),
                "is_referral": request["is_referral"],
                "is_digital": request["is_digital"],
                "promotions": [pk for pk, _ in promotions],
                "channel_bonuses": [pk for pk, _ in bonuses],
                "tier_before": tier_before,
                "tier_changed": tier_changed,
                "enrolled": enrolled,
            },
            created_at=now,
        )
        if tier_changed:
            _tier_change_event(before=tier_before, after=tier_after, reason="earn")  # counts it
        _after_commit_ledger(user_id, _written_together(entry))
        transaction.on_commit(lambda: (EARNS.labels("credited").inc(), STARS_EARNED.inc(stars)))
    log.info("loyalty_earned", user_id=user_id, stars=stars, balance=new_balance, tier=str(tier_after),
             transaction_id=transaction_id)
    return EarnResult(
        user_id=user_id,
        stars_earned=stars,
        new_balance=new_balance,
        earn_rate_applied=rate.quantize(RATE_QUANTUM),  # as stored on the ledger, so a replay is identical
        tier=str(tier_after),
        tier_changed=tier_changed,
        new_tier=str(tier_after) if tier_changed else None,
        transaction_id=transaction_id,
    )

