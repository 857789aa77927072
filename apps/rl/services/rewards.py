"""Closing decisions, exactly once: by ``POST /v1/decisions/{id}/reward``, by the feedback that
carries no decision id (loyalty reward signals, email clicks: the latest open decision for that
user and offer), or as a failure when the wait time passes. Closing is one conditional UPDATE
(``… WHERE status = 'open' AND expires_at > now``) plus one atomic posterior upsert in the same
transaction, so a replayed reward, a concurrent one or a late one changes nothing."""
from __future__ import annotations

import math
from collections import Counter as Tally
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone
from prometheus_client import Counter

from apps.core.exceptions import NotFound, ServiceError
from apps.rl import posteriors
from apps.rl.models import Decision, DecisionSource, DecisionStatus, RewardSource

from .log import log_decision

log = structlog.get_logger("apps.rl.services")

REWARDS = Counter("rl_rewards_total", "Decisions closed", ["source", "outcome"])
LATE_OR_REPEATED = Counter("rl_rewards_ignored_total", "Rewards that found their decision already closed or expired",
                           ["source"])
MAX_ABS_REWARD = 1_000_000.0


@dataclass(frozen=True)
class RewardResult:
    decision_id: str
    applied: bool
    status: str
    reward_value: float | None
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _clean_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ServiceError("value must be a number.", field="value")
    number = float(value)
    if not math.isfinite(number) or abs(number) > MAX_ABS_REWARD:
        raise ServiceError(f"value must be a finite number within ±{MAX_ABS_REWARD:g}.", field="value")
    return number


def _close(decision: Decision, *, value: float, source: str, ref: str | None, now: datetime) -> bool:
    """Close ``decision`` if it is still open and inside its wait time (in the caller's transaction)."""
    status = DecisionStatus.SUCCESS if value > 0 else DecisionStatus.FAILURE
    closed = Decision.objects.filter(pk=decision.pk, status=DecisionStatus.OPEN, expires_at__gt=now).update(
        status=status, reward_value=value, reward_source=source, reward_ref=ref, closed_at=now)
    if not closed:
        return False
    posteriors.posterior_add(offer_id=decision.offer_id, segment=decision.segment, campaign_id=decision.campaign_id,
                             successes=int(status == DecisionStatus.SUCCESS), failures=int(status == DecisionStatus.FAILURE))
    decision.status, decision.reward_value, decision.reward_source = status, value, source
    decision.reward_ref, decision.closed_at = ref, now
    transaction.on_commit(lambda: _after_close(decision))
    REWARDS.labels(source, status).inc()
    return True


def _after_close(decision: Decision) -> None:
    log_decision(decision)
    if decision.source == DecisionSource.OFFERFIT and decision.offerfit_event_id:
        from apps.rl.tasks import offerfit_reward

        offerfit_reward.delay(decision.pk)


def rl_reward(*, decision_id: Any, value: Any) -> RewardResult:
    """The first reward closes the decision (success when ``value > 0``); a repeated or late one is
    answered with ``applied=False`` and changes nothing."""
    value = _clean_value(value)
    decision = Decision.objects.filter(decision_id=decision_id).first()
    if decision is None:
        raise NotFound(f"No decision {decision_id}.", field="decision_id")
    now = timezone.now()
    with transaction.atomic():
        applied = _close(decision, value=value, source=RewardSource.API, ref=None, now=now)
    if applied:
        return RewardResult(str(decision.decision_id), True, str(decision.status), value)
    decision.refresh_from_db()
    LATE_OR_REPEATED.labels(RewardSource.API).inc()
    reason = "already_closed" if decision.status != DecisionStatus.OPEN else "wait_time_passed"
    return RewardResult(str(decision.decision_id), False, str(decision.status), decision.reward_value, reason)


def rl_feedback_record(*, user_id: str, offer_id: str, value: float, source: str, ref: str,
                       at: datetime | None = None) -> str | None:
    """Close the latest decision for ``(user_id, offer_id)`` that was open at ``at`` with this feedback
    event; ``ref`` (the event's id) closes at most one decision, so a replayed event counts once.
    Returns the decision id closed, or None."""
    at = at or timezone.now()
    open_ones = Decision.objects.filter(user_id=user_id, offer_id=offer_id, status=DecisionStatus.OPEN,
                                        created_at__lte=at, expires_at__gt=at).order_by("-created_at", "-id")
    for decision in open_ones[:5]:  # the next one only if a concurrent reward closed the latest first
        try:
            with transaction.atomic():
                if _close(decision, value=float(value), source=source, ref=ref, now=max(at, decision.created_at)):
                    return str(decision.decision_id)
        except IntegrityError:  # this event already closed a decision
            return None
    return None


def rl_expire_due(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Close, as failures, the open decisions whose wait time has passed. Safe to run concurrently
    (``SKIP LOCKED``); returns how many it closed."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(Decision.objects.select_for_update(skip_locked=True)
                   .filter(status=DecisionStatus.OPEN, expires_at__lte=now).order_by("expires_at")[:limit])
        if not due:
            return 0
        Decision.objects.filter(pk__in=[d.pk for d in due], status=DecisionStatus.OPEN).update(
            status=DecisionStatus.FAILURE, reward_source=RewardSource.EXPIRY, closed_at=now)
        per_arm = Tally((d.offer_id, d.segment, d.campaign_id) for d in due)
        for (offer_id, segment, campaign_id), n in sorted(per_arm.items()):
            posteriors.posterior_add(offer_id=offer_id, segment=segment, campaign_id=campaign_id, failures=n)
        for d in due:
            d.status, d.reward_source, d.closed_at = DecisionStatus.FAILURE, RewardSource.EXPIRY, now
        
        def log_all() -> None:
            for d in due:
                log_decision(d)

        transaction.on_commit(log_all)
    REWARDS.labels(RewardSource.EXPIRY, DecisionStatus.FAILURE).inc(len(due))
    return len(due)


FEEDBACK_WATERMARK_KEY = "rl:feedback:watermark"


def rl_feedback_poll(*, until: datetime | None = None) -> int:
    """Close decisions from the feedback that reached ClickHouse since the last poll (less the
    overlap): loyalty ``reward_signal`` events (their server-set reward: clicked +1, redeemed +2,
    ignored −0.1) and ``email_click`` events (+1). Returns how many decisions it closed."""
    from django.conf import settings

    from apps.analytics import selectors as analytics
    from apps.core import redis as redis_store

    client = redis_store.client()
    raw = client.get(FEEDBACK_WATERMARK_KEY)
    since = (datetime.fromtimestamp(float(raw), tz=dt_timezone.utc) if raw
             else timezone.now() - timedelta(seconds=settings.RL_REWARD_WAIT_SECONDS))
    since -= timedelta(seconds=settings.RL_FEEDBACK_OVERLAP_SECONDS)
    until = until or timezone.now()
    closed = 0
    # an event can only close a decision made within the wait time before it
    happened = since - timedelta(seconds=settings.RL_REWARD_WAIT_SECONDS)
    for event in analytics.decision_feedback_list(inserted_since=since, inserted_until=until, happened_since=happened):
        source = RewardSource.LOYALTY if event.event_type == "reward_signal" else RewardSource.EMAIL
        value = float(event.amount) if event.event_type == "reward_signal" and event.amount is not None else 1.0
        if rl_feedback_record(user_id=event.user_id or "", offer_id=event.offer_id or "", value=value, source=source,
                              ref=f"{event.event_type}:{event.event_id}", at=event.timestamp):
            closed += 1
    client.set(FEEDBACK_WATERMARK_KEY, str(until.timestamp()))
    return closed
