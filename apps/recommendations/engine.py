"""The built recommendation model, its (de)serialisation and the per-strategy scoring; Django-free.

``build_model`` turns interaction rows and catalogue rows into one immutable ``RecModel``; a serving
process holds one reference to it and swaps that reference whole (``store.ModelStore``), so a request,
which reads the reference once, scores against one model from start to end. ``STRATEGIES`` is the one
table of model strategies (``new_arrivals`` needs no model: it reads the catalogue, always fresh).
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from . import algorithms as alg


@dataclass(frozen=True)
class CatalogRow:
    item_id: str
    name: str
    category: str = ""
    tags: tuple[str, ...] = ()
    attributes: dict = field(default_factory=dict)
    price: float | None = None
    available: bool = True


@dataclass(frozen=True)
class BuildParams:
    max_dense_items: int = 10_000
    ease_lambda: float = 300.0
    neighbours: int = 200
    basket_neighbours: int = 100


@dataclass(frozen=True)
class RecModel:
    version: str
    built_at: float
    item_ids: tuple[str, ...]
    names: tuple[str, ...]
    recommendable: np.ndarray  # bool per item: in the catalogue and available when built
    popularity: np.ndarray  # float per item: summed interaction weight
    cf: sp.csr_matrix
    fbt: sp.csr_matrix
    content: sp.csr_matrix
    tokens: tuple[str, ...]
    cf_method: str
    stats: dict
    index: dict[str, int] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.index:
            object.__setattr__(self, "index", {item: n for n, item in enumerate(self.item_ids)})

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float
    reason: str


def build_model(*, version: str, built_at: float, interactions: Iterable[tuple[str, str, str, float]],
                catalog: Iterable[CatalogRow], params: BuildParams = BuildParams()) -> RecModel:
    """``interactions``: ``(user_id, item_id, basket_id, weight)``. Items the catalogue does not know
    still count as signal (they link the items people chose together) but are never recommended."""
    index: dict[str, int] = {}
    names: list[str] = []
    rows = list(catalog)
    recommendable: list[bool] = []
    tokens: list[list[str]] = []
    for row in rows:
        if row.item_id in index:
            continue
        index[row.item_id] = len(names)
        names.append(row.name or row.item_id)
        recommendable.append(bool(row.available))
        tokens.append(alg.item_tokens(category=row.category, tags=row.tags, attributes=row.attributes,
                                      price=row.price))
    users: dict[str, int] = {}
    u_idx, i_idx, w = [], [], []
    baskets: dict[str, list[int]] = {}
    for user_id, item_id, basket_id, weight in interactions:
        if item_id not in index:
            index[item_id] = len(names)
            names.append(item_id)
            recommendable.append(False)
            tokens.append([])
        item = index[item_id]
        u_idx.append(users.setdefault(user_id, len(users)))
        i_idx.append(item)
        w.append(weight)
        if basket_id:
            baskets.setdefault(basket_id, []).append(item)
    n_items = len(names)
    x = alg.user_item_matrix(u_idx, i_idx, w, (len(users), n_items))
    cf, method = alg.cf_similarity(x, max_dense_items=params.max_dense_items, lam=params.ease_lambda,
                                   k=params.neighbours)
    fbt = alg.basket_pairs(list(baskets.values()), n_items, k=params.basket_neighbours)
    content, vocabulary = alg.tfidf_features(tokens)
    popularity = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    stats = {"users": len(users), "items": n_items, "catalog_items": len(rows), "interactions": len(w),
             "baskets": len(baskets), "cf_method": method, "cf_nnz": int(cf.nnz), "fbt_nnz": int(fbt.nnz)}
    return RecModel(version=version, built_at=built_at, item_ids=tuple(index), names=tuple(names),
                    recommendable=np.array(recommendable, dtype=bool), popularity=popularity, cf=cf.tocsr(),
                    fbt=fbt.tocsr(), content=content, tokens=tuple(vocabulary), cf_method=method, stats=stats,
                    index=index)


# --- serialisation (one bytes blob, written to Redis whole) -------------------------------------------
_MATRICES = ("cf", "fbt", "content")


def dumps(model: RecModel) -> bytes:
    arrays: dict[str, Any] = {"recommendable": model.recommendable, "popularity": model.popularity}
    for name in _MATRICES:
        m = getattr(model, name)
        arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"] = m.data, m.indices, m.indptr
        arrays[f"{name}_shape"] = np.array(m.shape, dtype=np.int64)
    meta = {"version": model.version, "built_at": model.built_at, "item_ids": model.item_ids,
            "names": model.names, "tokens": model.tokens, "cf_method": model.cf_method, "stats": model.stats}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def loads(blob: bytes) -> RecModel:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        matrices = {name: sp.csr_matrix((data[f"{name}_data"], data[f"{name}_indices"], data[f"{name}_indptr"]),
                                        shape=tuple(data[f"{name}_shape"])) for name in _MATRICES}
        return RecModel(version=meta["version"], built_at=meta["built_at"], item_ids=tuple(meta["item_ids"]),
                        names=tuple(meta["names"]), recommendable=data["recommendable"].astype(bool),
                        popularity=data["popularity"], tokens=tuple(meta["tokens"]), cf_method=meta["cf_method"],
                        stats=meta["stats"], **matrices)


# --- scoring ----------------------------------------------------------------------------------------
def history_vector(model: RecModel, history: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The user's items the model knows, as (indices, weights)."""
    known = [(model.index[item], weight) for item, weight in history.items() if item in model.index]
    if not known:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    idx, weights = zip(*known, strict=True)
    return np.array(idx, np.int64), np.array(weights, np.float32)


