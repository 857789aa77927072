"""The wall-clock figures the tests used to assert (issue 15: tests wait on conditions; times live here).

Each line prints a measured figure next to the limit a test used to hold it to. The tests keep the
behaviour (the emitter never blocks, an announcement reaches the bidder, a dead Redis is refused and
not waited for); this script says how fast, on the machine it runs on. Nothing here fails: it is a
report to read and compare, like the other bench/ scripts.

    .venv/bin/python bench/timings.py                       # Redis from REDIS_URL, db 14 by default
    BENCH_REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/timings.py

It writes only to its Redis database (a stream and keys with a random tag, a snapshot of its own
offers) and to a temporary model directory.
"""
from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from config import env  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL") or env.env_str("REDIS_URL", env.REDIS_URL).rsplit("/", 1)[0] + "/14"
ROUNDS = 5


def report(name: str, value: float, unit: str, limit: str) -> None:
    print(f"{name:<58} {value:>10.2f} {unit:<3}  (test limit was {limit})")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def median_of(fn, rounds: int = ROUNDS) -> float:
    return statistics.median(fn() for _ in range(rounds))


# --- analytics emitter (tests/analytics/test_emitter.py, test_pipeline.py) ---

def emitter_figures() -> None:
    import redis

    from apps.analytics import emitter as emitter_mod

    em = emitter_mod.Emitter(autostart=False, capacity=10**6)

    def per_emit() -> float:
        n = 50_000
        started = time.perf_counter()
        for i in range(n):
            em.emit("bid_response", request_id="r", campaign_id="1", price=1.0, latency_us=i)
        took = (time.perf_counter() - started) / n
        em._buf.clear()
        return took

    best = min(per_emit() for _ in range(3))
    report("emit, one call (best of 3 x 50,000)", best * 1e6, "µs", "< 20 µs")

    full = emitter_mod.Emitter(redis_url=f"redis://127.0.0.1:{closed_port()}/0", capacity=1000, interval=0.01)
    started = time.perf_counter()
    for n in range(20_000):
        full.emit("bid_response", request_id=str(n), latency_us=n)
    report("emit 20,000 into a full buffer, Redis unreachable", time.perf_counter() - started, "s", "< 1 s")
    full.close(flush=False)

    big = emitter_mod.Emitter(autostart=False, capacity=200_000)
    started = time.perf_counter()
    for n in range(100_000):
        big.emit("bid_response", campaign_id="bench", request_id=f"r{n}", price=1.5, latency_us=n % 5000)
    report("emit 100,000 (the pipeline test's load)", time.perf_counter() - started, "s", "< 10 s")
    big._buf.clear()

    client = redis.Redis.from_url(REDIS_URL)
    stream = f"bench:timings:{uuid.uuid4().hex[:8]}"

    def flush_latency() -> float:
        client.delete(stream)
        em = emitter_mod.Emitter(redis_url=REDIS_URL, stream=stream)  # default 100 ms interval
        em.emit("click", campaign_id="c1")
        started = time.monotonic()
        while client.xlen(stream) < 1:
            time.sleep(0.001)
        took = time.monotonic() - started
        em.close()
        return took

    report("background thread: emit -> in the stream (median of 5)", median_of(flush_latency) * 1e3, "ms", "< 600 ms")
    client.delete(stream)
    client.close()


# --- inference batcher (tests/inference/test_batcher.py) ---

async def batcher_figures() -> None:
    import numpy as np

    from apps.inference.batcher import InferenceBatcher
    from apps.inference.model import CoLaNetWeights
    from apps.inference.providers import CpuProvider
    from tests.inference.conftest import random_request

    provider = CpuProvider(CoLaNetWeights.seeded(seed=7))
    rng = np.random.default_rng(0)
    loop = asyncio.get_running_loop()
    for wait_us, label, limit in ((20_000, "batcher, one request, max_wait 20 ms", "15 ms - 1 s"),
                                  (500, "batcher, one request, default 500 µs wait", "< 500 ms")):
        batcher = InferenceBatcher(lambda: provider, max_items=16, max_wait_us=wait_us)
        samples = []
        for _ in range(ROUNDS):
            request = random_request(rng, 8)
            started = loop.time()
            await batcher.score(*request)
            samples.append(loop.time() - started)
        report(f"{label} (median of {ROUNDS})", statistics.median(samples) * 1e3, "ms", limit)


# --- the bid path against Redis (tests/bidding/test_cache.py, test_l2.py, test_http.py) ---

