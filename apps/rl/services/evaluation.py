"""``rl_evaluate_policy``: what another policy would have earned on the logged decisions of a range.

``offerfit-on`` (the service with OfferFit answering every decision) is OfferFit's ranking
probability of each round's logged action:

* a round OfferFit served: the distribution it answered with, as logged (``probabilities``, aligned
  with ``candidates``); the logged action's is its propensity, so the round's weight is 1. A round
  logged with only the chosen action's probability (before the whole ranking was kept, or a ranking
  that was not one whole distribution) keeps that probability and DR uses q̂ = 0 on it (the IPS term);
* any other round (Thompson served: OfferFit off, or a fallback): asked now, ``rank`` with
  ``deferActivation`` under a fresh event id and never activated (``offerfit.rank_for_evaluation``),
  ``OFFERFIT_EVAL_CONCURRENCY`` calls at once, the context the decision sent (its logged context with
  channel and tier) and the candidates' current offer features (an id that is no offer now: the
  id-only feature, as a decision with explicit candidates sends). That is the model OfferFit has
  today, which may have learnt from rounds after the one asked about.

A round OfferFit cannot rank (timeout, 5xx, breaker open, an answer that is not one distribution
over the candidates) is left out. Leaving rounds out biases the estimate when their failures
follow the rewards, so at most ``OFFERFIT_EVAL_MAX_UNRANKED_SHARE`` (1 %) of the range's rounds may
be: more and the run is refused (ServiceError, nothing stored; the calls stop once the share is
certain to be passed); fewer and the run is estimated on the rest, the count by reason stored on it
(``excluded``, ``details``) and printed.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import structlog

from apps.core.exceptions import ServiceError
from apps.rl import evaluation, offerfit
from apps.rl.models import DecisionSource, EvaluationRun

log = structlog.get_logger("apps.rl.services")

OFFERFIT_ON, OFFERFIT_OFF = "offerfit-on", "offerfit-off"
PROPENSITY_TOLERANCE = 1e-9  # a logged OfferFit distribution must give the logged action its propensity

Progress = Callable[[int, int], None]  # (rounds ranked so far, rounds to rank)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _logged_distribution(row: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """An OfferFit-served round's logged distribution (whole: True) or, when the logged probabilities
    are not one aligned distribution, NaN but for the logged action's propensity (False)."""
    candidates, propensity = list(row["candidates"]), float(row["propensity"])
    index = candidates.index(row["offer_id"])
    probs = np.asarray(row["probabilities"], dtype=np.float64)
    if (len(probs) == len(candidates) and np.all(np.isfinite(probs)) and np.all((probs >= 0) & (probs <= 1))
            and abs(probs[index] - propensity) <= PROPENSITY_TOLERANCE
            and abs(probs.sum() - 1) <= offerfit.DISTRIBUTION_TOLERANCE):
        probs = probs.copy()
        probs[index] = propensity  # exactly the logged propensity: the round's weight is 1
        return probs, True
    partial = np.full(len(candidates), np.nan)
    partial[index] = propensity
    return partial, False


