"""Redeeming stars (docs/RULES.md §2.4) and Admin adjustments (§2.9)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import structlog
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from apps.core.exceptions import Forbidden, NotFound, ServiceError, Unprocessable
from apps.core.idempotency import idempotent_call, validate_key
from apps.core.roles import user_has_role
from apps.loyalty import rules
from apps.loyalty.models import (
    LedgerEntry,
    LedgerKind,
    LoyaltyAccount,
    Tier,
)
from apps.loyalty.validation import ADJUST_MAX_STARS, _clean_redemption, _clean_user_id

from .accounts import _lock_account, _rollover_locked
from .effects import _after_commit_ledger, _replay_ledger_events, _written_together
from .results import AdjustResult, RedeemResult

log = structlog.get_logger("apps.loyalty.services")

STARS_REDEEMED = Counter("loyalty_stars_redeemed_total", "Stars spent on redemptions")
REDEMPTIONS = Counter("loyalty_redemptions_total", "Redemptions", ["redemption_tier"])
REDEEM_REFUSED = Counter("loyalty_redeem_refused_total", "Refused redemptions", ["reason"])


def _tier_label(tier: str) -> str:
    return Tier(tier).label



def _redeem_locked(*, user_id: str, redemption: rules.Redemption, idempotency_key: str) -> RedeemResult:
    now = timezone.now()
    account = _lock_account(user_id)
    if account is None:
        REDEEM_REFUSED.labels("no_account").inc()
        raise NotFound(f"No loyalty account for user {user_id!r}.", field="user_id")
    _rollover_locked(account, now=now)  # its ledger row stands for its event (_after_commit_ledger)
    if rules.tier_rank(account.tier) < rules.tier_rank(redemption.min_tier):
        REDEEM_REFUSED.labels("tier_too_low").inc()
        raise Forbidden(
            f"Requires {_tier_label(redemption.min_tier)} tier, you are {_tier_label(account.tier)}",
            field="redemption_tier", code="tier_too_low",
        )
    if account.balance < redemption.stars:
        REDEEM_REFUSED.labels("insufficient_stars").inc()
        raise Unprocessable(
            f"Insufficient stars: need {redemption.stars}, have {account.balance}",
            field="redemption_tier", code="insufficient_stars",
        )
    LoyaltyAccount.objects.filter(pk=account.pk).update(
        balance=F("balance") - redemption.stars,
        total_redemptions=F("total_redemptions") + 1,
        last_redeem_at=now,
        last_activity_at=now,
        updated_at=now,
    )
    new_balance = account.balance - redemption.stars
    entry = LedgerEntry.objects.create(
        account=account,
        kind=LedgerKind.REDEEM,
        stars=-redemption.stars,
        balance_after=new_balance,
        idempotency_key=idempotency_key,
        redemption_tier=redemption.key,
        tier_after=account.tier,
        details={"value": str(redemption.value)},
        created_at=now,
    )
    _after_commit_ledger(user_id, _written_together(entry))
    transaction.on_commit(lambda: (REDEMPTIONS.labels(redemption.key).inc(), STARS_REDEEMED.inc(redemption.stars)))
    log.info("loyalty_redeemed", user_id=user_id, redemption_tier=redemption.key, stars=redemption.stars,
             balance=new_balance)
    return RedeemResult(
        user_id=user_id,
        redemption_tier=redemption.key,
        stars_spent=redemption.stars,
        value=redemption.value,
        new_balance=new_balance,
        tier=str(account.tier),
        total_redemptions=account.total_redemptions + 1,
        ledger_entry_id=entry.pk,
    )


def loyalty_redeem(*, user_id: str, redemption_tier: str, idempotency_key: str) -> RedeemResult:
    """Spend stars on a reward of the catalogue (docs/RULES.md §2.4).

    Checks the tier (403 ``Requires Gold tier, you are Green``), then the balance (422
    ``Insufficient stars: need 200, have 150``), then deducts under the account's row lock, so
    concurrent redeems can never overdraw. Qualifying and lifetime stars are not reduced.
    Idempotent on ``idempotency_key``: a replay returns the first answer (or raises the first refusal);
    the same key for a different user or reward raises Conflict (409).
    """
    user_id = _clean_user_id(user_id)
    redemption = _clean_redemption(redemption_tier)
    key = validate_key(idempotency_key)
    outcome = idempotent_call(
        scope="loyalty.redeem",
        key=key,
        payload={"user_id": user_id, "redemption_tier": redemption.key},
        run=lambda: _redeem_locked(user_id=user_id, redemption=redemption, idempotency_key=key).as_json(),
    )
    if outcome.replayed:
        _replay_ledger_events(user_id, outcome.body.get("ledger_entry_id"))
    return RedeemResult.from_json(outcome.body, replayed=outcome.replayed)


# --- adjust -------------------------------------------------------------------------------------
def _adjust_locked(*, user_id: str, stars: int, reason: str, actor: AbstractBaseUser | None,
                   idempotency_key: str) -> dict[str, Any]:
    now = timezone.now()
    account = _lock_account(user_id)
    if account is None:
        raise NotFound(f"No loyalty account for user {user_id!r}.", field="user_id")
    if account.balance + stars < 0:
        raise Unprocessable(
            f"Insufficient stars: need {-stars}, have {account.balance}", field="stars", code="insufficient_stars",
        )
    LoyaltyAccount.objects.filter(pk=account.pk).update(balance=F("balance") + stars, updated_at=now)
    new_balance = account.balance + stars
    entry = LedgerEntry.objects.create(
        account=account, kind=LedgerKind.ADJUST, stars=stars, balance_after=new_balance,
        idempotency_key=idempotency_key, tier_after=account.tier, reason=reason,
        actor=actor if getattr(actor, "pk", None) else None, created_at=now,
    )
    _after_commit_ledger(user_id, [entry])
    log.info("loyalty_adjusted", user_id=user_id, stars=stars, balance=new_balance,
             actor=getattr(actor, "username", None), reason=reason)
    return asdict(AdjustResult(user_id=user_id, stars=stars, new_balance=new_balance, ledger_entry_id=entry.pk))


def loyalty_adjust(*, user_id: str, stars: int, reason: str, actor: AbstractBaseUser | None = None,
                   idempotency_key: str | None = None) -> AdjustResult:
    """Correct a member's balance by ``stars`` (positive or negative) with a reason; writes an
    ``adjust`` ledger row. Only the spendable balance changes: qualifying and lifetime stars record
    purchases, so goodwill credits and corrections leave them (and the tier) alone. The balance can
    not go below zero. With ``idempotency_key`` a resubmission applies once. A person (``actor``)
    must hold the Admin role; ``actor=None`` is a system correction."""
    if actor is not None and not user_has_role(actor):
        raise Forbidden("Adjusting stars requires the Admin role.")
    user_id = _clean_user_id(user_id)
    if isinstance(stars, bool) or not isinstance(stars, int) or stars == 0 or abs(stars) > ADJUST_MAX_STARS:
        raise ServiceError(f"stars must be a non-zero whole number between -{ADJUST_MAX_STARS} and {ADJUST_MAX_STARS}.",
                           field="stars")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("A reason is required for an adjustment.", field="reason", code="required")
    if len(reason) > 255:
        raise ServiceError("reason must be at most 255 characters.", field="reason")

    def run() -> dict[str, Any]:
        return _adjust_locked(user_id=user_id, stars=stars, reason=reason, actor=actor, idempotency_key=key or "")

    key = idempotency_key.strip() if idempotency_key else ""
    if key:
        outcome = idempotent_call(
            scope="loyalty.adjust", key=key, payload={"user_id": user_id, "stars": stars, "reason": reason}, run=run
        )
        if outcome.replayed:
            _replay_ledger_events(user_id, outcome.body.get("ledger_entry_id"))
        return AdjustResult(**{**outcome.body, "replayed": outcome.replayed})
    with transaction.atomic():
        return AdjustResult(**run())

