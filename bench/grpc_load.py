"""Throughput of the gRPC sidecar (``manage.py run_grpc --workers N``) with 1 and with 2 workers.

Seeds ``bid_load.py``'s 64 offers and 10,000 profiles into a Redis database of its own
(``--redis-url``, default ``BENCH_REDIS_URL``), then for each worker count in ``--workers`` (default
``1,2,1,2``: alternated, so a change in the box's load shows up as a spread rather than as a
difference) starts the sidecar on a free port and drives it, closed loop, from ``--clients`` client
processes (default 4). Each client process opens ``--channels`` connections of its own (no subchannel
shared between them, so the kernel's ``SO_REUSEPORT`` hash spreads them over the workers) and keeps
``--inflight`` unary ``ProcessBid`` calls in flight on each, with ``bid_load.py``'s realistic request
mix. Prints, per run: calls/s, errors, client p50/p99, the sidecar's CPU (all its processes) per call
and in cores, and the load average before and after. Client and server share the machine's cores.

    .venv/bin/python bench/grpc_load.py                               # 1,2,1,2 workers, 15 s each
    .venv/bin/python bench/grpc_load.py --workers 1,2 --duration 20 --clients 4 --channels 2 --inflight 8
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bid_load  # noqa: E402  (bench/bid_load.py: seeding, request mix, ports, CPU accounting)
import redis  # noqa: E402


def _client(target: str, bodies: list[bytes], channels: int, inflight: int, start_at: float, duration: float,
            out) -> None:
    """One client process: ``channels`` connections × ``inflight`` calls in flight, closed loop."""
    import grpc

    from apps.bidding.grpc_gen import bidding_pb2, bidding_pb2_grpc

    async def run():
        opened = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                  for _ in range(channels)]
        stubs = [bidding_pb2_grpc.BiddingServiceStub(c) for c in opened]
        for channel in opened:
            await channel.channel_ready()
        latencies: list[float] = []
        counts = {"ok": 0, "errors": 0}
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + duration

        async def loop(stub, seed: int):
            rng = random.Random(seed)
            n = 0
            while time.monotonic() < deadline:
                body = bodies[rng.randrange(len(bodies))]
                if bid_load.UNKNOWN_MARK in body:  # an unknown user is new on every request (as in bid_load)
                    n += 1
                    body = body.replace(bid_load.UNKNOWN_MARK, f"new-{os.getpid()}-{seed}-{n}".encode())
                sent = time.perf_counter()
                try:
                    await stub.ProcessBid(bidding_pb2.BidRequestProto(openrtb_json=body), timeout=5)
                    counts["ok"] += 1
                    latencies.append(time.perf_counter() - sent)
                except grpc.aio.AioRpcError:
                    counts["errors"] += 1

        await asyncio.gather(*(loop(stub, i * 1000 + j) for i, stub in enumerate(stubs) for j in range(inflight)))
        for channel in opened:
            await channel.close()
        return counts, latencies

    counts, latencies = asyncio.run(run())
    out.put((counts["ok"], counts["errors"], latencies[:: max(1, len(latencies) // 5000)]))


def _start_sidecar(workers: int, env: dict[str, str], log: Path) -> tuple[subprocess.Popen, int]:
    port = bid_load.free_port()
    proc = subprocess.Popen([sys.executable, "manage.py", "run_grpc", "--port", str(port), "--workers", str(workers)],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    ready = " serving on " if workers > 1 else "BiddingService listening on"
    deadline = time.monotonic() + 90
    while log.read_text(errors="replace").count(ready) < (workers if workers > 1 else 1):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"run_grpc --workers {workers} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc, port


def run_once(workers: int, args, env: dict[str, str], bodies: list[bytes]) -> dict:
    log = Path(f"/tmp/grpc_load-{os.getpid()}-{workers}.log")
    proc, port = _start_sidecar(workers, env, log)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    try:
        start_at = time.time() + 3.0 + 0.5 * args.clients  # every client connected before the clock starts
        clients = [ctx.Process(target=_client, args=(f"127.0.0.1:{port}", bodies, args.channels, args.inflight,
                                                     start_at, args.duration, out)) for _ in range(args.clients)]
        for c in clients:
            c.start()
        while time.time() < start_at:
            time.sleep(0.01)
        load_before = os.getloadavg()
        cpu_before = bid_load.process_group_cpu(proc.pid)
        busy_before = bid_load.cpu_busy()
        results = [out.get(timeout=args.duration + 60) for _ in clients]
        cpu_after = bid_load.process_group_cpu(proc.pid)
        busy_after = bid_load.cpu_busy()
        load_after = os.getloadavg()
        for c in clients:
            c.join()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    server_cpu = (cpu_after or 0) - (cpu_before or 0)  # includes the moments after the clients stop
    return {"workers": workers, "calls_per_s": round(ok / args.duration), "errors": errors,
            "p50_ms": round(bid_load.pct(latencies, 0.5) * 1000, 2), "p99_ms": round(bid_load.pct(latencies, 0.99) * 1000, 2),
            "server_cpu_us_per_call": round(server_cpu / max(ok, 1) * 1e6), "server_cores": round(server_cpu / args.duration, 2),
            "machine_busy_cores": round(bid_load.busy_cores(busy_before, busy_after), 2),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2,1,2", help="worker counts to run, in order")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--channels", type=int, default=2, help="connections per client process")
    parser.add_argument("--inflight", type=int, default=8, help="calls in flight per connection")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()
    rng = random.Random(7)
    client = redis.Redis.from_url(args.redis_url)
    bid_load.seed(client, offers=bid_load.N_OFFERS, users=bid_load.N_USERS, rng=rng)
    bodies = bid_load.make_bodies(2000, rng, unknown_ratio=0.2)
    env = {**os.environ, "REDIS_URL": args.redis_url, "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "WARNING",
           "BID_TMAX_CAP_MS": "2000", "DATABASE_POOL_MIN_SIZE": "0", "DATABASE_POOL_MAX_SIZE": "1"}
    env.pop("BID_EXCHANGE_KEYS", None)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  git {_git_head()}  "
          f"{args.clients} client processes x {args.channels} connections x {args.inflight} in flight, "
          f"{args.duration:g} s per run", flush=True)
    for workers in (int(w) for w in args.workers.split(",")):
        result = run_once(workers, args, env, bodies)
        print(json.dumps(result), flush=True)


def _git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
