"""The decision log: the ``rl_decisions`` record and its ClickHouse table (docs/RULES.md §8).

Every decision of ``apps.rl`` is logged with what off-policy evaluation needs — context,
candidates, the chosen offer and the propensity it was chosen with — once when it is made (status
``open``, version 0) and again when it closes (status, raw reward value, version 1). The table is a
``ReplacingMergeTree(version)`` keyed by the decision, so ``FINAL`` reads one row per decision: the
closed one once it exists. Both rows carry the decision's own time, so they share a partition.

``values``::

    (decision_id, decided_at_us, version, user_id, channel, tier, segment, source, offer_id,
     campaign_id, propensity, candidates, probabilities, context_json, status, reward, closed_at_us)
"""
from __future__ import annotations

import math

KIND = "rl_decisions"
TABLE = "rl_decisions"

FIELDS: tuple[str, ...] = (
    "decision_id", "version", "user_id", "channel", "tier", "segment", "source", "offer_id", "campaign_id",
    "propensity", "candidates", "probabilities", "context", "status", "reward", "closed_at_us",
)
COLUMNS: tuple[str, ...] = ("event_id", "timestamp", "timestamp_us") + FIELDS


class InvalidRecord(ValueError):
    """A decision record the flusher cannot turn into a row."""


def to_rows(ts_us: int, values: tuple) -> list[tuple]:
    try:
        (decision_id, decided_at_us, version, user_id, channel, tier, segment, source, offer_id, campaign_id,
         propensity, candidates, probabilities, context_json, status, reward, closed_at_us) = values
        propensity = float(propensity)
        if not (0 < propensity <= 1):
            raise InvalidRecord(f"{KIND}: propensity must be in (0, 1], got {propensity!r}")
        reward_value = float(reward) if reward is not None else math.nan
        decided_at_us = int(decided_at_us)
        decision_id = str(decision_id)
        return [(
            decision_id.replace("-", ""), KIND, decided_at_us // 1_000_000, decided_at_us % 1_000_000,
            decision_id, int(version), str(user_id), str(channel), str(tier), str(segment), str(source), str(offer_id),
            str(campaign_id or ""), propensity, [str(c) for c in candidates], [float(p) for p in probabilities],
            str(context_json or "{}"), str(status), reward_value, int(closed_at_us or 0),
        )]
    except InvalidRecord:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidRecord(f"bad {KIND} record: {type(exc).__name__}: {exc}") from exc


def insert_row(row: tuple) -> tuple:
    return tuple(row)
