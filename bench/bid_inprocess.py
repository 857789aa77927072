"""CPU per bid request inside one process: decode -> ``BidProcessor.process`` -> encode, no HTTP.

``bid_load.py`` measures the real thing, but on 2 shared cores its CPU-per-request figure moves by
±15 % from run to run. This one runs the same requests (``bid_load.make_bodies``, the same 64 offers
and 10,000 profiles in Redis db 14) through one ``Bidder`` in a loop and reports the process CPU
time per request, which repeats within a few per cent — the figure to compare two versions of the
bid path. L1 is warmed first, so every known user is an L1 hit; unknown users pay an L2 round trip.
The analytics emitter runs as in a worker (flushed from the event loop, so its CPU is counted).

    .venv/bin/python bench/bid_inprocess.py                  # known users, 20,000 requests, 5 rounds
    .venv/bin/python bench/bid_inprocess.py --unknown-ratio 0.1
    .venv/bin/python bench/bid_inprocess.py --profile        # + cProfile, top functions by own time
    .venv/bin/python bench/bid_inprocess.py --yield-every 10 # known users, the event loop run every 10 requests

Wall and CPU time on this VM still drift by ±25 % over minutes (the host's other guests). For a
deterministic comparison of two versions, count instructions with callgrind — the same count, to
about 1 %, run after run (numpy picks its AVX2 kernels under valgrind):

    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/bid_inprocess.py --callgrind --requests 1000
    # "Collected : N" / 1000 = instructions per request
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import bid_load  # noqa: E402


async def run(args) -> None:
    from apps.bidding import openrtb
    from apps.bidding.bidder import Bidder
    from apps.bidding.conf import BidConfig

    config = BidConfig.from_env()
    bidder = Bidder(config, redis_url=args.redis_url)
    await bidder.start()
    bodies = bid_load.make_bodies(2000, random.Random(args.seed), unknown_ratio=args.unknown_ratio)
    counter = iter(range(10**9))
    mark = bid_load.UNKNOWN_MARK

    def body(i: int) -> bytes:
        b = bodies[i % len(bodies)]
        return b.replace(mark, f"inproc-{os.getpid()}-{next(counter)}".encode()) if mark in b else b

    processor = bidder.processor
    decode, encode = openrtb.decode_request, openrtb.encode_response

    every, seq = args.yield_every, iter(range(1, 10**9))
    ping = b"*1\r\n$4\r\nPING\r\n"

    async def one(raw: bytes) -> None:
        request = decode(raw)
        outcome = await processor.process(request)
        if outcome.bids:
            encode(outcome.response)
        if every and next(seq) % every == 0:  # --yield-every: what an L2 read costs beyond its own work
            if args.yield_to == "loop":
                await asyncio.sleep(0)
            else:
                await bidder.l2.request(ping, 1)

    for i in range(len(bodies)):  # warm-up: every known user into L1
        await one(body(i))
    # an L2 read that timed out (a slow box, valgrind) left its user out of L1: read again, or the
    # measured loop would pay L2 round trips (and count them) for a few users
    known = {decode(b).user.id for b in bodies if mark not in b}
    for _ in range(5):
        missing = [b for b in bodies if mark not in b and decode(b).user.id not in processor.cache]
        for raw in missing:
            await one(raw)
        if not missing:
            break
    print(f"# warm-up: {sum(1 for u in known if u in processor.cache)}/{len(known)} known users in L1", flush=True)
    gc_time = [0.0, 0]  # seconds in the cyclic garbage collector, collections (per round)
    gc_started = [0.0]

    def on_gc(phase: str, _info: dict) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_started[0]
            gc_time[1] += 1

    gc.callbacks.append(on_gc)
    gc.freeze()  # as the bid workers do (Bidder._freeze_long_lived): L1 and the snapshot out of the GC's view
    n = args.requests
    per_request = []
    if args.callgrind:
        import subprocess

        raws = [body(i) for i in range(n)]
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)
        for raw in raws:
            await one(raw)
        subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True, capture_output=True)
        await bidder.stop()
        return
    for _ in range(args.rounds):
        raws = [body(i) for i in range(n)]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for raw in raws:
            await one(raw)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        per_request.append(cpu / n * 1e6)
        print(f"round: {n} requests, {cpu / n * 1e6:6.1f} µs CPU/request, {wall / n * 1e6:6.1f} µs wall/request, "
              f"{gc_time[1]} GC collections ({gc_time[0] / n * 1e6:.1f} µs/request)", flush=True)
        gc_time[:] = [0.0, 0]
    print(f"median {statistics.median(per_request):.1f} µs CPU per request "
          f"(min {min(per_request):.1f}, max {max(per_request):.1f}; unknown users {args.unknown_ratio:.0%})")
    if args.profile:
        import cProfile
        import pstats

        raws = [body(i) for i in range(n)]
        profiler = cProfile.Profile()
        profiler.enable()
        for raw in raws:
            await one(raw)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
    await bidder.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--unknown-ratio", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--yield-every", type=int, default=0, metavar="N",
                        help="after every N-th request, one turn of the event loop (--yield-to loop) or one Redis "
                             "PING on the L2 connection (--yield-to redis): an L1 hit never yields, so without "
                             "this the analytics flusher and the background tasks never run inside the loop")
    parser.add_argument("--yield-to", choices=("loop", "redis"), default="loop")
    parser.add_argument("--callgrind", action="store_true",
                        help="under `valgrind --tool=callgrind --instr-atstart=no`: instrument only the requests")
    args = parser.parse_args()
    os.environ["REDIS_URL"] = args.redis_url
    os.environ.setdefault("BID_FREQ_MAX_PER_HOUR", "1000000")
    os.environ.setdefault("BID_FREQ_MAX_PER_DAY", "1000000")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    from apps.core.redis import sync_from_url  # redis:// or redis+cluster://

    bid_load.seed(sync_from_url(args.redis_url), offers=bid_load.N_OFFERS, users=bid_load.N_USERS,
                  rng=random.Random(args.seed))
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
