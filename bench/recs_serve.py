"""Recommendations at size: rebuild time and memory, and in-process serve latency per strategy.

Synthetic shop: ``--items`` catalogue items (default 100,000) in 500 categories with tags and a
price, ``--interactions`` interactions (default 1,000,000) by users with a taste (70 % of their items
from one category, 30 % by overall popularity, Zipf-like), purchases grouped into baskets of about
three. Rebuild = what ``services.recommendations_rebuild`` computes: ``auto.tune_weight`` (a model on
the oldest 90 % and recall@10 of each weight on the newest 10 %) and ``engine.build_model`` on all of
it, then the blob (``engine.dumps``) and its load (``engine.loads``, what each serving process does
on a swap). Memory: peak resident set of this process (``ru_maxrss``), before and after.

Serving: a user with ``--history`` (50) interactions; each strategy as the selector asks it (the top
``limit * 2 + 10`` candidates with their reasons, limit 10), ``--requests`` times after a warm-up;
p50 / p99 / max of wall-clock time and p50 / p99 of the thread's CPU time (on the shared
2-core box a long wall tail with a short CPU tail is time spent waiting for a core). This is the in-process part of ``GET /v1/recommendations``: the request also reads
the user's interactions and the candidates' availability from Postgres (two indexed queries).

With ``--django`` the whole read path is timed too, ``selectors.recommendations_for_user`` as the
view calls it (the user's interactions and the candidates' availability read from Postgres, the
model from this process's store): the catalogue items and the user's 50 interactions are written to
the configured database (``DATABASE_URL``: use your own) and the model to Redis under a
``recs-bench`` prefix, and all of it is deleted at the end.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/recs_serve.py [--items 100000] [--interactions 1000000] [--django]
"""
from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from apps.recommendations import auto, engine  # noqa: E402

HEADER = f"{'strategy':<28} {'p50':>7} {'p99':>7} {'max':>7}   {'CPU p50':>7} {'CPU p99':>7}  answered"


