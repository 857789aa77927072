"""After-commit effects of loyalty changes: the bidding profile refresh and the analytics events a
ledger row stands for (docs/RULES.md §2.8, §10)."""
from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import structlog
from django.db import transaction
from prometheus_client import Counter

from apps.analytics.emitter import emit, emit_with_id, stable_event_id
from apps.core.profiles import profile_write
from apps.loyalty import rules, selectors
from apps.loyalty.models import (
    LedgerEntry,
    LedgerKind,
)

log = structlog.get_logger("apps.loyalty.services")

TIER_CHANGES = Counter("loyalty_tier_changes_total", "Tier changes", ["direction"])
PROFILE_REFRESH_FAILURES = Counter("loyalty_profile_refresh_failures_total", "Profile refreshes that failed (Redis down)")


def loyalty_profile_refresh(*, user_id: str) -> None:
    """Write the member's loyalty fields into the bidding profile (``profile:{user_id}``) and announce
    the change so bidders drop their L1 copy. Redis being down is logged and counted, never raised:
    the loyalty change itself is already committed, and the next change writes the profile again."""
    account = selectors.loyalty_account_find(user_id=user_id)
    if account is None:
        return
    fields = {"loyalty_tier": str(account.tier), "loyalty": selectors.account_feature_vector(account)}
    try:
        profile_write(user_id=user_id, fields=fields)
    except Exception as exc:  # noqa: BLE001 - a cache write must not fail a committed change
        PROFILE_REFRESH_FAILURES.inc()
        log.warning("loyalty_profile_refresh_failed", user_id=user_id, error=f"{type(exc).__name__}: {exc}")


def loyalty_profiles_keep_alive(*, batch_size: int = 500) -> int:
    """Rewrite every member's loyalty fields into the bidding profile, without announcing.

    The profile hash lives ``PROFILE_TTL_SECONDS`` (an hour) after its last write; without this a
    Gold member who has not transacted for an hour would bid as a default Green user. Run from beat
    more often than the TTL. Also refreshes the day-dependent parts of the vector (birthday window,
    redeem recency). Returns how many profiles were written; stops at the first Redis error."""
    written = 0
    last_id = 0
    while True:
        accounts = selectors.loyalty_accounts_after(last_id=last_id, limit=batch_size)
        if not accounts:
            return written
        for account in accounts:
            profile_write(
                user_id=account.user_id,
                fields={"loyalty_tier": str(account.tier), "loyalty": selectors.account_feature_vector(account)},
                announce=False,
            )
            written += 1
        last_id = accounts[-1].pk


def _after_commit(user_id: str, *events: tuple[str, dict[str, Any]]) -> None:
    """Register the profile refresh and the analytics events to run once the transaction commits."""

    def run() -> None:
        loyalty_profile_refresh(user_id=user_id)
        for event_type, fields in events:
            emit(event_type, user_id=user_id, **fields)

    transaction.on_commit(run)


_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def _ledger_events(entry: LedgerEntry) -> list[tuple[str, dict[str, Any]]]:
    """The analytics events a ledger row stands for (an earn's tier change included)."""
    tier = str(entry.tier_after)
    details = entry.details or {}
    if entry.kind == LedgerKind.EARN:
        events = [("loyalty_earn", {
            "stars": entry.stars, "tier": tier, "amount": entry.amount_cents / 100, "channel": entry.channel,
            "extra": {"transaction_id": entry.transaction_id, "earn_rate": format(entry.earn_rate.normalize(), "f")},
        })]
        if details.get("tier_changed"):
            events.append(_tier_change_fields(before=details["tier_before"], after=tier, reason="earn"))
        return events
    if entry.kind == LedgerKind.ROLLOVER and details.get("tier_before", tier) != tier:
        return [_tier_change_fields(before=details["tier_before"], after=tier, reason="period_rollover")]
    if entry.kind == LedgerKind.REDEEM:
        return [("loyalty_redeem", {
            "stars": -entry.stars, "tier": tier, "amount": float(Decimal(details["value"])),
            "reason": entry.redemption_tier, "extra": {"idempotency_key": entry.idempotency_key},
        })]
    if entry.kind == LedgerKind.ADJUST:
        return [("loyalty_adjust", {"stars": entry.stars, "tier": tier, "reason": entry.reason[:200]})]
    return []


def _written_together(entry: LedgerEntry) -> list[LedgerEntry]:
    """The ledger rows of the write that made ``entry``: one transaction stamps its rows with one ``now``
    (a period rollover before an earn or a redeem, then the row itself)."""
    return list(LedgerEntry.objects.filter(account_id=entry.account_id, created_at=entry.created_at).order_by("pk"))


def _after_commit_ledger(user_id: str, entries: list[LedgerEntry]) -> None:
    """After commit: refresh the bidding profile and emit the rows' events, each with an id derived from its
    ledger row and the row's time (``emit_with_id``).

    The first call of a write and every replay of it call this: when the COMMIT reached Postgres but the
    answer was lost (Postgres restarting), Django runs no ``on_commit`` callback, so the first call
    emitted nothing; the client's retry is answered from the ledger and emits the same events with the
    same ids. ClickHouse (``ReplacingMergeTree`` by ``event_id``, reports ``FINAL``) keeps one of each."""
    events = [(event_type, stable_event_id("loyalty.ledger", entry.pk, event_type),
               (entry.created_at - _EPOCH) // timedelta(microseconds=1), fields)
              for entry in entries for event_type, fields in _ledger_events(entry)]

    def run() -> None:
        loyalty_profile_refresh(user_id=user_id)
        for event_type, event_id, timestamp_us, fields in events:
            emit_with_id(event_type, event_id=event_id, timestamp_us=timestamp_us, user_id=user_id, **fields)

    transaction.on_commit(run)


def _replay_ledger_events(user_id: str, ledger_entry_id: int | None) -> None:
    """A replayed answer: emit (again) the events of the write it answers for (see ``_after_commit_ledger``)."""
    entry = LedgerEntry.objects.filter(pk=ledger_entry_id).first() if ledger_entry_id else None
    if entry is not None:
        _after_commit_ledger(user_id, _written_together(entry))


def _tier_change_fields(*, before: str, after: str, reason: str) -> tuple[str, dict[str, Any]]:
    direction = "up" if rules.tier_rank(after) > rules.tier_rank(before) else "down"
    return "loyalty_tier_change", {"tier": str(after), "reason": reason, "extra": {"from": str(before), "direction": direction}}


def _tier_change_event(*, before: str, after: str, reason: str) -> tuple[str, dict[str, Any]]:
    """The tier-change event, counted in ``loyalty_tier_changes_total``."""
    event = _tier_change_fields(before=before, after=after, reason=reason)
    TIER_CHANGES.labels(event[1]["extra"]["direction"]).inc()
    return event



def emit_reward_signal(signal) -> None:
    """The signal as an analytics event: the bid model's trainer joins it to impressions by
    (user, offer) within its window (apps.training). Its id and time come from the stored row."""
    emit_with_id(
        "reward_signal", event_id=stable_event_id("loyalty.reward_signal", signal.signal_id),
        timestamp_us=(signal.created_at - _EPOCH) // timedelta(microseconds=1),
        user_id=signal.user_id, offer_id=signal.offer_id, reason=str(signal.signal_type),
        amount=float(signal.reward), tier=str(signal.tier),
    )
