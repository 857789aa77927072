"""The OfferFit-style decision client (docs/RULES.md §8).

OfferFit publishes no decision API (Braze bought it; its public integration calls the CEP in batch),
so the client speaks the documented rank/reward shape of Azure Personalizer v1.0
(/work/shared/notes/integrations-wire-formats.md §2), header ``Ocp-Apim-Subscription-Key``:

* ``POST {OFFERFIT_API_URL}/personalizer/v1.0/rank`` ``{"contextFeatures": [...], "actions": [{"id",
  "features": [...]}], "eventId", "deferActivation": false}`` → 201 ``{"ranking": [{"id",
  "probability"}], "eventId", "rewardActionId"}``; at most 50 actions.
* ``POST …/events/{eventId}/reward`` ``{"value": clip(value / 2, −1, 1)}`` → 204.
* ``sync_catalog``: ``POST …/catalog/actions`` ``{"actions": [{"id", "features"}]}`` — Personalizer
  has no catalogue call (features travel with every rank); this is our documented extension.

Off unless ``OFFERFIT_API_URL`` and ``OFFERFIT_API_KEY`` are set. Every call goes through the shared
outbound toolkit (``apps.core.outbound``) with a circuit breaker in Redis. ``rank`` has the decision's
budget (``OFFERFIT_TIMEOUT_MS``, 50 ms) and no retry; when it is off, slow, failing, refused by the
open breaker or answers something that is not a ranking of the candidates, it raises
:class:`Fallback` and Thompson sampling answers instead. A malformed 2xx counts as a breaker failure.
The ranking's probability of every candidate is kept (``Ranking.probabilities``): the decision logs
OfferFit's whole distribution, as it logs Thompson's.

``rank_for_evaluation`` (``manage.py evaluate_policy --policy offerfit-on``) asks what OfferFit would
rank for a logged round without letting it learn from it: ``"deferActivation": true`` under a fresh
``eventId`` (``eval-<uuid4>``, never a decision's id), and ``events/{id}/activate`` is never called
— Personalizer's documented way: an event that is not activated takes no reward and does not
train. It has its own client (``OFFERFIT_EVAL_TIMEOUT_MS``, 2 retries, idempotent: re-sending an
inactive rank changes nothing, no call-log row per round) behind the same breaker, and insists on
a whole distribution over the candidates (each probability in [0, 1], summing to 1 within
``DISTRIBUTION_TOLERANCE``), else it raises :class:`Fallback` with the reason.
"""
from __future__ import annotations

import math
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings

from apps.core.outbound import CircuitBreaker, OutboundClient, OutboundError

log = structlog.get_logger(__name__)

RANK_PATH = "/personalizer/v1.0/rank"
REWARD_PATH = "/personalizer/v1.0/events/{event_id}/reward"
CATALOG_PATH = "/personalizer/v1.0/catalog/actions"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
MAX_ACTIONS = 50
DISTRIBUTION_TOLERANCE = 1e-3  # |Σ probabilities − 1| accepted from an evaluation ranking
EVAL_EVENT_PREFIX = "eval-"


@dataclass(frozen=True)
class Ranking:
    offer_id: str
    propensity: float
    event_id: str
    #: each ranked candidate's probability as OfferFit gave it (the chosen one's is ``propensity``);
    #: entries that are not a candidate's or not a probability in [0, 1] are left out
    probabilities: dict[str, float] = field(default_factory=dict)


