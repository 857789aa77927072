"""The bid app against its ceiling: the same server with an ASGI app that does no bid work (issue 21).

Starts, on 127.0.0.1, the bid app (``manage.py run_bid_app``, as ``bid_load.py`` does: 2 workers,
its Redis database seeded with the same 64 offers and 10,000 profiles) and a raw ASGI app on the same
server configuration (``apps.bidding.serve --app ceiling:app``: the same uvicorn workers, one
``SO_REUSEPORT`` socket each, the bid path's HTTP protocol, uvloop). The raw app reads the request
body and answers with the bid app's own response to the first request of the mix (a bid-sized body,
captured at start). Then, with ``bid_load``'s closed-loop client (each connection keeps one request in
flight) and the realistic mix (10 % unknown users), it alternates short phases — raw, bid, raw, bid…
— so both see the same box, and prints each phase's req/s, the medians and the ratio bid / raw
(issue 21's target: >= 0.5). The client shares the cores with the servers: on a busy machine both
figures fall, and the ratio is the comparable figure.

    .venv/bin/python bench/ceiling.py --redis-url redis://127.0.0.1:6393/14            # 3 rounds of 5 s each
    .venv/bin/python bench/ceiling.py --rounds 2 --duration 3 --connections 32
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

BODY_ENV = "CEILING_BODY_FILE"
RESPONSE_EXTENSION = "campaign_express.http.response"  # apps.bidding.protocol's whole-response message
_body: bytes | None = None
_headers: list | None = None
_whole: dict | None = None


async def app(scope, receive, send) -> None:
    """The raw ASGI app: read the request, answer 200 with the captured bid-sized JSON body — in one
    whole-response message where the server offers it (the bid workers' does, and the bid app uses it),
    else as ``http.response.start`` + ``http.response.body``."""
    global _body, _headers, _whole
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if _body is None:
        _body = Path(os.environ[BODY_ENV]).read_bytes()
        _headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_body)).encode())]
        _whole = {"type": RESPONSE_EXTENSION, "body": _body,
                  "head": b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % len(_body)}
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if RESPONSE_EXTENSION in (scope.get("extensions") or ()):
        await send(_whole)
        return
    await send({"type": "http.response.start", "status": 200, "headers": _headers})
    await send({"type": "http.response.body", "body": _body})


def start_raw(port: int, workers: int, body_file: str) -> subprocess.Popen:
    env = {**os.environ, BODY_ENV: body_file, "PYTHONPATH": os.pathsep.join([str(BENCH), str(ROOT)]),
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "apps.bidding.serve", "--port", str(port), "--workers", str(workers),
                             "--app", "ceiling:app"], cwd=ROOT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


async def phase(bid_load, port: int, bodies: list[bytes], connections: int, duration: float) -> tuple[float, int]:
    client = bid_load.Client("127.0.0.1", port, bodies)
    await client.connect(connections)
    elapsed = await client.closed_loop(duration)
    for conn in client.conns:
        conn.close()
    return client.completed / elapsed, client.errors


async def run(args, bid_load, raw_port: int, bid_port: int, bodies: list[bytes]) -> None:
    await phase(bid_load, bid_port, bodies, args.connections, args.warmup)  # L1 of both bid workers
    await phase(bid_load, raw_port, bodies, args.connections, 1.0)
    raw, bid = [], []
    for r in range(args.rounds):
        for name, port, out in (("raw ASGI", raw_port, raw), ("bid app", bid_port, bid)):
            rate, errors = await phase(bid_load, port, bodies, args.connections, args.duration)
            out.append(rate)
            print(f"round {r + 1}: {name:8s} {rate:9,.0f} req/s  ({errors} errors)", flush=True)
    ratio = statistics.median(bid) / statistics.median(raw)
    print(f"\nceiling (raw ASGI app, same server): median {statistics.median(raw):,.0f} req/s "
          f"(min {min(raw):,.0f}, max {max(raw):,.0f})")
    print(f"bid app:                             median {statistics.median(bid):,.0f} req/s "
          f"(min {min(bid):,.0f}, max {max(bid):,.0f})")
    print(f"ratio bid / ceiling: {ratio:.2f} (per round: "
          f"{', '.join(f'{b / r:.2f}' for r, b in zip(raw, bid, strict=True))}); load average {bid_load.load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds of bid traffic first (every user into L1)")
    parser.add_argument("--unknown-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import bid_load
    import httpx
    import redis
    import uvloop

    bid_load.seed(redis.Redis.from_url(args.redis_url), offers=bid_load.N_OFFERS, users=bid_load.N_USERS,
                  rng=random.Random(args.seed))
    bodies = bid_load.make_bodies(2000, random.Random(args.seed), unknown_ratio=args.unknown_ratio)
    tmp = tempfile.TemporaryDirectory(prefix="ceiling-")
    bid_proc = raw_proc = None
    try:
        bid_port, raw_port = bid_load.free_port(), bid_load.free_port()
        bid_proc = bid_load.start_app(bid_port, args.workers, args.redis_url, os.path.join(tmp.name, "prom"))
        bid_load.wait_ready(f"http://127.0.0.1:{bid_port}")
        known = next(b for b in bodies if bid_load.UNKNOWN_MARK not in b)
        response = httpx.post(f"http://127.0.0.1:{bid_port}/v1/bid", content=known,
                              headers={"content-type": "application/json"}, timeout=10)
        if response.status_code != 200:
            raise SystemExit(f"the bid app did not bid on the first request: {response.status_code} {response.text[:200]}")
        body_file = os.path.join(tmp.name, "body.json")
        Path(body_file).write_bytes(response.content)
        raw_proc = start_raw(raw_port, args.workers, body_file)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.post(f"http://127.0.0.1:{raw_port}/v1/bid", content=known, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the raw ASGI app did not start")
            time.sleep(0.2)
        print(f"# bid app :{bid_port} and raw ASGI app :{raw_port}, {args.workers} workers each; response body "
              f"{len(response.content)} bytes; {args.connections} connections, closed loop, {args.duration:g} s "
              f"phases; {os.cpu_count()} CPUs, load average {bid_load.load_average()}", flush=True)
        uvloop.run(run(args, bid_load, raw_port, bid_port, bodies))
    finally:
        stop(raw_proc)
        stop(bid_proc)
        tmp.cleanup()


if __name__ == "__main__":
    main()
