"""Reads: the recommendations for one user (``recommendations_for_user``) and catalogue look-ups.

The user's history is read fresh from the interactions on every request (so what they chose a
second ago is excluded and already feeds ``cf``, ``content_based`` and ``frequently_bought_together``
through the last built model), and every candidate's availability is checked against the catalogue
rows, so an item switched off since the last rebuild never appears.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from apps.core.exceptions import ServiceError, Unavailable
from apps.core.identifiers import clean_user_id
from apps.omnichannel import selectors as omni

from . import auto, engine
from .models import CatalogItem, ModelBuild
from .store import get_store

# ``auto`` blends the two strategies that won the offline evaluation (bench/recs_eval.py, bench/README.md
# "Recommendations"), cf on the random split and trending on the temporal one, with the weight each
# rebuild tunes on the newest interactions (``auto.py``); a user with no history gets the cold-start answer.
STRATEGY_NAMES = ("auto", "cf", "content_based", "frequently_bought_together", "trending", "new_arrivals")


@dataclass(frozen=True)
class Recommendations:
    user_id: str
    strategy: str
    items: list[engine.Scored]


def clean_strategy(value) -> str:
    strategy = "auto" if value is None else value
    if strategy not in STRATEGY_NAMES:
        raise ServiceError(f"strategy: unknown strategy {str(value)[:60]!r}; use one of {', '.join(STRATEGY_NAMES)}",
                           field="strategy")
    return strategy


def clean_limit(value) -> int:
    maximum = settings.RECS_MAX_LIMIT
    if value is None:
        return settings.RECS_DEFAULT_LIMIT
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    try:
        if not isinstance(value, str) or not value.isascii() or not value.lstrip("-").isdigit():
            raise ValueError(value)
        limit = int(value)
    except ValueError:
        raise ServiceError(f"limit: must be a whole number from 1 to {maximum}, got {str(value)[:30]!r}",
                           field="limit") from None
    if not 1 <= limit <= maximum:
        raise ServiceError(f"limit: must be from 1 to {maximum}, got {limit}", field="limit")
    return limit


def user_history(user_id: str) -> dict[str, float]:
    """Item → summed interaction weight, for every item the user interacted with."""
    return omni.interaction_user_weights(user_id=user_id)


def _model() -> engine.RecModel:
    model = get_store().current()
    if model is None:
        raise Unavailable("the recommendation models are not built yet; the scheduled rebuild (or "
                          "manage.py rebuild_recommendations) builds them", retry_after=60)
    return model


def _cold_start(history: dict[str, float], n: int) -> list[engine.Scored]:
    """Trending over the window, then (when that is short) what is popular overall."""
    out: list[engine.Scored] = []
    trending = get_store().trending()
    if trending is not None:
        out = [engine.Scored(item, score, engine.trending_reason(trending.window_hours, count))
               for item, score, count in trending.items if item not in history][:n]
    if len(out) < n:
        model = get_store().current()
        if model is not None:
            seen = {s.item_id for s in out}
            out += [s for s in engine.score_popular(model, history, n + len(out)) if s.item_id not in seen]
    return out[:n]


def _auto(history: dict[str, float], n: int) -> list[engine.Scored]:
    model = get_store().current()
    first = auto.score_auto(model, get_store().trending(), history, n) if model is not None and history else []
    if len(first) >= n:
        return first
    seen = {s.item_id for s in first}
    return first + [s for s in _cold_start(history, n) if s.item_id not in seen]


def _model_strategy(name: str) -> Callable[[dict[str, float], int], list[engine.Scored]]:
    return lambda history, n: engine.STRATEGIES[name](_model(), history, n)


CANDIDATES: dict[str, Callable[[dict[str, float], int], list[engine.Scored]]] = {
    "auto": _auto,
    "trending": _cold_start,
    **{name: _model_strategy(name) for name in engine.STRATEGIES},
}


def _available(item_ids: list[str]) -> set[str]:
    return set(CatalogItem.objects.filter(item_id__in=item_ids, available=True).values_list("item_id", flat=True))


def _new_arrivals(history: dict[str, float], limit: int) -> list[engine.Scored]:
    now = timezone.now()
    qs = CatalogItem.objects.filter(available=True).order_by("-created_at", "item_id")
    if history:
        qs = qs.exclude(item_id__in=list(history))
    out = []
    for item_id, created_at in qs.values_list("item_id", "created_at")[:limit]:
        days = max((now - created_at).total_seconds(), 0.0) / 86400
        when = "today" if days < 1 else ("yesterday" if days < 2 else f"{int(days)} days ago")
        out.append(engine.Scored(item_id, round(0.5 ** (days / 30), 6), f"new arrival, added {when}"))
    return out


def recommendations_for_user(*, user_id, strategy=None, limit=None) -> Recommendations:
    """Up to ``limit`` items for the user, best first, each with a score and a marketer-readable
    reason; items the user already interacted with and unavailable items never appear. An unknown
    user gets the cold-start answer (trending, then popular) under ``auto`` and ``trending``."""
    user_id = clean_user_id(user_id)
    strategy, limit = clean_strategy(strategy), clean_limit(limit)
    history = user_history(user_id)
    if strategy == "new_arrivals":
        return Recommendations(user_id, strategy, _new_arrivals(history, limit))
    candidates = CANDIDATES[strategy]
    window = limit * 2 + 10
    while True:
        scored = candidates(history, window)
        available = _available([s.item_id for s in scored])
        kept = [s for s in scored if s.item_id in available and s.item_id not in history]
        if len(kept) >= limit or len(scored) < window:
            return Recommendations(user_id, strategy, kept[:limit])
        window *= 4


def last_build() -> ModelBuild | None:
    return ModelBuild.objects.filter(status=ModelBuild.Status.SERVED).order_by("-finished_at").first()


def catalog_item_get(*, item_id: str) -> CatalogItem | None:
    return CatalogItem.objects.filter(item_id=item_id).first()


def best_item_for_user(*, user_id, strategy="auto") -> tuple[CatalogItem, engine.Scored] | None:
    """The one item to offer this user (the activation cascade's "best item instead of a fixed
    offer"), with its score and reason; None when the strategy has nothing for them."""
    result = recommendations_for_user(user_id=user_id, strategy=strategy, limit=1)
    if not result.items:
        return None
    top = result.items[0]
    item = CatalogItem.objects.filter(item_id=top.item_id).first()
    return (item, top) if item is not None else None


def recommendations_for_surface(*, user_id, count, strategy="auto") -> list[dict]:
    """What an in-app or web surface shows beside its messages: the user's top ``count`` items with
    their name, price, score and reason (``count`` and ``strategy`` checked like the API's)."""
    try:
        count = clean_limit(count)
    except ServiceError as exc:
        raise ServiceError(exc.message.replace("limit:", "recommendations:", 1), field="recommendations") from None
    result = recommendations_for_user(user_id=user_id, strategy=strategy, limit=count)
    items = {i.item_id: i for i in CatalogItem.objects.filter(item_id__in=[s.item_id for s in result.items])}
    return [{"item_id": s.item_id, "name": items[s.item_id].name,
             "price": None if items[s.item_id].price is None else str(items[s.item_id].price),
             "score": round(s.score, 6), "reason": s.reason} for s in result.items if s.item_id in items]
