"""CPU per request through the bid workers' HTTP server in one process, no sockets (issue 21).

``ceiling.py`` compares the bid app with a raw ASGI app over loopback, where the client, the kernel
and other engineers' work share the 2 cores and the figures move by ±30 % between runs. This runs the
same requests (``bid_load.make_bodies``, the realistic mix) through the server code a worker runs —
``apps.bidding.serve``'s uvicorn configuration, the bid path's protocol (``apps.bidding.protocol``),
request bytes in through ``data_received``, the response out through the transport's ``write`` —
against the bid app (``apps.bidding.asgi:app``, its ``Bidder`` started as at lifespan start-up, the
metrics buffered as in a worker when ``PROMETHEUS_MULTIPROC_DIR`` is set) and against ``ceiling.py``'s
raw app, alternated round by round. The difference is what the bid app costs beyond the server,
without the kernel's share (the same for both: one read and one write per request).

    .venv/bin/python bench/server_inprocess.py                     # 5,000 requests x 3 rounds each
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/server_inprocess.py --callgrind bid
    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python bench/server_inprocess.py --callgrind raw
    # "Collected : N" / --requests = instructions per request
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import bid_load  # noqa: E402
import redis  # noqa: E402


class Transport:
    """What the protocol uses of an asyncio transport; ``write`` wakes the waiting request."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future | None = None
        self.out = 0
        self.closing = False

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8081), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data) -> None:
        self.out += len(data)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, *args, **kwargs) -> None:
        pass


class Connection:
    """One keep-alive connection into a freshly configured worker protocol."""

    def __init__(self, app, loop) -> None:
        import uvicorn
        from uvicorn.server import ServerState

        from apps.bidding import serve

        config = uvicorn.Config(app, loop="none", http=serve._protocol_class(), lifespan="off", access_log=False,
                                proxy_headers=False, server_header=False, log_level="warning",
                                timeout_keep_alive=serve.KEEP_ALIVE_SECONDS)
        config.load()
        self.loop = loop
        self.transport = Transport()
        self.protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={},
                                                   _loop=loop)
        self.protocol.connection_made(self.transport)

    async def request(self, data: bytes) -> bytes:
        waiter = self.transport.waiter = self.loop.create_future()
        self.protocol.data_received(data)
        return await waiter


class _Core:
    """``bid_inprocess.py``'s loop: decode -> process -> encode, no server and no ASGI."""

    def __init__(self, bidder) -> None:
        from apps.bidding import openrtb

        self.process = bidder.processor.process
        self.decode, self.encode = openrtb.decode_request, openrtb.encode_response

    async def request(self, data: bytes) -> None:
        outcome = await self.process(self.decode(data.partition(b"\r\n\r\n")[2]))
        if outcome.bids:
            self.encode(outcome.response)


async def run(args) -> None:
    import ceiling

    from apps.bidding.asgi import BidApp

    loop = asyncio.get_running_loop()
    bodies = bid_load.make_bodies(2000, random.Random(args.seed), unknown_ratio=args.unknown_ratio)
    client = bid_load.Client("127.0.0.1", 8081, bodies)
    bid_app = BidApp(configure_logging=False)
    await bid_app.ensure_bidder()
    bid = Connection(bid_app, loop)
    for _ in range(2):  # warm-up: every known user into L1 (twice: an L2 read may time out on a slow box)
        for _ in range(len(bodies)):
            await bid.request(client.next_payload())
    known = next(b for b in bodies if bid_load.UNKNOWN_MARK not in b)
    first = await bid.request(client.templates[0][0] + b"Content-Length: " + str(len(known)).encode()
                              + b"\r\n\r\n" + known)
    body_file = Path(tempfile.mkdtemp(prefix="server-inprocess-")) / "body.json"
    body_file.write_bytes(first.partition(b"\r\n\r\n")[2])
    os.environ[ceiling.BODY_ENV] = str(body_file)
    raw = Connection(ceiling.app, loop)
    await raw.request(client.next_payload())
    gc.freeze()
    apps = {"bid": bid, "raw": raw, "core": _Core(bid_app.bidder)}
    n = args.requests
    if args.callgrind:
        import subprocess

        conn = apps[args.callgrind]
        payloads = [client.next_payload() for _ in range(n)]
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)
        for payload in payloads:
            await conn.request(payload)
        subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True, capture_output=True)
        await bid_app.shutdown()
        return
    figures: dict[str, list[float]] = {"raw": [], "bid": [], "core": []}
    for r in range(args.rounds):
        for name in ("raw", "bid", "core"):
            conn = apps[name]
            payloads = [client.next_payload() for _ in range(n)]
            cpu0 = time.process_time()
            for payload in payloads:
                await conn.request(payload)
            us = (time.process_time() - cpu0) / n * 1e6
            figures[name].append(us)
            print(f"round {r + 1}: {name} {us:6.1f} µs CPU/request", flush=True)
    raw_us, bid_us, core_us = (statistics.median(figures[k]) for k in ("raw", "bid", "core"))
    print(f"median µs CPU per request: raw ASGI app {raw_us:.1f}, bid app {bid_us:.1f}, bid logic alone "
          f"(decode, process, encode) {core_us:.1f}; so the bid app's HTTP and ASGI layer beyond the raw app's: "
          f"{bid_us - raw_us - core_us:.1f} (unknown users {args.unknown_ratio:.0%}); "
          f"load average {bid_load.load_average()}")
    await bid_app.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unknown-ratio", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--single-process", action="store_true",
                        help="metrics in memory (as bid_inprocess.py), not buffered as in a worker")
    parser.add_argument("--callgrind", choices=["bid", "raw", "core"],
                        help="under `valgrind --tool=callgrind --instr-atstart=no`: instrument one app's requests")
    args = parser.parse_args()
    os.environ["REDIS_URL"] = args.redis_url
    os.environ.setdefault("BID_REQUEST_SAMPLE_RATE", "0.01")
    os.environ.setdefault("BID_FREQ_MAX_PER_HOUR", "1000000")
    os.environ.setdefault("BID_FREQ_MAX_PER_DAY", "1000000")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if not args.single_process:  # as run_bid_app does, before prometheus_client is imported
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="server-inprocess-prom-")
    bid_load.seed(redis.Redis.from_url(args.redis_url), offers=bid_load.N_OFFERS, users=bid_load.N_USERS,
                  rng=random.Random(args.seed))
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