def _neighbour_strategy(matrix_name: str, reason: Callable[[str], str]):
    def score(model: RecModel, history: dict[str, float], n: int) -> list[Scored]:
        idx, weights = history_vector(model, history)
        if idx.size == 0:
            return []
        matrix = getattr(model, matrix_name)
        cols, values = alg.sparse_scores(alg.user_vector(idx, weights, model.n_items), matrix)
        top, scores = alg.top_n_entries(cols, values, n, allowed=model.recommendable, exclude=idx)
        because = alg.best_contributor(idx, weights, matrix, top)
        return [Scored(model.item_ids[t], float(v), reason(model.names[b]) if b >= 0 else "")
                for t, v, b in zip(top, scores, because, strict=True)]
    return score


def _token_reason(token: str) -> str:
    kind, _, value = token.partition(":")
    if kind == "category":
        return f"in {value}, like items you chose"
    if kind == "tag":
        return f"tagged {value}, like items you chose"
    return f"similar {kind.replace('_', ' ')} to items you chose"


def score_content_based(model: RecModel, history: dict[str, float], n: int) -> list[Scored]:
    idx, weights = history_vector(model, history)
    if idx.size == 0:
        return []
    vector = alg.user_vector(idx, weights, model.n_items)
    scores = alg.score_content(vector, model.content)
    top = alg.top_n(scores, n, allowed=model.recommendable, exclude=idx)
    if top.size == 0:
        return []
    profile = np.asarray((vector @ model.content).todense()).ravel()
    shared = model.content[top].multiply(profile).tocsr()  # per target: each token's part of the cosine
    out = []
    for row, target in enumerate(top):
        start, end = shared.indptr[row], shared.indptr[row + 1]
        best = shared.indices[start + int(np.argmax(shared.data[start:end]))] if end > start else -1
        reason = _token_reason(model.tokens[best]) if best >= 0 else "similar to items you chose"
        out.append(Scored(model.item_ids[target], float(scores[target]), reason))
    return out


def score_popular(model: RecModel, history: dict[str, float], n: int) -> list[Scored]:
    idx, _ = history_vector(model, history)
    top = alg.top_n(model.popularity, n, allowed=model.recommendable, exclude=idx)
    return [Scored(model.item_ids[t], float(model.popularity[t]), "popular with everyone") for t in top]


STRATEGIES: dict[str, Callable[[RecModel, dict[str, float], int], list[Scored]]] = {
    "cf": _neighbour_strategy("cf", lambda name: f"popular with people who chose {name}"),
    "content_based": score_content_based,
    "frequently_bought_together": _neighbour_strategy("fbt", lambda name: f"bought with {name}"),
}


# --- trending ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trending:
    computed_at: float
    window_hours: float
    items: tuple[tuple[str, float, int], ...]  # (item_id, decayed score, interactions in the window), best first

    def dumps(self) -> bytes:
        return json.dumps({"computed_at": self.computed_at, "window_hours": self.window_hours,
                           "items": self.items}).encode()

    @classmethod
    def loads(cls, blob: bytes) -> Trending:
        data = json.loads(blob)
        return cls(computed_at=data["computed_at"], window_hours=data["window_hours"],
                   items=tuple((i, float(s), int(c)) for i, s, c in data["items"]))


def compute_trending(rows: Iterable[tuple[str, float, float]], *, now: float, half_life_hours: float,
                     window_hours: float, keep: int) -> Trending:
    """``rows``: ``(item_id, weight, epoch seconds)``; the ``keep`` items with the largest
    ``Σ weight · 0.5^(age / half-life)`` over the window."""
    index: dict[str, int] = {}
    items, weights, ages = [], [], []
    for item_id, weight, at in rows:
        items.append(index.setdefault(item_id, len(index)))
        weights.append(weight)
        ages.append(now - at)
    ids = list(index)
    if not ids:
        return Trending(computed_at=now, window_hours=window_hours, items=())
    item_arr, age_arr = np.array(items), np.array(ages, dtype=np.float64)
    scores = alg.decayed_counts(item_arr, np.array(weights, np.float64), age_arr, len(ids),
                                half_life_seconds=half_life_hours * 3600, window_seconds=window_hours * 3600)
    inside = (age_arr >= 0) & (age_arr <= window_hours * 3600)
    counts = np.bincount(item_arr[inside], minlength=len(ids))
    top = alg.top_n(scores, keep)
    return Trending(computed_at=now, window_hours=window_hours,
                    items=tuple((ids[t], round(float(scores[t]), 6), int(counts[t])) for t in top))


def trending_reason(window_hours: float, count: int) -> str:
    span = f"{window_hours:g} h" if window_hours < 48 else f"{math.ceil(window_hours / 24)} days"
    return f"popular in the last {span} ({count} interaction{'s' if count != 1 else ''})"
