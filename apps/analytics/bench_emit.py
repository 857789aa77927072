"""Measure the emitter's hot-path cost: ``python -m apps.analytics.bench_emit [N]``.

Prints µs per ``emit`` with the flusher thread off (pure caller cost) and on (what a bid worker
sees while the flusher encodes and writes to Redis in the same process)."""
from __future__ import annotations

import sys
import time
import uuid

from apps.analytics.emitter import Emitter


def _run(em: Emitter, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        em.emit("bid_response", request_id="r-1", campaign_id="42", offer_id="7", price=1.25, latency_us=i)
    return (time.perf_counter() - started) / n * 1e6


def main(n: int = 200_000) -> None:
    results = []
    for _ in range(3):
        quiet = Emitter(autostart=False, capacity=n * 2)
        results.append(_run(quiet, n))
        quiet.close(flush=False)
    best = min(results)
    print(f"emit, flusher off: {best:.2f} µs/event (best of 3 x {n})")
    stream = f"analytics:bench:{uuid.uuid4().hex[:8]}"
    live = Emitter(stream=stream, capacity=n * 2)
    per = _run(live, n)
    live.flush(timeout=30)
    live._client().delete(stream)
    live.close(flush=False)
    print(f"emit, flusher on (Redis stream {stream}, deleted after): {per:.2f} µs/event")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
