"""Reads of apps.rl: decisions, posteriors with their intervals, the OfferFit share, evaluations."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, QuerySet

from apps.core.exceptions import NotFound
from apps.rl.models import Decision, EvaluationRun, Posterior
from apps.rl.thompson import beta_interval


def decision_get(*, decision_id: uuid.UUID | str) -> Decision:
    decision = Decision.objects.filter(decision_id=decision_id).first()
    if decision is None:
        raise NotFound(f"No decision {decision_id}.", field="decision_id")
    return decision


@dataclass(frozen=True)
class PosteriorSummary:
    mean: float
    low: float
    high: float
    trials: int
    successes: int


def posterior_summary(posterior: Posterior) -> PosteriorSummary:
    mean, low, high = beta_interval(posterior.successes, posterior.failures, prior_alpha=settings.RL_PRIOR_ALPHA,
                                    prior_beta=settings.RL_PRIOR_BETA)
    return PosteriorSummary(mean, low, high, posterior.trials, posterior.successes)


def decision_source_share() -> dict[str, float]:
    """Share of all decisions served by each source (offerfit, thompson)."""
    counts = dict(Decision.objects.values_list("source").annotate(n=Count("id")).values_list("source", "n"))
    total = sum(counts.values())
    return {source: n / total for source, n in counts.items()} if total else {}


def evaluation_runs_latest(*, limit: int = 20) -> QuerySet[EvaluationRun]:
    return EvaluationRun.objects.order_by("-created_at", "-id")[:limit]
