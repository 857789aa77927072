"""Inference micro-benchmark: µs per score() for 64 candidates, full vs factorised, feature building,
batching, and the event-loop timer resolution the batcher depends on.

Run (bid workers run with one BLAS thread, so measure that way):

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/inference_bench.py [--calls 20000]

Every figure is the median and p99 of individually timed calls (perf_counter_ns), after a warm-up.
Target: factorised score() for 64 candidates <= 50 µs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from apps.inference import features as F  # noqa: E402
from apps.inference.batcher import InferenceBatcher  # noqa: E402
from apps.inference.model import CoLaNetWeights  # noqa: E402
from apps.inference.providers import CpuProvider  # noqa: E402
from apps.inference.runtime import InferenceRuntime  # noqa: E402

N = 64
TARGET_US = 50.0


def timed(fn, calls: int, warmup: int = 500) -> tuple[float, float, float]:
    """(median, p99, mean) in µs of ``calls`` individually timed calls."""
    for _ in range(warmup):
        fn()
    samples = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        start = clock()
        fn()
        samples[i] = clock() - start
    samples /= 1000.0
    return float(np.median(samples)), float(np.percentile(samples, 99)), float(samples.mean())


def row(label: str, stats: tuple[float, float, float], note: str = "") -> None:
    median, p99, mean = stats
    print(f"  {label:<58s} median {median:8.1f}  p99 {p99:8.1f}  mean {mean:8.1f} µs  {note}")


def make_inputs(rng: np.random.Generator):
    profile = dict(
        interests=rng.random(64).tolist(),
        segments=rng.integers(0, 500, 12).tolist(),
        loyalty=rng.random(8).tolist(),
        recency=0.4,
        impressions_1h=3,
        max_per_hour=10,
        device_type="mobile",
    )
    cats = [f"IAB{c}-{s}" for c in range(1, 27) for s in range(1, 4)]
    offers = [
        dict(category=cats[i % len(cats)], max_bid_cpm=float(rng.uniform(0.5, 40)),
             observed_ctr=float(rng.uniform(0, 0.06)), creative_format=("banner", "video", "native")[i % 3])
        for i in range(N)
    ]
    return profile, offers


async def timer_delay(delay_s: float, samples: int = 200) -> float:
    """Median µs between loop.call_later(delay_s) and its callback."""
    loop = asyncio.get_running_loop()
    measured = []
    for _ in range(samples):
        fired = loop.create_future()
        start = time.perf_counter_ns()
        loop.call_later(delay_s, lambda f=fired: f.set_result(time.perf_counter_ns()))
        measured.append((await fired - start) / 1000.0)
    return statistics.median(measured)


async def batched_round(batcher: InferenceBatcher, requests) -> None:
    await asyncio.gather(*(batcher.score(*r) for r in requests))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per measurement (default 20000)")
    args = parser.parse_args()
    calls = args.calls

    threads = os.environ.get("OPENBLAS_NUM_THREADS")
    print(f"python {platform.python_version()}  numpy {np.__version__}  machine {platform.machine()}  "
          f"cpus {os.cpu_count()}  OPENBLAS_NUM_THREADS={threads}")
    if threads != "1":
        print("  WARNING: bid workers run with OPENBLAS_NUM_THREADS=1; figures without it are erratic")
    print(f"calls per figure: {calls}; n = {N} candidates, H = 128 hidden units\n")

    rng = np.random.default_rng(2026)
    profile, offer_specs = make_inputs(rng)
    weights = CoLaNetWeights.seeded(seed=42)
    provider = CpuProvider(weights)
    runtime = InferenceRuntime(model_dir=Path("/nonexistent-bench-model-dir"))
    runtime.load()  # seeded init

    user = F.user_row(**profile)
    offers = np.stack([F.offer_features(**spec) for spec in offer_specs])
    positions = F.position_column(N, N)
    X = F.feature_matrix(user, offers, positions)

    print("feature building")
    row("user_row() (once per request)", timed(lambda: F.user_row(**profile), calls))
    row("offer_features() x 64 (once per snapshot, not per request)",
        timed(lambda: [F.offer_features(**spec) for spec in offer_specs], max(calls // 10, 1000)))
    row("feature_matrix() 64 x 256 (reference path only)", timed(lambda: F.feature_matrix(user, offers, positions), calls))

    print("\nscoring 64 candidates")
    full = timed(lambda: weights.forward(X), calls)
    row("full forward on a prebuilt 64 x 256 matrix", full)
    full_with_matrix = timed(lambda: weights.forward(F.feature_matrix(user, offers, positions)), calls)
    row("full: feature_matrix() + forward", full_with_matrix)
    fact = timed(lambda: provider.score(user, offers, positions), calls)
    row("factorised CpuProvider.score()", fact)
    table = offers.copy()
    table.setflags(write=False)  # like a snapshot's features: its layer-1 share is cached per model
    ranked = F.position_column(N, N)
    ranked.setflags(write=False)  # like the bid processor's position column
    index = np.arange(N, dtype=np.intp)
    row("CpuProvider.score_indexed() (offer part cached per snapshot)",
        timed(lambda: provider.score_indexed(user, table, index, ranked[:N]), calls))
    indexed_agree = np.max(np.abs(provider.score_indexed(user, table, index, ranked[:N])[0] - weights.forward(X)[0]))
    print(f"  indexed vs full: max |score difference| = {indexed_agree:.2e}")
    rt = timed(lambda: runtime.score(user, offers, positions), calls)
    row("InferenceRuntime.score() (factorised + latency histogram)", rt,
        "OK (<= 50 µs)" if rt[0] <= TARGET_US else f"ABOVE the {TARGET_US:.0f} µs target")
    per_request = timed(lambda: (F.user_row(**profile), runtime.score(user, offers, positions)), calls)
    row("per request on the bid path: user_row() + runtime.score()", per_request)
    agree = np.max(np.abs(provider.score(user, offers, positions)[0] - weights.forward(X)[0]))
    print(f"  factorised vs full: max |score difference| = {agree:.2e}; factorised is {full_with_matrix[0] / fact[0]:.1f}x "
          f"faster than feature_matrix + full forward")

    print("\nbatching (one provider call for several requests)")
    requests16 = [(user, offers, positions)] * 16
    batch = timed(lambda: provider.score_batch(requests16), max(calls // 10, 1000))
    row("score_batch() of 16 requests x 64 candidates, per request", tuple(v / 16 for v in batch),
        f"(whole batch median {batch[0]:.0f} µs)")

    async def batcher_figures() -> None:
        batcher = InferenceBatcher(runtime._current_provider, max_items=16, max_wait_us=500)
        rounds = max(calls // 40, 200)
        for _ in range(50):
            await batched_round(batcher, requests16)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            await batched_round(batcher, requests16)
            samples.append((time.perf_counter_ns() - start) / 1000.0 / 16)
        print(f"  {'InferenceBatcher, 16 concurrent score() calls, per request':<58s} median {statistics.median(samples):8.1f}"
              f" µs  ({loop_name()}: {batcher.batches} batches of mean {batcher.items / batcher.batches:.1f})")

    for _, runner in loop_runners():
        runner(batcher_figures())

    print("\nevent-loop timer resolution (what max_wait_us can mean)")
    for name, runner in loop_runners():
        for delay_us in (500, 1000, 2000):
            median = runner(timer_delay(delay_us / 1e6))
            print(f"  {name:<8s} call_later({delay_us / 1e6:.4f}) fires after median {median:8.1f} µs")


def loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def loop_runners():
    yield "asyncio", asyncio.run
    try:
        import uvloop
    except ImportError:
        print("  uvloop not installed")
        return
    yield "uvloop", lambda coro: uvloop.run(coro)


if __name__ == "__main__":
    main()
