"""Offline evaluation of the recommendation strategies on MovieLens-100k, beside `implicit`.

Data: the ``ml-100k`` atomic files of the ``recbole==1.2.1`` wheel, read in place (``bench/movielens.py``
``dataset_dir``; never copied: MovieLens' terms forbid redistribution). Every rating is an interaction
and every held-out rating is relevant (implicit feedback, as RecBole's published ml-100k figures).

Protocol: full-catalogue ranking (every item the user has not rated in training is a candidate, no
sampled negatives), recall@10 (hits / held-out items, RecBole's definition) and NDCG@10 averaged over
test users; mean and 95 % interval (Student t, 4 degrees of freedom) over 5 seeds.

* random: per user, a seeded random 80 % of their ratings train and 20 % test (each seed a new split);
* temporal: one global cut at the 80 % quantile of rating time, tested on users with ratings on both
  sides; each seed draws a bootstrap resample of those users (and seeds the models that take one).

Tuning: every model's parameters are chosen per seed on a validation split carved from the training
part the same way (random: 10 % per user; temporal: the newest 10 % by time), by recall@10, then the
model is refitted on the whole training part. The neighbourhood sizes are the same grid for ours
and implicit's kNN (50, 100, 200, 400).

    .venv/bin/python bench/recs_eval.py [--seeds 5] [--quick]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from apps.recommendations import algorithms as alg  # noqa: E402
from apps.recommendations import auto  # noqa: E402
from bench.movielens import _rows, dataset_dir  # noqa: E402

K = 10
KNN_GRID = (50, 100, 200, 400)
T_975_4 = 2.776  # Student t quantile, 4 degrees of freedom


def load():
    path = dataset_dir()
    inter = _rows(path / "ml-100k.inter")
    users = np.array([int(r[0]) for r in inter])
    items = np.array([int(r[1]) for r in inter])
    times = np.array([float(r[3]) for r in inter])
    _, u = np.unique(users, return_inverse=True)
    item_ids, i = np.unique(items, return_inverse=True)
    meta = {r[0]: r for r in _rows(path / "ml-100k.item")}
    tokens = []
    for item in item_ids:
        row = meta.get(str(item), [])
        genres = row[3].split() if len(row) > 3 else []
        year = int(row[2]) if len(row) > 2 and row[2].isdigit() else None
        tokens.append([f"genre:{g}" for g in genres] + ([f"decade:{year // 10}"] if year else []))
    return u, i, times, tokens


# --- splits -----------------------------------------------------------------------------------------
def split_random(u, fraction, rng):
    """Boolean test mask: per user, a random ``fraction`` of their rows (at least one if they have 2+)."""
    test = np.zeros(len(u), dtype=bool)
    order = np.lexsort((rng.random(len(u)), u))
    starts = np.r_[0, np.flatnonzero(np.diff(u[order])) + 1, len(u)]
    for a, b in itertools.pairwise(starts):
        n_test = int(round((b - a) * fraction))
        test[order[a:a + n_test]] = True
    return test


def split_time(times, fraction):
    cut = np.quantile(times, 1.0 - fraction)
    return times > cut


# --- metrics ----------------------------------------------------------------------------------------
def evaluate(recs: dict[int, np.ndarray], truth: dict[int, set], users) -> tuple[float, float]:
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    recall, ndcg = [], []
    for user in users:
        relevant = truth[user]
        top = recs[user]
        hits = np.array([item in relevant for item in top[:K]], dtype=float)
        recall.append(hits.sum() / len(relevant))
        idcg = discounts[:min(len(relevant), K)].sum()
        ndcg.append(float((hits * discounts[:len(hits)]).sum() / idcg))
    return float(np.mean(recall)), float(np.mean(ndcg))


def rank(scores: np.ndarray, train: sp.csr_matrix, users) -> dict[int, np.ndarray]:
    """Top K per user from a dense users × items score block, training items excluded."""
    out = {}
    for row, user in enumerate(users):
        s = scores[row].astype(np.float64, copy=True)
        s[train.indices[train.indptr[user]:train.indptr[user + 1]]] = -np.inf
        top = np.argpartition(-s, K)[:K]
        out[user] = top[np.lexsort((top, -s[top]))]
    return out


# --- models: each fit(train, params, seed) -> dense scores for users ---------------------------------
def _neighbour_scores(train, sim, users):
    return np.asarray((train[users] @ sim).todense())


def m_popularity(train, users, ctx, seed):
    pop = np.asarray((train > 0).sum(axis=0)).ravel().astype(np.float64)
    return np.tile(pop, (len(users), 1))


def m_cosine(train, users, ctx, seed, k=100, shrink=0.0):
    return _neighbour_scores(train, alg.cosine_similarity(train, k=k, shrink=shrink), users)


def m_rp3beta(train, users, ctx, seed, k=100, alpha=1.0, beta=0.5):
    return _neighbour_scores(train, alg.rp3beta_similarity(train, k=k, alpha=alpha, beta=beta), users)


def m_cf(train, users, ctx, seed, lam=300.0, k=200):
    """What the service's ``cf`` serves at this catalogue size (EASE, top-k neighbours by magnitude)."""
    sim, _ = alg.cf_similarity(train, max_dense_items=ctx.get("max_dense_items", 10_000), lam=lam, k=k)
    return _neighbour_scores(train, sim, users)


