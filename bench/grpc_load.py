"""Throughput of the gRPC sidecar (``manage.py run_grpc --workers N``) per server core, unary and
streamed, and optionally against the HTTP bid app in the same run.

Seeds ``bid_load.py``'s 64 offers and 10,000 profiles into a Redis database of its own
(``--redis-url``, default ``BENCH_REDIS_URL``) and builds ``bid_load.py``'s request mix
(``--unknown-ratio``, default bid_load's 0.1; an unknown user gets a new id on every request). Then,
for each worker count in ``--workers`` (default ``2,2``: the scale-out issue's two workers, twice, so
a change in the box's load shows up as a spread rather than as a difference), it starts the sidecar on
a free port and, for each ``--mode`` (``unary``, ``stream`` or ``both``), drives it closed loop from
``--clients`` client processes (default 4). Each client process opens ``--channels`` connections of its
own (no subchannel shared between them, so the kernel's ``SO_REUSEPORT`` hash spreads them over the
workers) and on each keeps

* unary: ``--inflight`` ``ProcessBid`` calls in flight;
* stream: ``--streams`` ``StreamBids`` streams, each with ``--inflight`` messages in flight (pipelined:
  a new message is written as soon as a response comes back, without waiting for the others).

With ``--http`` the HTTP bid app (``run_bid_app --workers 2``, as ``bid_load.py`` starts it) runs too,
with the same request mix and environment, from ``--http-clients`` closed-loop client processes
(bid_load's HTTP/1.1 keep-alive client, ``--http-connections`` each, one request in flight per
connection), before each gRPC run: HTTP and gRPC alternate, and the ratio "gRPC calls per server core
/ HTTP requests per server core" is printed from one run.

Every run is measured after ``--warmup`` seconds of the same load (L1 caches filled, connections and
streams open) over the next ``--duration`` seconds: calls answered in that window, and the server's CPU
(all processes of its process group, sampled at the window's edges) — not the clients', so client
processes sharing the cores do not count against the server. "calls per server core" is calls per
CPU-second of the server. Client p50/p99 and the machine's busy cores are printed too; clients and
servers share the machine's cores.

    .venv/bin/python bench/grpc_load.py --http                    # HTTP, unary, stream; 2 workers, twice
    .venv/bin/python bench/grpc_load.py --mode unary --workers 1,2,1,2   # issue 20: what a 2nd worker adds
    .venv/bin/python bench/grpc_load.py --mode stream --streams 2 --inflight 16 --duration 10
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bid_load  # noqa: E402  (bench/bid_load.py: seeding, request mix, ports, CPU accounting)
import redis  # noqa: E402

SERVICE = "/campaign_express.bidding.v1.BiddingService/"


class Window:
    """The measured window of one run, in this process's ``perf_counter`` time, from wall times."""

    def __init__(self, start_at: float, warmup: float, duration: float):
        offset = time.perf_counter() - time.time()
        self.start = start_at + offset
        self.measure = start_at + warmup + offset
        self.end = self.measure + duration
        self.ok = self.errors = 0
        self.latencies: list[float] = []

    def done(self, sent: float, ok: bool) -> None:
        now = time.perf_counter()
        if self.measure <= now < self.end:
            if ok:
                self.ok += 1
                self.latencies.append(now - sent)
            else:
                self.errors += 1

    def result(self) -> tuple[int, int, list[float]]:
        return self.ok, self.errors, self.latencies[:: max(1, len(self.latencies) // 5000)]


class Bodies:
    """bid_load's request bodies in a random order; an unknown user is new on every request."""

    def __init__(self, bodies: list[bytes], seed: int):
        self.bodies, self.rng, self.n, self.tag = bodies, random.Random(seed), 0, f"new-{os.getpid()}-{seed}-"

    def next(self) -> bytes:
        body = self.bodies[self.rng.randrange(len(self.bodies))]
        if bid_load.UNKNOWN_MARK in body:
            self.n += 1
            body = body.replace(bid_load.UNKNOWN_MARK, f"{self.tag}{self.n}".encode())
        return body


def _grpc_client(mode: str, target: str, bodies: list[bytes], args: dict, start_at: float, out) -> None:
    """One gRPC client process: ``channels`` connections, closed loop (see the module docstring)."""
    import grpc

    from apps.bidding.grpc_gen import bidding_pb2

    window = Window(start_at, args["warmup"], args["duration"])
    request = bidding_pb2.BidRequestProto
    response = bidding_pb2.BidResponseProto.FromString

    async def unary(channel, seed: int) -> None:
        call = channel.unary_unary(SERVICE + "ProcessBid", request_serializer=request.SerializeToString,
                                   response_deserializer=response, _registered_method=True)
        source = Bodies(bodies, seed)
        while time.perf_counter() < window.end:
            message = request(openrtb_json=source.next())
            sent = time.perf_counter()
            try:
                await call(message, timeout=10)
                window.done(sent, True)
            except grpc.aio.AioRpcError:
                window.done(sent, False)

    async def stream(channel, seed: int) -> None:
        method = channel.stream_stream(SERVICE + "StreamBids", request_serializer=request.SerializeToString,
                                       response_deserializer=response, _registered_method=True)
        call = method(timeout=args["warmup"] + args["duration"] + 60)
        source = Bodies(bodies, seed)
        room = asyncio.Semaphore(args["inflight"])
        sent_at: list[float] = []

        async def writer():
            while time.perf_counter() < window.end:
                await room.acquire()
                message = request(openrtb_json=source.next())
                sent_at.append(time.perf_counter())
                await call.write(message)
            await call.done_writing()

        async def reader():
            i = 0
            while True:
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    return
                room.release()
                window.done(sent_at[i], not reply.error)
                i += 1

        await asyncio.gather(writer(), reader())

    async def run():
        opened = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                  for _ in range(args["channels"])]
        for channel in opened:
            await channel.channel_ready()
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        if mode == "unary":
            loops = [unary(c, i * 1000 + j) for i, c in enumerate(opened) for j in range(args["inflight"])]
        else:
            loops = [stream(c, i * 1000 + j) for i, c in enumerate(opened) for j in range(args["streams"])]
        await asyncio.gather(*loops)
        for channel in opened:
            await channel.close()

    asyncio.run(run())
    out.put(window.result())


def _http_client(port: int, bodies: list[bytes], args: dict, start_at: float, out) -> None:
    """One HTTP client process: bid_load's keep-alive client, ``http_connections`` connections with one
    request in flight each, closed loop."""
    import uvloop

    window = Window(start_at, args["warmup"], args["duration"])

    class Counted(bid_load.Client):
        def done(self, conn, status, scheduled, sent, now=None):
            window.done(sent, status in (200, 204))
            if time.perf_counter() < window.end and conn.usable():
                conn.send(self.next_payload(), 0.0, self)

    async def run():
        client = Counted("127.0.0.1", port, bodies)
        client.i = random.Random(os.getpid()).randrange(len(bodies))
        await client.connect(args["http_connections"])
        await asyncio.sleep(max(0.0, window.start - time.perf_counter()))
        for conn in client.conns:
            conn.send(client.next_payload(), 0.0, client)
        while time.perf_counter() < window.end + 0.5:
            await asyncio.sleep(0.05)
        for conn in client.conns:
            conn.close()

    uvloop.run(run())
    out.put(window.result())


def _server_env(redis_url: str) -> dict[str, str]:
    """One environment for both servers: bid_load's (frequency caps out of the way, 1 % request
    samples) and a tmax cap no closed loop on 2 shared cores reaches (no "deadline" no-bids)."""
    env = {**os.environ, "REDIS_URL": redis_url, "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "WARNING",
           "BID_REQUEST_SAMPLE_RATE": "0.01", "BID_FREQ_MAX_PER_HOUR": "1000000", "BID_FREQ_MAX_PER_DAY": "1000000",
           "BID_TMAX_CAP_MS": "2000", "DATABASE_POOL_MIN_SIZE": "0", "DATABASE_POOL_MAX_SIZE": "1"}
    env.pop("BID_EXCHANGE_KEYS", None)
    return env


def _start_sidecar(workers: int, env: dict[str, str], log: Path, command: str = "") -> tuple[subprocess.Popen, int]:
    port = bid_load.free_port()
    argv = (command.format(python=sys.executable, port=port, workers=workers).split() if command else
            [sys.executable, "manage.py", "run_grpc", "--port", str(port), "--workers", str(workers)])
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    ready = " serving on " if workers > 1 or command else "BiddingService listening on"
    deadline = time.monotonic() + 90
    while log.read_text(errors="replace").count(ready) < (workers if workers > 1 else 1):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"run_grpc --workers {workers} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc, port


def _start_http(env: dict[str, str], metrics_dir: str) -> tuple[subprocess.Popen, int]:
    port = bid_load.free_port()
    proc = subprocess.Popen([sys.executable, "manage.py", "run_bid_app", "--port", str(port), "--workers", "2",
                             "--metrics-dir", metrics_dir], cwd=ROOT, env=env, start_new_session=True)
    bid_load.wait_ready(f"http://127.0.0.1:{port}")
    return proc, port


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def measure(label: str, server: subprocess.Popen, clients: list[tuple], args) -> dict:
    """Run ``clients`` ((target, args) for processes) against ``server``; CPU of its process group
    over the measured window."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 2.0 + 0.4 * len(clients)  # every client connected before the clock starts
    settings = {k: getattr(args, k) for k in ("warmup", "duration", "channels", "inflight", "streams", "http_connections")}
    procs = [ctx.Process(target=target, args=(*params, settings, start_at, out)) for target, params in clients]
    for p in procs:
        p.start()
    while time.time() < start_at + args.warmup:
        time.sleep(0.005)
    load_before, cpu_before, busy_before = os.getloadavg(), bid_load.process_group_cpu(server.pid), bid_load.cpu_busy()
    while time.time() < start_at + args.warmup + args.duration:
        time.sleep(0.005)
    cpu_after, busy_after, load_after = bid_load.process_group_cpu(server.pid), bid_load.cpu_busy(), os.getloadavg()
    results = [out.get(timeout=args.warmup + args.duration + 90) for _ in procs]
    for p in procs:
        p.join()
    ok = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    server_cpu = (cpu_after or 0) - (cpu_before or 0)
    return {"run": label, "per_s": round(ok / args.duration), "errors": sum(r[1] for r in results),
            "p50_ms": round(bid_load.pct(latencies, 0.5) * 1000, 2), "p99_ms": round(bid_load.pct(latencies, 0.99) * 1000, 2),
            "server_cpu_us_per_call": round(server_cpu / max(ok, 1) * 1e6, 1),
            "calls_per_server_core": round(ok / server_cpu) if server_cpu > 0 else None,
            "server_cores": round(server_cpu / args.duration, 2),
            "machine_busy_cores": round(bid_load.busy_cores(busy_before, busy_after), 2),
            "load_before": round(load_before[0], 2), "load_after": round(load_after[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="2,2", help="sidecar worker counts to run, in order")
    parser.add_argument("--mode", choices=("unary", "stream", "both"), default="both")
    parser.add_argument("--http", action="store_true", help="also measure the HTTP bid app, alternated")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of the same load before each window")
    parser.add_argument("--clients", type=int, default=4, help="gRPC client processes")
    parser.add_argument("--channels", type=int, default=2, help="connections per gRPC client process")
    parser.add_argument("--inflight", type=int, default=8, help="unary calls per connection / messages per stream")
    parser.add_argument("--streams", type=int, default=1, help="StreamBids streams per connection")
    parser.add_argument("--http-clients", type=int, default=2, help="HTTP client processes")
    parser.add_argument("--http-connections", type=int, default=16, help="connections per HTTP client process")
    parser.add_argument("--grpc-command", default="",
                        help="start this gRPC server instead of run_grpc (another implementation of BiddingService): "
                             "{python}, {port}, {workers} are filled in; each worker prints ' serving on ' when ready")
    parser.add_argument("--unknown-ratio", type=float, default=0.1, help="share of requests from unknown users")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()
    rng = random.Random(7)
    bid_load.seed(redis.Redis.from_url(args.redis_url), offers=bid_load.N_OFFERS, users=bid_load.N_USERS, rng=rng)
    bodies = bid_load.make_bodies(2000, rng, unknown_ratio=args.unknown_ratio)
    env = _server_env(args.redis_url)
    modes = ("unary", "stream") if args.mode == "both" else (args.mode,)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  git {_git_head()}  load {bid_load.load_average()}  "
          f"gRPC: {args.clients} client processes x {args.channels} connections x "
          f"({args.inflight} unary calls | {args.streams} streams x {args.inflight} messages) in flight; "
          f"HTTP: {args.http_clients} x {args.http_connections} connections; {args.unknown_ratio:.0%} unknown users; "
          f"{args.warmup:g} s warm-up + {args.duration:g} s per run", flush=True)
    tmp = tempfile.TemporaryDirectory(prefix="grpc-load-")
    http = _start_http(env, os.path.join(tmp.name, "prom")) if args.http else None
    rows: list[dict] = []
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            log = Path(tmp.name) / f"grpc-{workers}-{len(rows)}.log"
            proc, port = _start_sidecar(workers, env, log, args.grpc_command)
            try:
                for mode in modes:
                    if http is not None:
                        rows.append(measure("http 2 workers", http[0],
                                            [(_http_client, (http[1], bodies))] * args.http_clients, args))
                        print(json.dumps(rows[-1]), flush=True)
                    rows.append(measure(f"grpc {mode} {workers} workers", proc,
                                        [(_grpc_client, (mode, f"127.0.0.1:{port}", bodies))] * args.clients, args))
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                _stop(proc)
    finally:
        if http is not None:
            _stop(http[0])
        tmp.cleanup()
    print("\n| run | calls/s | errors | p50 ms | p99 ms | server CPU µs/call | calls per server core | server cores "
          "| load before → after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['per_s']:,} | {r['errors']} | {r['p50_ms']} | {r['p99_ms']} | {r['server_cpu_us_per_call']} "
              f"| {r['calls_per_server_core'] or 0:,} | {r['server_cores']} | {r['load_before']} → {r['load_after']} |")
    if http is not None:
        http_rate = _median([r["calls_per_server_core"] for r in rows if r["run"].startswith("http")])
        for mode in modes:
            rate = _median([r["calls_per_server_core"] for r in rows if r["run"].startswith(f"grpc {mode}")])
            if http_rate and rate:
                print(f"gRPC {mode}: {rate:,.0f} calls per server core / HTTP {http_rate:,.0f} requests per server core "
                      f"= {rate / http_rate:.2f} (target: >= 0.80)")


def _median(values: list) -> float | None:
    values = [v for v in values if v]
    return statistics.median(values) if values else None


def _git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
