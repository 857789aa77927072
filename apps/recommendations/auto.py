"""``auto``: cf and trending, each scaled to its best item, added with a weight that every rebuild
tunes on the newest interactions; Django-free.

Why a blend, and why tuned on the newest data: on MovieLens-100k (bench/recs_eval.py) cf wins a
random split by far (trending adds nothing there: the tuned weight is 0), while on a temporal split,
which is what production sees, what is popular right now wins and cf alone is half as good; a weight
of 1–3 recovers most of trending's recall with a better NDCG than either. No one weight wins both, so
the rebuild measures it: it holds out the newest ``HOLDOUT`` of interactions, builds cf and trending
from the rest, and keeps the weight with the best recall@10 on the held-out ones.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import algorithms as alg
from . import engine

WEIGHTS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
DEFAULT_WEIGHT = 0.3  # used until there is enough data to tune (a mild lean on cf)
HOLDOUT = 0.1
MIN_USERS = 20
MAX_USERS = 2000
K = 10


def _parts(model: engine.RecModel, trending: engine.Trending | None, history: dict[str, float]):
    idx, weights = engine.history_vector(model, history)
    cf = np.zeros(model.n_items)
    if idx.size:
        cf = alg.score_neighbours(alg.user_vector(idx, weights, model.n_items), model.cf)
    peak = cf.max(initial=0.0)
    cf = cf / peak if peak > 0 else np.zeros(model.n_items)
    tr = np.zeros(model.n_items)
    counts: dict[str, int] = {}
    extra: dict[str, float] = {}
    if trending is not None and trending.items:
        top = max(s for _, s, _ in trending.items) or 1.0
        for item, score, count in trending.items:
            counts[item] = count
            j = model.index.get(item)
            if j is None:
                extra[item] = score / top
            else:
                tr[j] = score / top
    return idx, weights, cf, tr, counts, extra


def score_auto(model: engine.RecModel, trending: engine.Trending | None, history: dict[str, float], n: int,
               weight: float | None = None) -> list[engine.Scored]:
    """The ``n`` best items by ``cf / max(cf) + weight · trending / max(trending)``, each with the
    reason of the part that gave it more. Only the items either part scored are looked at (the same
    answer as the dense sum ``tune_weight`` ranks by)."""
    w = model.stats.get("auto_weight", DEFAULT_WEIGHT) if weight is None else weight
    idx, weights = engine.history_vector(model, history)
    cf_cols, cf_vals = (alg.sparse_scores(alg.user_vector(idx, weights, model.n_items), model.cf) if idx.size
                        else (np.empty(0, np.int64), np.empty(0)))
    peak = cf_vals.max(initial=0.0)
    cf_vals = cf_vals / peak if peak > 0 else np.zeros_like(cf_vals)
    tr_cols, tr_vals, counts, extra = [], [], {}, {}
    if trending is not None and trending.items and w > 0:
        top_score = max(s for _, s, _ in trending.items) or 1.0
        for item, score, count in trending.items:
            counts[item] = count
            j = model.index.get(item)
            if j is None:
                extra[item] = w * score / top_score
            else:
                tr_cols.append(j)
                tr_vals.append(w * score / top_score)
    cols = np.concatenate([cf_cols, np.array(tr_cols, dtype=np.int64)])
    unique, inverse = np.unique(cols, return_inverse=True)
    cf_part = np.bincount(inverse[:cf_cols.size], weights=cf_vals, minlength=unique.size)
    tr_part = np.bincount(inverse[cf_cols.size:], weights=np.array(tr_vals), minlength=unique.size)
    top, totals = alg.top_n_entries(unique, cf_part + tr_part, n, allowed=model.recommendable, exclude=idx)
    where = np.searchsorted(unique, top)
    because = alg.best_contributor(idx, weights, model.cf, top)
    window = trending.window_hours if trending is not None else 24.0
    out = []
    for t, total, at, b in zip(top, totals, where, because, strict=True):
        item = model.item_ids[t]
        if cf_part[at] >= tr_part[at] and b >= 0:
            reason = f"popular with people who chose {model.names[b]}"
        else:
            reason = engine.trending_reason(window, counts.get(item, 0))
        out.append(engine.Scored(item, float(total), reason))
    if extra:
        out += [engine.Scored(item, s, engine.trending_reason(window, counts[item]))
                for item, s in extra.items() if item not in history]
        out.sort(key=lambda s: -s.score)
    return out[:n]


def tune_weight(rows: Sequence[tuple[str, str, str, float, float]], catalog: Sequence[engine.CatalogRow], *,
                params: engine.BuildParams, half_life_hours: float, window_hours: float,
                seed: int = 0) -> tuple[float | None, dict[float, float]]:
    """The weight with the best recall@10 on the newest ``HOLDOUT`` of ``rows`` (``(user, item,
    basket, weight, epoch)``), from models built on the rest; ``(None, {})`` with too few users to tell."""
    if not rows:
        return None, {}
    times = np.array([r[4] for r in rows])
    cut = float(np.quantile(times, 1.0 - HOLDOUT))
    older = [r for r in rows if r[4] <= cut]
    newer = [r for r in rows if r[4] > cut]
    model = engine.build_model(version="tune", built_at=cut, interactions=[r[:4] for r in older], catalog=catalog,
                               params=params)
    trending = engine.compute_trending(((r[1], r[3], r[4]) for r in older), now=cut,
                                       half_life_hours=half_life_hours, window_hours=window_hours, keep=1000)
    histories: dict[str, dict[str, float]] = {}
    for user, item, _, weight, _ in older:
        histories.setdefault(user, {})
        histories[user][item] = histories[user].get(item, 0.0) + weight
    truth: dict[str, set[str]] = {}
    for user, item, *_ in newer:
        j = model.index.get(item)
        if user in histories and item not in histories[user] and j is not None and model.recommendable[j]:
            truth.setdefault(user, set()).add(item)
    users = sorted(truth)
    if len(users) < MIN_USERS:
        return None, {}
    if len(users) > MAX_USERS:
        users = sorted(np.random.default_rng(seed).choice(users, MAX_USERS, replace=False).tolist())
    recall = {w: 0.0 for w in WEIGHTS}
    for user in users:
        parts = _parts(model, trending, histories[user])
        idx, cf, tr = parts[0], parts[2], parts[3]
        for w in WEIGHTS:
            top = alg.top_n(cf + w * tr, K, allowed=model.recommendable, exclude=idx)
            hits = sum(model.item_ids[t] in truth[user] for t in top)
            recall[w] += hits / len(truth[user])
    table = {w: r / len(users) for w, r in recall.items()}
    best = max(WEIGHTS, key=lambda w: (round(table[w], 9), -w))
    return best, table