class Fallback(Exception):
    """OfferFit gave no usable answer; ``reason`` (off, timeout, error, breaker_open, bad_answer) is
    kept on the decision and Thompson answers (in an offerfit-on evaluation: the round is counted
    as unranked, also for ``bad_log``, a logged context that is not a JSON object)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def is_configured() -> bool:
    return bool(settings.OFFERFIT_API_URL and settings.OFFERFIT_API_KEY)


_lock = threading.Lock()
_clients: dict[tuple, tuple[OutboundClient, OutboundClient, OutboundClient]] = {}


def _breaker() -> CircuitBreaker:
    return CircuitBreaker("offerfit", failure_threshold=settings.OFFERFIT_BREAKER_FAILURES,
                          reset_seconds=settings.OFFERFIT_BREAKER_RESET_SECONDS)


def _clients_for_settings() -> tuple[OutboundClient, OutboundClient, OutboundClient]:
    """(rank, reward/catalogue, evaluation) clients for the current settings, one set per process,
    all behind the one breaker."""
    key = (settings.OFFERFIT_API_URL, settings.OFFERFIT_API_KEY, settings.OFFERFIT_TIMEOUT_MS,
           settings.OFFERFIT_EVAL_TIMEOUT_MS, settings.OFFERFIT_BREAKER_FAILURES, settings.OFFERFIT_BREAKER_RESET_SECONDS)
    with _lock:
        clients = _clients.get(key)
        if clients is None:
            headers = {KEY_HEADER: settings.OFFERFIT_API_KEY, "Accept": "application/json"}
            breaker = _breaker()
            # The decision path: the whole budget for one attempt, and no call-log row per decision.
            rank = OutboundClient("offerfit", settings.OFFERFIT_API_URL, timeout=settings.OFFERFIT_TIMEOUT_MS / 1000,
                                  retries=0, breaker=breaker, headers=headers, log_calls=False)
            # Rewards and the catalogue run in tasks: a longer timeout, retries, the call log.
            slow = OutboundClient("offerfit", settings.OFFERFIT_API_URL, timeout=5.0, retries=2, backoff=0.2,
                                  breaker=breaker, headers=headers)
            # offerfit-on evaluation: a batch job's timeout and retries, no call-log row per round.
            evaluation = OutboundClient("offerfit", settings.OFFERFIT_API_URL,
                                        timeout=settings.OFFERFIT_EVAL_TIMEOUT_MS / 1000, retries=2, backoff=0.2,
                                        breaker=breaker, headers=headers, log_calls=False)
            clients = _clients[key] = (rank, slow, evaluation)
    return clients


def _reason(exc: OutboundError) -> str:
    return {"timeout": "timeout", "breaker_open": "breaker_open"}.get(exc.kind, "error")


def _probability(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if 0 <= value <= 1 else None


def _ranked_probabilities(ranking: list, candidates: set[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for entry in ranking:
        if isinstance(entry, dict) and entry.get("id") in candidates and entry["id"] not in out:
            probability = _probability(entry.get("probability"))
            if probability is not None:
                out[entry["id"]] = probability
    return out


def _parse_ranking(body: Any, candidates: set[str]) -> Ranking:
    if not isinstance(body, dict):
        raise ValueError("the answer is not a JSON object")
    chosen, event_id, ranking = body.get("rewardActionId"), body.get("eventId"), body.get("ranking")
    if not isinstance(chosen, str) or chosen not in candidates:
        raise ValueError(f"rewardActionId {chosen!r} is not one of the candidates")
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("no eventId")
    if not isinstance(ranking, list):
        raise ValueError("no ranking list")
    for entry in ranking:
        if isinstance(entry, dict) and entry.get("id") == chosen:
            probability = entry.get("probability")
            if isinstance(probability, bool) or not isinstance(probability, (int, float)) or not 0 < probability <= 1:
                raise ValueError(f"the chosen action's probability {probability!r} is not in (0, 1]")
            probabilities = _ranked_probabilities(ranking, candidates)
            probabilities[chosen] = float(probability)
            return Ranking(chosen, float(probability), event_id, probabilities)
    raise ValueError("the chosen action is not in the ranking")


def rank(*, event_id: str, context: dict[str, Any], candidates: list[dict[str, Any]]) -> Ranking:
    """Ask OfferFit to choose among ``candidates`` (``[{"id", "features"?}]``) within the budget;
    raises :class:`Fallback` when it cannot."""
    if not is_configured():
        raise Fallback("off")
    if len(candidates) > MAX_ACTIONS:
        raise Fallback("error", f"more than {MAX_ACTIONS} actions")
    client = _clients_for_settings()[0]
    body = {
        "contextFeatures": [context],
        "actions": [{"id": c["id"], "features": c.get("features") or [{"offer": c["id"]}]} for c in candidates],
        "eventId": event_id,
        "deferActivation": False,
    }
    try:
        response = client.post(RANK_PATH, json=body, deadline=settings.OFFERFIT_TIMEOUT_MS / 1000)
    except OutboundError as exc:
        raise Fallback(_reason(exc), str(exc)) from exc
    try:
        return _parse_ranking(response.json(), {c["id"] for c in candidates})
    except ValueError as exc:  # includes a body that is not JSON
        if client.breaker is not None:
            client.breaker.record_failure()
        raise Fallback("bad_answer", str(exc)) from exc


def _parse_distribution(body: Any, candidates: list[str]) -> list[float]:
    """The ranking's probability of each candidate (in their order), or ValueError when the answer is
    not one whole distribution over them."""
    if not isinstance(body, dict):
        raise ValueError("the answer is not a JSON object")
    ranking = body.get("ranking")
    if not isinstance(ranking, list) or not ranking:
        raise ValueError("no ranking list")
    known = set(candidates)
    seen: dict[str, float] = {}
    for entry in ranking:
        if not isinstance(entry, dict) or entry.get("id") not in known:
            raise ValueError(f"ranking entry {entry!r} is not one of the candidates")
        if entry["id"] in seen:
            raise ValueError(f"action {entry['id']!r} is ranked twice")
        probability = _probability(entry.get("probability"))
        if probability is None:
            raise ValueError(f"action {entry['id']!r} has probability {entry.get('probability')!r}, not one in [0, 1]")
        seen[entry["id"]] = probability
    total = sum(seen.values())
    if abs(total - 1) > DISTRIBUTION_TOLERANCE:
        raise ValueError(f"the probabilities sum to {total:.6g}, not 1")
    return [seen.get(c, 0.0) for c in candidates]  # an action left out of the ranking: never chosen


def rank_for_evaluation(*, context: dict[str, Any], candidates: list[dict[str, Any]]) -> list[float]:
    """OfferFit's probability of each of ``candidates`` (``[{"id", "features"?}]``, in that order)
    for ``context``, asked with ``deferActivation`` under a fresh event id and never activated, so
    OfferFit does not learn from it. Raises :class:`Fallback` (off, timeout, error, breaker_open,
    bad_answer) when it cannot."""
    if not is_configured():
        raise Fallback("off")
    if not candidates or len(candidates) > MAX_ACTIONS:
        raise Fallback("error", f"1..{MAX_ACTIONS} actions, got {len(candidates)}")
    client = _clients_for_settings()[2]
    body = {
        "contextFeatures": [context],
        "actions": [{"id": c["id"], "features": c.get("features") or [{"offer": c["id"]}]} for c in candidates],
        "eventId": f"{EVAL_EVENT_PREFIX}{uuid.uuid4()}",
        "deferActivation": True,
    }
    try:
        response = client.post(RANK_PATH, json=body, idempotent=True)
    except OutboundError as exc:
        raise Fallback(_reason(exc), str(exc)) from exc
    try:
        return _parse_distribution(response.json(), [c["id"] for c in candidates])
    except ValueError as exc:  # includes a body that is not JSON
        if client.breaker is not None:
            client.breaker.record_failure()
        raise Fallback("bad_answer", str(exc)) from exc


def reward_value(value: float) -> float:
    """Our raw reward (clicked +1, redeemed +2, …) on Personalizer's −1..1 scale."""
    return max(-1.0, min(1.0, value / 2))


def reward(*, event_id: str, value: float) -> None:
    """Send the reward of an OfferFit-served decision. Raises OutboundError (a task retries it)."""
    if not is_configured():
        return
    client = _clients_for_settings()[1]
    client.post(REWARD_PATH.format(event_id=event_id), json={"value": reward_value(value)})


def sync_catalog(*, actions: list[dict[str, Any]]) -> int:
    """Push the offer catalogue (``[{"id", "features"}]``); returns how many actions were sent."""
    if not is_configured():
        return 0
    client = _clients_for_settings()[1]
    client.post(CATALOG_PATH, json={"actions": actions})
    return len(actions)