def _row(name: str, wall: np.ndarray, cpu: np.ndarray, answered: int) -> str:
    """Wall-clock and this thread's CPU time: on a shared box the wall tail is mostly waiting for a core."""
    p50, p99 = np.percentile(wall, [50, 99])
    c50, c99 = np.percentile(cpu, [50, 99])
    return f"{name:<28} {p50:7.2f} {p99:7.2f} {wall.max():7.2f}   {c50:7.2f} {c99:7.2f}  {answered} items"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n_items: int, n_interactions: int, seed: int):
    rng = np.random.default_rng(seed)
    categories = 500
    item_category = rng.integers(0, categories, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = rng.permutation(popularity)
    popularity /= popularity.sum()
    by_category = [np.flatnonzero(item_category == c) for c in range(categories)]
    catalog = [engine.CatalogRow(item_id=f"sku-{i}", name=f"Item {i}", category=f"cat-{item_category[i]}",
                                 tags=(f"tag-{i % 97}", f"tag-{i % 89}"), price=float(5 + i % 300),
                                 available=bool(i % 50)) for i in range(n_items)]
    per_user = 20
    n_users = n_interactions // per_user
    taste = rng.integers(0, categories, n_users)
    users = np.repeat(np.arange(n_users), per_user)
    from_taste = rng.random(n_interactions) < 0.7
    items = rng.choice(n_items, n_interactions, p=popularity)
    pool_index = rng.random(n_interactions)
    taste_of_row = taste[users]
    for c in range(categories):
        rows = np.flatnonzero(from_taste & (taste_of_row == c))
        pool = by_category[c]
        if rows.size and pool.size:
            weights = popularity[pool] / popularity[pool].sum()
            items[rows] = pool[np.searchsorted(np.cumsum(weights), pool_index[rows]).clip(0, pool.size - 1)]
    times = 1_700_000_000 + np.sort(rng.random(n_interactions)) * 30 * 86400
    order = rng.permutation(n_interactions)  # users interleaved in time
    users, items = users[order], items[order]
    purchase = rng.random(n_interactions) < 0.3
    baskets = np.where(purchase, users * 100 + (np.arange(n_interactions) // 3) % 7, -1)
    weights = np.where(purchase, 5.0, 1.0)
    rows = [(f"u{u}", f"sku-{i}", f"b{b}" if b >= 0 else "", w, t)
            for u, i, b, w, t in zip(users.tolist(), items.tolist(), baskets.tolist(), weights.tolist(),
                                     times.tolist(), strict=True)]
    return rows, catalog, rng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--history", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--neighbours", type=int, default=200)
    parser.add_argument("--max-dense-items", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-tuning", action="store_true", help="time build_model only")
    parser.add_argument("--django", action="store_true", help="also time the selector with Postgres and Redis")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rows, catalog, rng = synthetic(args.items, args.interactions, args.seed)
    print(f"synthetic shop: {args.items:,} items, {len(rows):,} interactions, "
          f"{len({r[0] for r in rows}):,} users, made in {time.perf_counter() - t0:.1f} s; peak RSS {peak_mb():.0f} MB",
          flush=True)
    params = engine.BuildParams(max_dense_items=args.max_dense_items, neighbours=args.neighbours,
                                basket_neighbours=args.neighbours)
    before = peak_mb()
    tune_s = 0.0
    weight = auto.DEFAULT_WEIGHT
    if not args.skip_tuning:
        t0 = time.perf_counter()
        tuned, table = auto.tune_weight(rows, catalog, params=params, half_life_hours=6, window_hours=24)
        tune_s = time.perf_counter() - t0
        weight = auto.DEFAULT_WEIGHT if tuned is None else tuned
        print(f"auto weight tuned on the newest 10 %: {weight} in {tune_s:.1f} s "
              f"(recall@10 per weight: {', '.join(f'{w:g}: {r:.4f}' for w, r in table.items())})", flush=True)
    t0 = time.perf_counter()
    model = engine.build_model(version="bench", built_at=time.time(), interactions=[r[:4] for r in rows],
                               catalog=catalog, params=params)
    model.stats["auto_weight"] = weight
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    blob = engine.dumps(model)
    dump_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = engine.loads(blob)
    load_s = time.perf_counter() - t0
    print(f"build_model: {build_s:.1f} s (cf={model.cf_method}, cf nnz {model.cf.nnz:,}, fbt nnz {model.fbt.nnz:,}, "
          f"content nnz {model.content.nnz:,}); rebuild total {tune_s + build_s:.1f} s", flush=True)
    print(f"blob {len(blob) / 1e6:.1f} MB, dumps {dump_s:.2f} s, loads {load_s:.2f} s; "
          f"peak RSS {before:.0f} MB before the rebuild, {peak_mb():.0f} MB after", flush=True)

    now = time.time()
    trending = engine.compute_trending(((r[1], r[3], now - 3600 * (len(rows) - n) / len(rows) * 24)
                                        for n, r in enumerate(rows[-50_000:])), now=now,
                                       half_life_hours=6, window_hours=24, keep=1000)
    # the user: 50 interactions with items their taste's users chose
    history: dict[str, float] = {}
    for item in rng.choice(args.items, args.history * 3, replace=True):
        if len(history) < args.history:
            history[f"sku-{item}"] = history.get(f"sku-{item}", 0.0) + 1.0
    strategies = {name: functools.partial(fn, model, history, 30) for name, fn in engine.STRATEGIES.items()}
    strategies["auto"] = lambda: auto.score_auto(model, trending, history, 30)
    print(f"\nserving, user with {len(history)} interactions, top 30 candidates with reasons, "
          f"{args.requests} requests each (ms):")
    print(HEADER)
    for name, call in strategies.items():
        for _ in range(50):
            call()
        samples, cpu = np.empty(args.requests), np.empty(args.requests)
        for n in range(args.requests):
            t, c = time.perf_counter(), time.thread_time()
            got = call()
            samples[n], cpu[n] = (time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000
        print(_row(name, samples, cpu, len(got)), flush=True)
    if args.django:
        full_path(model, trending, catalog, history, args.requests)


def full_path(model, trending, catalog, history, requests: int) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from django.utils import timezone

    from apps.core.redis import client
    from apps.omnichannel.models import IngestEvent, Interaction
    from apps.recommendations import selectors, store
    from apps.recommendations.models import CatalogItem

    user = "recs-bench-user"
    bench_store = store.ModelStore(client, prefix="recs-bench", poll_seconds=1.0)
    store._store = bench_store
    t0 = time.perf_counter()
    CatalogItem.objects.bulk_create([CatalogItem(item_id=row.item_id, name=row.name, category=row.category,
                                                 tags=list(row.tags), price=row.price, available=row.available)
                                     for row in catalog], batch_size=5000, ignore_conflicts=True)
    now = timezone.now()
    event = IngestEvent.objects.create(event_id="recs-bench", source="web", caller="bench", event_type="cart_add",
                                       user_id=user, occurred_at=now, transport="http", payload={})
    Interaction.objects.bulk_create([Interaction(user_id=user, item_id=item, event_type="cart_add", weight=w,
                                                 occurred_at=now, ingest_event=event) for item, w in history.items()])
    bench_store.publish(model)
    bench_store.publish_trending(trending)
    print(f"\nfull read path (selectors.recommendations_for_user, Postgres + Redis), data written in "
          f"{time.perf_counter() - t0:.1f} s; {requests} requests each (ms):")
    print(HEADER)
    try:
        for strategy in ("auto", "cf", "content_based", "frequently_bought_together", "trending", "new_arrivals"):
            for _ in range(20):
                selectors.recommendations_for_user(user_id=user, strategy=strategy, limit=10)
            samples, cpu = np.empty(requests), np.empty(requests)
            for n in range(requests):
                t, c = time.perf_counter(), time.thread_time()
                got = selectors.recommendations_for_user(user_id=user, strategy=strategy, limit=10)
                samples[n], cpu[n] = (time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000
            print(_row(strategy, samples, cpu, len(got.items)), flush=True)
    finally:
        event.delete()
        CatalogItem.objects.filter(item_id__in=[row.item_id for row in catalog]).delete()
        keys = list(client().scan_iter("recs-bench:*"))
        if keys:
            client().delete(*keys)


if __name__ == "__main__":
    main()
