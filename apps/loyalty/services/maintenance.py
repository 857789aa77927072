"""Scheduled work: period rollover, Green-tier expiry, purging old Idempotency-Key answers."""
from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from apps.core.idempotency import idempotency_purge
from apps.loyalty import rules, selectors
from apps.loyalty.models import (
    LedgerEntry,
    LedgerKind,
    LoyaltyAccount,
)

from .accounts import _rollover_locked
from .effects import _after_commit

log = structlog.get_logger("apps.loyalty.services")

STARS_EXPIRED = Counter("loyalty_stars_expired_total", "Stars expired after Green-tier inactivity")


def _due_batches(queryset_for_now, *, batch_size: int = 500):
    """Yield primary keys of due accounts in batches until none is due. Each processed account
    leaves the due set (rolled over, expired, or found no longer due under its lock), so this ends."""
    seen: set[int] = set()
    while True:
        batch = [pk for pk in queryset_for_now().values_list("pk", flat=True)[:batch_size] if pk not in seen]
        if not batch:
            return
        seen.update(batch)
        yield from batch


def loyalty_rollover_due(*, now: datetime | None = None) -> int:
    """Roll over every account whose qualifying period has ended (tier re-evaluation; the only
    place tiers go down). One short transaction per account; safe to run concurrently and again.
    Returns how many accounts were rolled over."""
    now = now or timezone.now()
    done = 0
    for pk in _due_batches(lambda: selectors.accounts_due_for_rollover(now=now)):
        with transaction.atomic():
            account = LoyaltyAccount.objects.select_for_update().get(pk=pk)
            if account.qualifying_period_end > now:
                continue  # rolled by an earn in the meantime
            event = _rollover_locked(account, now=now)
            _after_commit(account.user_id, *([event] if event else []))
            done += 1
    if done:
        log.info("loyalty_rollover_done", accounts=done)
    return done


def loyalty_expire_inactive(*, now: datetime | None = None) -> int:
    """Expire the whole balance of Green accounts with no earn or redeem for 180 days, one
    ``expire`` ledger row each. Qualifying and lifetime stars stay. Returns accounts expired."""
    now = now or timezone.now()
    done = 0
    for pk in _due_batches(lambda: selectors.accounts_due_for_expiry(now=now)):
        with transaction.atomic():
            account = LoyaltyAccount.objects.select_for_update().get(pk=pk)
            if not selectors.accounts_due_for_expiry(now=now).filter(pk=pk).exists():
                continue  # earned, redeemed or upgraded in the meantime
            stars = account.balance
            LoyaltyAccount.objects.filter(pk=pk).update(balance=F("balance") - stars, updated_at=now)
            LedgerEntry.objects.create(
                account=account, kind=LedgerKind.EXPIRE, stars=-stars, balance_after=0, tier_after=account.tier,
                reason=f"No activity for {rules.GREEN_EXPIRY_DAYS} days",
                details={"last_activity_at": account.last_activity_at.isoformat()}, created_at=now,
            )
            _after_commit(account.user_id, ("loyalty_expire", {"stars": stars, "tier": str(account.tier)}))
            transaction.on_commit(lambda stars=stars: STARS_EXPIRED.inc(stars))
            done += 1
    if done:
        log.info("loyalty_expiry_done", accounts=done)
    return done


def loyalty_purge_idempotency_records() -> int:
    """Delete loyalty Idempotency-Key answers older than ``LOYALTY_IDEMPOTENCY_RETENTION_DAYS``."""
    return idempotency_purge(scope_prefix="loyalty.", older_than=timedelta(days=settings.LOYALTY_IDEMPOTENCY_RETENTION_DAYS))