async def bid_path_figures(tmp: Path) -> None:
    import redis

    from apps.bidding.bidder import Bidder, bid_redis
    from apps.bidding.l2 import L2Client, L2Unavailable
    from apps.bidding.processor import BidProcessor
    from apps.bidding.snapshot import BUDGET_CHANNEL, next_version, publish_snapshot
    from apps.core import redis as redis_store
    from apps.core.profiles import profile_write
    from tests.bidding.helpers import EventRecorder, bid_config, bid_request, golden_runtime, make_row, make_snapshot

    runtime = golden_runtime(tmp / "models")
    tag = uuid.uuid4().hex[:6]

    # a Redis where nothing listens: the default profile, at once
    dead_url = f"redis://127.0.0.1:{closed_port()}/0"
    processor = BidProcessor(config=bid_config(redis_url=dead_url), inference=runtime, redis=bid_redis(dead_url),
                             emit_event=EventRecorder())
    processor.set_snapshot(make_snapshot([make_row()]))

    async def refused() -> float:
        started = time.perf_counter()
        await processor.process(bid_request(user_id=f"dead-{uuid.uuid4().hex[:6]}", tmax=100))
        return time.perf_counter() - started

    report("bid with Redis refusing connections (median of 5)", statistics.median([await refused() for _ in range(5)]) * 1e3,
           "ms", "< 500 ms")
    l2 = L2Client(dead_url)
    started = time.perf_counter()
    for _ in range(2):
        try:
            await l2.profile_and_freq("x", 0)
        except L2Unavailable:
            pass
    report("L2Client, two reads refused", (time.perf_counter() - started) * 1e3, "ms", "< 1000 ms")
    await l2.aclose()

    # a Redis that accepts and never answers: the read is cut at the 40 ms budget
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    slow_url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    slow = L2Client(slow_url)
    processor = BidProcessor(config=bid_config(redis_url=slow_url, network_buffer_ms=10), inference=runtime,
                             redis=slow, emit_event=EventRecorder())
    processor.set_snapshot(make_snapshot([make_row()]))
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await processor.process(bid_request(user_id="slow", tmax=50))
        samples.append(time.perf_counter() - started)
    report(f"bid with a Redis that never answers, tmax 50 (median of {ROUNDS})", statistics.median(samples) * 1e3,
           "ms", "< 300 ms")
    await slow.aclose()
    server.close()

    # announcements reaching a running bidder (its poll is too slow to help)
    client = redis.Redis.from_url(REDIS_URL)
    campaign = 900_000 + int(tag, 16) % 99_999
    publish_snapshot(client, version=next_version(client),
                     offers=[make_row(offer_id=campaign, campaign_id=campaign, observed_ctr=0.02, max_bid_cpm=3.7)])
    bidder = Bidder(bid_config(redis_url=REDIS_URL, snapshot_poll_seconds=3600), inference=runtime)
    await bidder.start()
    try:
        user = f"bench-{tag}"
        profile_write(user_id=user, fields={"loyalty_tier": "gold"}, client=client)
        await asyncio.sleep(0.1)  # its own announcement passes first
        samples = []
        for n in range(ROUNDS):
            await bidder.processor.process(bid_request(user_id=user))
            assert user in bidder.processor.cache
            started = time.monotonic()
            profile_write(user_id=user, fields={"loyalty_tier": ("reserve", "gold")[n % 2]}, client=client)
            while user in bidder.processor.cache:
                await asyncio.sleep(0.001)
            samples.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
        report(f"profile change -> L1 copy dropped (median of {ROUNDS})", statistics.median(samples) * 1e3, "ms",
               "< 1000 ms")
        started = time.monotonic()
        client.publish(redis_store.channel(BUDGET_CHANNEL, client), str(campaign))
        while campaign not in bidder.processor.exhausted:
            await asyncio.sleep(0.001)
        report("budget announcement -> campaign out of the candidates", (time.monotonic() - started) * 1e3, "ms",
               "< 1000 ms")
        version = next_version(client)
        started = time.monotonic()
        publish_snapshot(client, version=version, offers=[make_row(offer_id=campaign + 1, campaign_id=campaign + 1)])
        while bidder.processor.snapshot is None or bidder.processor.snapshot.version < version:
            await asyncio.sleep(0.001)
        report("snapshot announcement -> new snapshot in the bidder", (time.monotonic() - started) * 1e3, "ms",
               "< 1000 ms (also the campaign-change tests)")
    finally:
        await bidder.stop()
        client.close()


async def main() -> None:
    print(f"bench/timings.py on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; Redis {REDIS_URL}")
    emitter_figures()
    await batcher_figures()
    with tempfile.TemporaryDirectory() as tmp:
        await bid_path_figures(Path(tmp))


if __name__ == "__main__":
    asyncio.run(main())