def _features(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The current features of the candidates that are offers (what a decision would send now)."""
    from apps.campaigns import selectors as campaigns
    from apps.rl.candidates import offer_features

    ids = {int(c) for r in rows for c in r["candidates"] if str(c).isdigit() and len(str(c)) < 19}
    return {str(o.pk): offer_features(o) for o in campaigns.offer_list_by_ids(offer_ids=ids)} if ids else {}


def _context(row: dict[str, Any]) -> dict[str, Any]:
    context = orjson.loads(row["context"] or "{}")
    if not isinstance(context, dict):
        raise ValueError("the logged context is not a JSON object")
    return {**context, "channel": row["channel"], "tier": row["tier"]}  # as rl_decide sent it


def _offerfit_on(rows: Sequence[dict[str, Any]], *, max_unranked_share: float,
                 progress: Progress | None) -> tuple[evaluation.GivenDistributions, dict[str, Any]]:
    from django.conf import settings

    n = len(rows)
    allowed = math.floor(max_unranked_share * n + 1e-9)
    distributions: list[np.ndarray | None] = [None] * n
    logged = partial = 0
    to_rank: list[int] = []
    for t, row in enumerate(rows):
        if row["source"] == DecisionSource.OFFERFIT:
            distributions[t], whole = _logged_distribution(row)
            logged += whole
            partial += not whole
        else:
            to_rank.append(t)
    unranked: Counter[str] = Counter()
    features = _features([rows[t] for t in to_rank]) if to_rank else {}

    def ask(t: int) -> list[float]:
        row = rows[t]
        try:
            context = _context(row)
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            raise offerfit.Fallback("bad_log", str(exc)) from exc
        return offerfit.rank_for_evaluation(
            context=context, candidates=[{"id": c, "features": features.get(c)} for c in row["candidates"]])

    def refuse() -> ServiceError:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(unranked.items()))
        return ServiceError(
            f"offerfit-on: OfferFit could not rank {sum(unranked.values())} of the {len(to_rank)} rounds it did not "
            f"serve ({reasons}), more than the {max_unranked_share:.1%} of the range's {n} closed decisions that may "
            f"be left out ({allowed}); not evaluated.", field="policy")

    done = 0
    if progress is not None:
        progress(0, len(to_rank))
    pending: dict[Future, int] = {}
    queue = iter(to_rank)
    with ThreadPoolExecutor(max_workers=settings.OFFERFIT_EVAL_CONCURRENCY,
                            thread_name_prefix="offerfit-eval") as pool:
        try:
            for t in queue:  # at most 2 × concurrency in flight: a refused run stops asking soon
                pending[pool.submit(ask, t)] = t
                if len(pending) >= 2 * settings.OFFERFIT_EVAL_CONCURRENCY:
                    break
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    t = pending.pop(future)
                    try:
                        distributions[t] = np.asarray(future.result(), dtype=np.float64)
                    except offerfit.Fallback as exc:
                        unranked[exc.reason] += 1
                        log.info("rl_offerfit_eval_unranked", reason=exc.reason, error=str(exc))
                    done += 1
                    if progress is not None:
                        progress(done, len(to_rank))
                if sum(unranked.values()) > allowed:
                    raise refuse()
                for t in queue:
                    pending[pool.submit(ask, t)] = t
                    if len(pending) >= 2 * settings.OFFERFIT_EVAL_CONCURRENCY:
                        break
        finally:
            for future in pending:
                future.cancel()
    details = {"offerfit_logged": logged, "offerfit_logged_partial": partial,
               "ranked": len(to_rank) - sum(unranked.values()), "unranked": dict(sorted(unranked.items()))}
    log.info("rl_offerfit_eval_ranked", rounds=n, **details)
    return evaluation.GivenDistributions(OFFERFIT_ON, distributions), details


def rl_evaluate_policy(*, policy: str, start: datetime, end: datetime, batch: int = 100, seed: int = 0,
                       max_unranked_share: float | None = None, progress: Progress | None = None) -> EvaluationRun:
    """Estimate ``policy`` (``uniform``, ``epsilon-greedy[:ε]``, ``thompson[:α,β]``, ``thompson:eb``,
    ``offerfit-off`` = the service's Thompson with the configured prior, ``offerfit-on`` = OfferFit's
    ranking, see the module) with IPS, SNIPS and DR on the closed decisions made in ``[start, end)``
    (ClickHouse decision log) and store the result. ``max_unranked_share`` (default
    ``OFFERFIT_EVAL_MAX_UNRANKED_SHARE``) and ``progress`` (called with (done, total) as rounds are
    ranked) concern ``offerfit-on`` only."""
    from django.conf import settings

    from apps.analytics import selectors as analytics

    spec = policy.strip()
    target: evaluation.Policy | None = None
    if spec == OFFERFIT_ON:
        if not offerfit.is_configured():
            raise ServiceError("offerfit-on asks OfferFit to rank the rounds it did not serve, and OfferFit is not "
                               "configured: set OFFERFIT_API_URL and OFFERFIT_API_KEY.", field="policy")
        share = settings.OFFERFIT_EVAL_MAX_UNRANKED_SHARE if max_unranked_share is None else max_unranked_share
        if not 0 <= share <= 1:
            raise ServiceError(f"the share of rounds that may be left out must be in [0, 1], got {share!r}.",
                               field="max_unranked_share")
    else:
        if spec == OFFERFIT_OFF:  # the service with OfferFit off: Thompson with the configured prior
            spec = f"thompson:{settings.RL_PRIOR_ALPHA:g},{settings.RL_PRIOR_BETA:g}"
        try:
            target = evaluation.policy_from_spec(spec)
        except ValueError as exc:
            raise ServiceError(str(exc), field="policy") from exc
    if end <= start:
        raise ServiceError("end must be after start.", field="end")
    rows = [r for r in analytics.rl_decision_log(start=start, end=end, closed_only=True)
            if r["offer_id"] in r["candidates"]]
    rounds = [
        evaluation.Round(segment=r["segment"], candidates=tuple(r["candidates"]), action=r["offer_id"],
                         reward=1.0 if (r["reward"] == r["reward"] and r["reward"] > 0) else 0.0,
                         pscore=float(r["propensity"]))
        for r in rows
    ]
    details: dict[str, Any] = {}
    if target is None:
        target, details = _offerfit_on(rows, max_unranked_share=share, progress=progress)
    result = evaluation.evaluate(rounds, target, batch=batch, seed=seed)
    return EvaluationRun.objects.create(
        policy=result.policy, start=start, end=end, decisions=result.rounds,
        logged_value=_finite(result.logged_value) if result.rounds else None,
        estimates=[{k: (_finite(v) if isinstance(v, float) else v) for k, v in e.as_json().items()}
                   for e in result.estimates],
        excluded=result.excluded, details=details,
    )
