"""Reward signals (docs/RULES.md §2.6): stored, then published on NATS after commit; retried by beat."""
from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
import structlog
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from apps.core.exceptions import ServiceError
from apps.core.idempotency import idempotent_call
from apps.loyalty import publisher, rules, selectors
from apps.loyalty.models import (
    RewardSignal,
    SignalType,
    Tier,
)
from apps.loyalty.validation import OFFER_ID_MAX, _clean_user_id

from .effects import emit_reward_signal
from .results import RewardSignalResult

log = structlog.get_logger("apps.loyalty.services")

REWARD_SIGNALS = Counter("loyalty_reward_signals_total", "Reward signals stored", ["signal_type"])
SIGNALS_PUBLISHED = Counter("loyalty_reward_signals_published_total", "Reward signals acknowledged by NATS")
SIGNAL_PUBLISH_FAILURES = Counter("loyalty_reward_signal_publish_failures_total", "Failed reward-signal publishes")


def _signal_message(signal: RewardSignal) -> tuple[str, bytes]:
    payload = {
        "signal_id": str(signal.signal_id),
        "user_id": signal.user_id,
        "offer_id": signal.offer_id,
        "signal_type": signal.signal_type,
        "tier": signal.tier,
        "reward": float(signal.reward),
        "created_at": signal.created_at.isoformat(),
    }
    return str(signal.signal_id), orjson.dumps(payload)


def loyalty_publish_signals(*, signal_ids: list[int]) -> int:
    """Publish the given stored signals that are not yet published; mark the acknowledged ones.
    Returns how many were acknowledged. NATS down: the signals stay ``published=False``."""
    signals = list(RewardSignal.objects.filter(pk__in=signal_ids, published=False).order_by("pk"))
    if not signals:
        return 0
    by_id = {str(s.signal_id): s for s in signals}
    RewardSignal.objects.filter(pk__in=[s.pk for s in signals]).update(publish_attempts=F("publish_attempts") + 1)
    try:
        acked = publisher.publish(_signal_message(s) for s in signals)
        failure = None
    except publisher.PublishError as exc:
        acked, failure = exc.acked, exc
    if acked:
        RewardSignal.objects.filter(pk__in=[by_id[a].pk for a in acked]).update(published=True, published_at=timezone.now())
        SIGNALS_PUBLISHED.inc(len(acked))
    if failure is not None:
        SIGNAL_PUBLISH_FAILURES.inc()
        log.warning("loyalty_signal_publish_failed", pending=len(signals) - len(acked), error=str(failure))
    return len(acked)


def loyalty_reward_signal(
    *,
    user_id: str,
    offer_id: str,
    signal_type: str,
    tier: str | None = None,
    idempotency_key: str | None = None,
) -> RewardSignalResult:
    """Store a training signal with the server-side reward (clicked +1.0, redeemed +2.0, ignored -0.1)
    and publish it on NATS ``loyalty.reward-signals`` after commit. ``tier`` defaults to the
    member's current tier (Green when not enrolled). A failed publish leaves the signal stored with
    ``published=False`` for the beat task to retry. With ``idempotency_key`` a retry stores it once."""
    user_id = _clean_user_id(user_id)
    if not isinstance(offer_id, str) or not offer_id.strip() or len(offer_id.strip()) > OFFER_ID_MAX:
        raise ServiceError(f"offer_id is required (at most {OFFER_ID_MAX} characters).", field="offer_id")
    offer_id = offer_id.strip()
    if signal_type not in SignalType.values:
        raise ServiceError(f"Unknown signal_type {signal_type!r}; choose one of: {', '.join(SignalType.values)}.",
                           field="signal_type")
    if tier is not None and tier not in Tier.values:
        raise ServiceError(f"Unknown tier {tier!r}; choose one of: {', '.join(Tier.values)}.", field="tier")

    def run() -> dict[str, Any]:
        account = selectors.loyalty_account_find(user_id=user_id)
        signal = RewardSignal.objects.create(
            signal_id=uuid.uuid4(),
            user_id=user_id,
            offer_id=offer_id,
            signal_type=signal_type,
            tier=tier or (account.tier if account else Tier.GREEN),
            reward=rules.SIGNAL_REWARDS[signal_type],
        )
        REWARD_SIGNALS.labels(signal_type).inc()
        transaction.on_commit(lambda: loyalty_publish_signals(signal_ids=[signal.pk]))
        transaction.on_commit(lambda: emit_reward_signal(signal))
        return RewardSignalResult(
            signal_id=str(signal.signal_id), user_id=user_id, offer_id=offer_id, signal_type=signal_type,
            tier=str(signal.tier), reward=signal.reward,
        ).as_json()

    key = idempotency_key.strip() if idempotency_key else ""
    payload = {"user_id": user_id, "offer_id": offer_id, "signal_type": signal_type, "tier": tier}
    if key:
        outcome = idempotent_call(scope="loyalty.reward-signal", key=key, payload=payload, run=run, success_status=202)
        body, replayed = outcome.body, outcome.replayed
        if replayed:
            _replay_signal_event(body["signal_id"])
    else:
        with transaction.atomic():
            body, replayed = run(), False
    return RewardSignalResult(**{**body, "reward": Decimal(body["reward"]), "replayed": replayed})


def _replay_signal_event(signal_id: str) -> None:
    """A replayed answer emits the stored signal's analytics event again, as ledger writes do
    (``effects._after_commit_ledger``): when the COMMIT reached Postgres but the answer was lost,
    Django ran no ``on_commit`` callback, so the first call emitted nothing. The event's id and time
    come from the stored row, so ClickHouse (``ReplacingMergeTree`` by ``event_id``, read ``FINAL``)
    keeps one. NATS needs nothing here: an unpublished signal is retried by the beat task."""
    signal = RewardSignal.objects.filter(signal_id=signal_id).first()
    if signal is not None:
        emit_reward_signal(signal)


def loyalty_republish_pending_signals(*, older_than_seconds: int = 30, limit: int = 500) -> int:
    """Retry signals left unpublished (NATS was down). Signals younger than ``older_than_seconds``
    are skipped: their own after-commit publish may still be running. Returns how many went out."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        RewardSignal.objects.filter(published=False, created_at__lte=cutoff).order_by("pk").values_list("pk", flat=True)[:limit]
    )
    return loyalty_publish_signals(signal_ids=ids) if ids else 0

