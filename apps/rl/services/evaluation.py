"""``rl_evaluate_policy``: what another policy would have earned on the logged decisions of a range."""
from __future__ import annotations

import math
from datetime import datetime

from apps.core.exceptions import ServiceError
from apps.rl import evaluation
from apps.rl.models import EvaluationRun


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def rl_evaluate_policy(*, policy: str, start: datetime, end: datetime, batch: int = 100,
                       seed: int = 0) -> EvaluationRun:
    """Estimate ``policy`` (``uniform``, ``epsilon-greedy[:ε]``, ``thompson[:α,β]``, ``thompson:eb``, ``offerfit-off`` = the
    service's Thompson with the configured prior) with IPS, SNIPS and
    DR on the closed decisions made in ``[start, end)`` (ClickHouse decision log) and store the result."""
    from django.conf import settings

    from apps.analytics import selectors as analytics

    if policy.strip() == "offerfit-off":  # the service with OfferFit off: Thompson with the configured prior
        policy = f"thompson:{settings.RL_PRIOR_ALPHA:g},{settings.RL_PRIOR_BETA:g}"
    try:
        target = evaluation.policy_from_spec(policy)
    except ValueError as exc:
        raise ServiceError(str(exc), field="policy") from exc
    if end <= start:
        raise ServiceError("end must be after start.", field="end")
    rows = analytics.rl_decision_log(start=start, end=end, closed_only=True)
    rounds = [
        evaluation.Round(segment=r["segment"], candidates=tuple(r["candidates"]), action=r["offer_id"],
                         reward=1.0 if (r["reward"] == r["reward"] and r["reward"] > 0) else 0.0,
                         pscore=float(r["propensity"]))
        for r in rows if r["offer_id"] in r["candidates"]
    ]
    result = evaluation.evaluate(rounds, target, batch=batch, seed=seed)
    return EvaluationRun.objects.create(
        policy=result.policy, start=start, end=end, decisions=result.rounds,
        logged_value=_finite(result.logged_value) if rounds else None,
        estimates=[{k: (_finite(v) if isinstance(v, float) else v) for k, v in e.as_json().items()}
                   for e in result.estimates],
    )
