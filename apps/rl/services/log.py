"""The ClickHouse decision log (``apps.analytics.rl_decisions``): a row when a decision is made, a
newer version of it when it closes."""
from __future__ import annotations

import orjson

from apps.analytics.emitter import emit_record
from apps.rl.models import Decision


def _us(value) -> int:
    return int(value.timestamp() * 1_000_000) if value else 0


def log_decision(decision: Decision) -> None:
    """Queue the decision's log row (never blocks; see apps.analytics.emitter)."""
    probabilities = list(decision.probabilities) or [0.0] * len(decision.candidates)
    closed = decision.status != "open"
    emit_record("rl_decisions", (
        str(decision.decision_id), _us(decision.created_at), 1 if closed else 0, decision.user_id, decision.channel,
        decision.tier, decision.segment, decision.source, decision.offer_id, decision.campaign_id,
        decision.propensity, list(decision.candidates), probabilities,
        orjson.dumps(decision.context).decode(), decision.status, decision.reward_value, _us(decision.closed_at),
    ))
