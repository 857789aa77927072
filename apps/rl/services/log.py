"""The ClickHouse decision log (``apps.analytics.rl_decisions``): a row when a decision is made, a
newer version of it when it closes."""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import orjson

from apps.analytics.emitter import emit_record
from apps.rl.models import Decision


def _us(value) -> int:
    return int(value.timestamp() * 1_000_000) if value else 0


def log_row(*, decision_id: uuid.UUID | str, created_at: datetime, user_id: str, channel: str, tier: str,
            segment: str, source: str, offer_id: str, campaign_id: str, propensity: float,
            candidates: Sequence[str], probabilities: Sequence[float], context_json: str, status: str = "open",
            reward_value: float | None = None, closed_at: datetime | None = None) -> tuple:
    """The ``rl_decisions`` record of a decision (version 1 once it is closed)."""
    probabilities = list(probabilities) or [0.0] * len(candidates)
    return (
        str(decision_id), _us(created_at), 0 if status == "open" else 1, user_id, channel, tier, segment, source,
        offer_id, campaign_id, propensity, list(candidates), probabilities, context_json, status, reward_value,
        _us(closed_at),
    )


def log_record(record: tuple) -> None:
    """Queue a record made by :func:`log_row` (never blocks; see apps.analytics.emitter)."""
    emit_record("rl_decisions", record)


def log_decision(decision: Decision) -> None:
    """Queue the decision's log row, as it stands (open or closed)."""
    log_record(log_row(
        decision_id=decision.decision_id, created_at=decision.created_at, user_id=decision.user_id,
        channel=decision.channel, tier=decision.tier, segment=decision.segment, source=decision.source,
        offer_id=decision.offer_id, campaign_id=decision.campaign_id, propensity=decision.propensity,
        candidates=decision.candidates, probabilities=decision.probabilities,
        context_json=orjson.dumps(decision.context).decode(), status=decision.status,
        reward_value=decision.reward_value, closed_at=decision.closed_at,
    ))
