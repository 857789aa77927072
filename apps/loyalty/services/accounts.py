"""Locking and enrolling accounts, and rolling over ended qualifying periods (the only place a tier
goes down)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from apps.loyalty import rules
from apps.loyalty.models import (
    LedgerEntry,
    LedgerKind,
    LoyaltyAccount,
    Tier,
)

from .effects import _tier_change_event

log = structlog.get_logger("apps.loyalty.services")


def _lock_account(user_id: str) -> LoyaltyAccount | None:
    return LoyaltyAccount.objects.select_for_update().filter(user_id=user_id).first()


def _lock_or_enrol(*, user_id: str, channel: str, now: datetime) -> tuple[LoyaltyAccount, bool]:
    """Lock the member's account, enrolling them (Green) first when they have none.

    ``INSERT .. ON CONFLICT DO NOTHING`` then ``SELECT .. FOR UPDATE``: two first earns of a new user
    at once create one account, and the second waits for the first's lock.
    """
    account = _lock_account(user_id)
    if account is not None:
        return account, False
    preferred = rules.CANONICAL_CHANNEL.get(channel, "")
    LoyaltyAccount.objects.bulk_create(
        [
            LoyaltyAccount(
                user_id=user_id,
                tier=Tier.GREEN,
                qualifying_period_start=now,
                qualifying_period_end=rules.period_end(now),
                enrolled_at=now,
                last_activity_at=now,
                enrolment_channel=channel,
                preferred_channel=preferred,
            )
        ],
        ignore_conflicts=True,
    )
    account = LoyaltyAccount.objects.select_for_update().get(user_id=user_id)
    enrolled = account.enrolled_at == now
    if enrolled:
        log.info("loyalty_enrolled", user_id=user_id, channel=channel)
    return account, enrolled


def _rollover_locked(account: LoyaltyAccount, *, now: datetime) -> tuple[str, dict[str, Any]] | None:
    """Roll every ended qualifying period of a locked account; return a tier-change event or None.

    The tier for the new period is the one the ended period's qualifying stars reach (a period with
    no stars after it means Green). Writes one ``rollover`` ledger row (0 stars).
    """
    if account.qualifying_period_end > now:
        return None
    before = account.tier
    start, end, qualifying = account.qualifying_period_start, account.qualifying_period_end, account.qualifying_stars
    periods = []
    while end <= now:
        periods.append({"start": start.isoformat(), "end": end.isoformat(), "qualifying_stars": qualifying})
        new_tier = rules.tier_for_qualifying(qualifying)
        start, end, qualifying = end, rules.period_end(end), 0
    LoyaltyAccount.objects.filter(pk=account.pk).update(
        tier=new_tier, qualifying_stars=0, qualifying_period_start=start, qualifying_period_end=end, updated_at=now
    )
    LedgerEntry.objects.create(
        account=account, kind=LedgerKind.ROLLOVER, stars=0, balance_after=account.balance, tier_after=new_tier,
        reason="Qualifying period ended", details={"tier_before": before, "periods": periods}, created_at=now,
    )
    account.tier, account.qualifying_stars = new_tier, 0
    account.qualifying_period_start, account.qualifying_period_end = start, end
    log.info("loyalty_period_rolled_over", user_id=account.user_id, tier_before=before, tier_after=new_tier,
             periods=len(periods))
    if new_tier != before:
        return _tier_change_event(before=before, after=new_tier, reason="period_rollover")
    return None