def m_fbt(train, users, ctx, seed, k=100):
    """Baskets: one user's ratings of one day (MovieLens has no orders; a session is the nearest thing)."""
    keys = ctx["train_user"].astype(np.int64) * 100_000 + (ctx["train_time"] // 86400).astype(np.int64)
    order = np.argsort(keys, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(keys[order])) + 1, len(keys)]
    baskets = [ctx["train_item"][order[a:b]] for a, b in itertools.pairwise(starts)]
    sim = alg.basket_pairs(baskets, train.shape[1], k=k)
    return _neighbour_scores(train, sim, users)


def m_content(train, users, ctx, seed):
    features, _ = alg.tfidf_features(ctx["tokens"])
    return np.vstack([alg.score_content(train[user], features) for user in users])


def m_trending(train, users, ctx, seed, half_life_days=7.0):
    now = ctx["train_time"].max()
    counts = alg.decayed_counts(ctx["train_item"], np.ones(len(ctx["train_item"])), now - ctx["train_time"],
                                train.shape[1], half_life_seconds=half_life_days * 86400,
                                window_seconds=4 * half_life_days * 86400)
    return np.tile(counts, (len(users), 1))


def m_new_arrivals(train, users, ctx, seed):
    """Newest first: an item's first rating in training stands for its catalogue arrival."""
    first = np.full(train.shape[1], np.inf)
    np.minimum.at(first, ctx["train_item"], ctx["train_time"])
    score = np.where(np.isfinite(first), first - ctx["train_time"].min() + 1.0, 0.0)
    return np.tile(score, (len(users), 1))


def _implicit(model_cls, train, users, seed, **params):
    model = model_cls(**params)
    model.fit(train.tocsr(), show_progress=False)
    ids, scores = model.recommend(np.asarray(users), train[users], N=K, filter_already_liked_items=True)
    return ids, scores


def _row_max_normalised(scores: np.ndarray) -> np.ndarray:
    peak = scores.max(axis=1, keepdims=True)
    return np.divide(scores, peak, out=np.zeros_like(scores, dtype=np.float64), where=peak > 0)


def m_auto(train, users, ctx, seed, weight=0.3, half_life_days=7.0, lam=300.0, k=200):
    """What ``auto`` serves: cf and trending, each scaled to its best item, added with the trending weight."""
    cf = _row_max_normalised(m_cf(train, users, ctx, seed, lam=lam, k=k))
    trending = _row_max_normalised(m_trending(train, users, ctx, seed, half_life_days=half_life_days))
    return cf + weight * trending


def m_implicit_cosine(train, users, ctx, seed, K_=100):
    from implicit.nearest_neighbours import CosineRecommender
    return _implicit(CosineRecommender, train, users, seed, K=K_)


def m_implicit_bm25(train, users, ctx, seed, K_=100, K1=1.2, B=0.75):
    from implicit.nearest_neighbours import BM25Recommender
    return _implicit(BM25Recommender, train, users, seed, K=K_, K1=K1, B=B)


def m_implicit_als(train, users, ctx, seed, factors=64, regularization=0.05, alpha=1.0):
    from implicit.cpu.als import AlternatingLeastSquares
    return _implicit(AlternatingLeastSquares, train, users, seed, factors=factors, regularization=regularization,
                     alpha=alpha, iterations=15, random_state=seed, calculate_training_loss=False)


MODELS = {
    # name: (function, grid of parameter dicts)
    "popularity": (m_popularity, [{}]),
    "cf (EASE)": (m_cf, [{"lam": lam, "k": k} for lam in (100.0, 300.0, 1000.0) for k in KNN_GRID]),
    "cf variant: RP3beta": (m_rp3beta, [{"k": k, "alpha": a, "beta": b} for k in KNN_GRID for a in (0.8, 1.0)
                                        for b in (0.3, 0.5)]),
    "cf variant: cosine": (m_cosine, [{"k": k, "shrink": s} for k in KNN_GRID for s in (0.0, 10.0)]),
    # the weights the rebuild tries (apps/recommendations/auto.py WEIGHTS), chosen on the validation split
    "auto (cf + trending)": (m_auto, [{"weight": w, "half_life_days": h} for w in auto.WEIGHTS for h in (7.0, 30.0)]),
    "content_based": (m_content, [{}]),
    "frequently_bought_together": (m_fbt, [{"k": k} for k in KNN_GRID]),
    "trending": (m_trending, [{"half_life_days": h} for h in (1.0, 7.0, 30.0)]),
    "new_arrivals": (m_new_arrivals, [{}]),
    "implicit CosineRecommender": (m_implicit_cosine, [{"K_": k} for k in KNN_GRID]),
    "implicit BM25Recommender": (m_implicit_bm25, [{"K_": k, "B": b} for k in KNN_GRID for b in (0.5, 0.75)]),
    "implicit ALS": (m_implicit_als, [{"factors": f, "regularization": r, "alpha": a} for f in (32, 64, 128)
                                      for r in (0.01, 0.1) for a in (1.0, 10.0)]),
}
LIBRARY = ("implicit CosineRecommender", "implicit BM25Recommender", "implicit ALS")
OURS = ("auto (cf + trending)", "cf (EASE)", "content_based", "frequently_bought_together", "trending", "new_arrivals")


def run_model(fn, params, train, users, ctx, seed):
    out = fn(train, users, ctx, seed, **params)
    if isinstance(out, tuple):  # implicit answers its own top K
        ids, _ = out
        return {user: ids[row] for row, user in enumerate(users)}
    return rank(out, train, users)


def _truth(u, i, mask):
    truth: dict[int, set] = {}
    for user, item in zip(u[mask], i[mask], strict=True):
        truth.setdefault(int(user), set()).add(int(item))
    return truth


def _matrix(u, i, mask, shape):
    return alg.user_item_matrix(u[mask], i[mask], None, shape).tocsr()


def _context(u, i, t, mask, tokens):
    return {"train_user": u[mask], "train_item": i[mask], "train_time": t[mask], "tokens": tokens}


def one_seed(data, split, seed, models):
    u, i, t, tokens = data
    shape = (u.max() + 1, i.max() + 1)
    rng = np.random.default_rng(seed)
    if split == "random":
        test = split_random(u, 0.2, rng)
        val = np.zeros_like(test)
        val[~test] = split_random(u[~test], 0.125, rng)  # 10 % of all ratings
    else:
        test = split_time(t, 0.2)
        val = np.zeros_like(test)
        val[~test] = split_time(t[~test], 0.125)
    train = ~test
    fit = train & ~val
    results = {}
    stage_truth = {"val": _truth(u, i, val), "test": _truth(u, i, test)}
    fit_m, train_m = _matrix(u, i, fit, shape), _matrix(u, i, train, shape)
    fit_users = set(np.unique(u[fit]).tolist())
    train_users = set(np.unique(u[train]).tolist())
    val_users = np.array(sorted(set(stage_truth["val"]) & fit_users))
    test_users = np.array(sorted(set(stage_truth["test"]) & train_users))
    if split == "temporal":
        test_users = np.sort(rng.choice(test_users, size=len(test_users), replace=True))
    for name in models:
        fn, grid = MODELS[name]
        started = time.perf_counter()
        if len(grid) > 1:
            scored = [(evaluate(run_model(fn, p, fit_m, val_users, _context(u, i, t, fit, tokens), seed),
                                stage_truth["val"], val_users)[0], n, p) for n, p in enumerate(grid)]
            best = max(scored, key=lambda s: (s[0], -s[1]))[2]
        else:
            best = grid[0]
        unique_users = np.unique(test_users)
        recs = run_model(fn, best, train_m, unique_users, _context(u, i, t, train, tokens), seed)
        results[name] = (*evaluate(recs, stage_truth["test"], test_users), best, time.perf_counter() - started)
    return results


def interval(values):
    values = np.asarray(values)
    half = T_975_4 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return values.mean(), values.mean() - half, values.mean() + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--splits", nargs="+", default=["random", "temporal"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="implicit")  # its CSR-conversion notices
    data = load()
    print(f"MovieLens-100k: {len(data[0])} ratings, {data[0].max() + 1} users, {data[1].max() + 1} items")
    summary = {}
    for split in args.splits:
        per_model: dict[str, list] = {name: [] for name in args.models}
        for seed in range(args.seeds):
            started = time.perf_counter()
            for name, row in one_seed(data, split, seed, args.models).items():
                per_model[name].append(row)
            print(f"  {split} seed {seed} done in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"\n{split} split, {args.seeds} seeds, mean [95 % interval]:")
        print(f"{'model':<30} {'recall@10':>26} {'NDCG@10':>26}  chosen parameters (last seed)")
        for name, rows in per_model.items():
            r, n = interval([row[0] for row in rows]), interval([row[1] for row in rows])
            summary[(split, name)] = (r, n)
            print(f"{name:<30} {r[0]:.4f} [{r[1]:.4f}, {r[2]:.4f}]   {n[0]:.4f} [{n[1]:.4f}, {n[2]:.4f}]  {rows[-1][2]}")
    for split in args.splits:
        ours = [n for n in OURS if (split, n) in summary]
        lib = [n for n in LIBRARY if (split, n) in summary]
        if not ours or not lib:
            continue
        best_ours = max(ours, key=lambda n: summary[(split, n)][0][0])
        best_lib = max(lib, key=lambda n: summary[(split, n)][0][0])
        o, b = summary[(split, best_ours)][0], summary[(split, best_lib)][0]
        verdict = "met" if o[0] >= b[1] else "NOT met"
        print(f"{split}: our best {best_ours} {o[0]:.4f} vs library best {best_lib} {b[0]:.4f} "
              f"[{b[1]:.4f}, {b[2]:.4f}]: no worse within its interval {verdict}"
              + (f"; >= 0.207 {'met' if o[0] >= 0.207 else 'NOT met'}" if split == "random" else ""))


if __name__ == "__main__":
    main()
