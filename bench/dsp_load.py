"""Load on the DSP fan-out (``POST /v1/dsp/bid`` on the bid app), see bench/README.md.

Starts the local DSP servers (``apps.dsp.localdsp``, one process) and the bid app (``manage.py
run_bid_app``, 2 uvicorn workers) on 127.0.0.1, publishes four platforms into a Redis database of its
own — ttd 20 ms, meta 40 ms, dv360 60 ms (each ±10 ms jitter) and amazon always late (1 s) — and
drives an open loop of app bid requests (so Meta takes them) at ``--rate`` fan-outs per second for
``--duration`` seconds with the generator of ``bench/bid_load.py`` (one thread, kernel receive
timestamps). Prints one JSON line: client p50/p99 against ``tmax``, outcomes per platform (from the
app's ``dsp_outcomes`` counters), the timeout share among the on-time platforms, errors, the bid app's
CPU µs per fan-out and new DSP connections per second.

    .venv/bin/python bench/dsp_load.py                                 # 1,000/s for 60 s, the lean client
    .venv/bin/python bench/dsp_load.py --realtime                      # the same under SCHED_RR (root): a shared box
    .venv/bin/python bench/dsp_load.py --client httpx --rate 300 --duration 15
    .venv/bin/python bench/dsp_load.py --inprocess 2000                # CPU per fan-out, each client
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bid_load  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402

ON_TIME = ["ttd", "meta", "dv360"]


def platforms(base: str, late: bool = True):
    from apps.dsp.adapters import PlatformConf

    return [
        PlatformConf(id=1, name="ttd", kind="ttd", endpoint_url=f"{base}/bid/ttd/bid/bidder/{{supply_id}}?latency_ms=15&jitter_ms=10",
                     params={"publisher_id": "bench-pub", "supply_source_id": "bench"}),
        PlatformConf(id=2, name="meta", kind="meta", endpoint_url=f"{base}/bid/meta/placementbid.ortb?latency_ms=35&jitter_ms=10",
                     params={"platform_id": "bench", "publisher_id": "123", "placement_id": "456"},
                     credentials={"app_secret": "bench-secret"}),
        PlatformConf(id=3, name="dv360", kind="dv360", endpoint_url=f"{base}/bid/dv360?latency_ms=50&jitter_ms=10",
                     params={"billing_ids": ["1"]}, gzip=True),
        PlatformConf(id=4, name="amazon", kind="amazon",
                     endpoint_url=f"{base}/late/amazon?late_ms=1000" if late else f"{base}/bid/amazon?latency_ms=30&jitter_ms=10"),
    ]


def bodies(n: int, tmax: int) -> list[bytes]:
    out = []
    for i in range(n):
        out.append(orjson.dumps({
            "id": f"bench-{os.getpid()}-{i}", "tmax": tmax, "cur": ["USD"],
            "imp": [{"id": "1", "banner": {"w": 320, "h": 50}, "bidfloor": 0.1, "bidfloorcur": "USD"}],
            "app": {"id": "app-1", "bundle": "com.example.bench", "publisher": {"id": "pub-1"}},
            "device": {"ua": "Mozilla/5.0", "ip": "10.0.0.1", "devicetype": 4},
            "user": {"id": f"u{i}", "buyeruid": f"buyer-{i}"},
            "source": {"schain": {"complete": 1, "ver": "1.0", "nodes": [{"asi": "ex.com", "sid": "1", "hp": 1}]}},
        }))
    return out


class DspClient(bid_load.TickClient):
    def __init__(self, host: str, port: int, payloads: list[bytes]):
        super().__init__(host, port, payloads)
        head = f"POST /v1/dsp/bid HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n".encode()
        self.templates = [(head, body) for body in payloads]


_OUTCOME = re.compile(r'^dsp_outcomes_total\{([^}]*)\} (\S+)$', re.M)
_NEWCONN = re.compile(r'^dsp_new_connections_total\{([^}]*)\} (\S+)$', re.M)


def counters(text: str, pattern) -> dict[tuple, float]:
    out: dict[tuple, float] = {}
    for labels, value in pattern.findall(text):
        key = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels)))
        key = tuple(v for k, v in key if k != "pid")
        out[key] = out.get(key, 0.0) + float(value)
    return out


def delta(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def inprocess(fanouts: int, clients: list[str]) -> None:
    """CPU per fan-out of the exchange alone (no bid app, no generator), one client after another,
    against the local DSPs answering in ~0 ms: the fair side-by-side of the HTTP clients."""
    import uvloop

    from apps.bidding import openrtb
    from apps.core import redis as redis_store
    from apps.dsp import platforms as store
    from apps.dsp.conf import DspConfig
    from apps.dsp.exchange import DspExchange
    from config import env as config_env

    port = bid_load.free_port()
    base = f"http://127.0.0.1:{port}"
    redis_url = re.sub(r"/\d+$", "/9", config_env.REDIS_URL)
    dsp = start([sys.executable, "-m", "apps.dsp.localdsp", "--port", str(port), "--meta-app-secret", "bench-secret"],
                dict(os.environ))
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"{base}/stats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        import dataclasses

        rows = [dataclasses.replace(p, endpoint_url=re.sub(r"latency_ms=\d+&jitter_ms=\d+", "latency_ms=0", p.endpoint_url))
                for p in platforms(base, late=False)]
        store.publish(redis.Redis.from_url(redis_url), rows)
        reqs = [(orjson.loads(b), openrtb.decode_request(b)) for b in bodies(200, 200)]
        for client in clients:
            async def run(client=client):
                cfg = DspConfig(redis_url=redis_url, http_client=client)
                aredis = redis_store.async_client(redis_url)
                exchange = DspExchange(cfg, redis=aredis, bucket_factory=None, breaker_factory=None,
                                       emit=lambda *a, **k: None)
                await exchange.start()

                async def burst(n):
                    for i in range(n):
                        await asyncio.gather(*(exchange.fanout(*reqs[(i * 10 + j) % 200]) for j in range(10)))

                await burst(20)
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await burst(fanouts // 10)
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
                await exchange.stop()
                await aredis.aclose()
                print(json.dumps({"client": client, "fanouts": fanouts, "cpu_us_per_fanout": round(cpu / fanouts * 1e6),
                                  "wall_ms_per_10_concurrent": round(wall / (fanouts // 10) * 1000, 2)}), flush=True)

            uvloop.run(run())
    finally:
        stop(dsp)


def start(cmd, env) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--tmax", type=int, default=120)
    parser.add_argument("--client", choices=["lean", "aiohttp", "httpx"], default="lean")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-late", action="store_true", help="amazon answers in 30 ms instead of always late")
    parser.add_argument("--inprocess", type=int, default=0, metavar="N",
                        help="instead: N fan-outs in this process with each client in turn (CPU per fan-out)")
    parser.add_argument("--redis-url", default=None, help="default: REDIS_URL with database 9")
    parser.add_argument("--realtime", action="store_true",
                        help="run this process and all it starts (bid app, local DSPs) under SCHED_RR (needs root): "
                             "on a shared machine, what the exchange does with the CPU it would have on its own")
    args = parser.parse_args()
    if args.realtime:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))  # inherited by every process started below
    if args.inprocess:
        inprocess(args.inprocess, ["lean", "aiohttp", "httpx"])
        return
    if args.no_late:
        ON_TIME.append("amazon")

    from config import env as config_env

    redis_url = args.redis_url or re.sub(r"/\d+$", "/9", config_env.REDIS_URL)
    dsp_port, app_port = bid_load.free_port(), bid_load.free_port()
    dsp_base, app_base = f"http://127.0.0.1:{dsp_port}", f"http://127.0.0.1:{app_port}"
    client_redis = redis.Redis.from_url(redis_url)
    client_redis.flushdb()
    from apps.dsp import platforms as store

    store.publish(client_redis, platforms(dsp_base, late=not args.no_late))
    environ = {**os.environ, "REDIS_URL": redis_url, "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "WARNING",
               "DSP_HTTP_CLIENT": args.client, "DSP_QPS_WORKERS": str(args.workers), "ANALYTICS_BUFFER_SIZE": "200000"}
    dsp = start([sys.executable, "-m", "apps.dsp.localdsp", "--port", str(dsp_port), "--meta-app-secret", "bench-secret"],
                environ)
    metrics_dir = tempfile.mkdtemp(prefix="dsp-bench-metrics-")
    app = start([sys.executable, "manage.py", "run_bid_app", "--port", str(app_port), "--workers", str(args.workers),
                 "--metrics-dir", metrics_dir], environ)
    bid_load.SERVER_PGID = app.pid
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                import httpx

                if httpx.get(f"{app_base}/live", timeout=1).status_code == 200 and \
                        httpx.get(f"{dsp_base}/stats", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("bid app or local DSPs did not start")
            time.sleep(0.2)
        payloads = bodies(4096, args.tmax)
        client = DspClient("127.0.0.1", app_port, payloads)
        asyncio.run(client.connect(args.connections))
        client.open_loop(min(args.rate, 200), args.warmup)  # warm: pools, caches
        phase = client.sharing(payloads)
        phase.templates = client.templates
        before = bid_load.scrape(app_base)
        table0 = bid_load.processes()
        cpu0 = bid_load.process_group_cpu(app.pid, table0)
        dsp_cpu0 = bid_load.process_group_cpu(dsp.pid, table0)
        busy0 = bid_load.cpu_busy()
        elapsed = phase.open_loop(args.rate, args.duration)
        busy1 = bid_load.cpu_busy()
        table1 = bid_load.processes()
        cpu1 = bid_load.process_group_cpu(app.pid, table1)
        dsp_cpu1 = bid_load.process_group_cpu(dsp.pid, table1)
        after = bid_load.scrape(app_base)
        outcomes = delta(counters(before, _OUTCOME), counters(after, _OUTCOME))
        per_platform: dict[str, dict[str, int]] = {}
        for key, value in outcomes.items():
            labels = dict(zip(("outcome", "platform", "reason"), key, strict=False))
            name = labels["platform"]
            label = labels["outcome"] + (f":{labels['reason']}" if labels.get("reason") else "")
            per_platform.setdefault(name, {})[label] = int(value)
        called = sum(v for n in ON_TIME for k, v in per_platform.get(n, {}).items() if not k.startswith("skipped"))
        timeouts = sum(per_platform.get(n, {}).get("timeout", 0) for n in ON_TIME)
        errors = sum(v for n in ON_TIME for k, v in per_platform.get(n, {}).items() if k.startswith("error"))
        new_conns = delta(counters(before, _NEWCONN), counters(after, _NEWCONN))
        lat = phase.latencies
        row = {
            "client": args.client, "late_platform": not args.no_late, "rate": args.rate, "seconds": round(elapsed, 1), "tmax_ms": args.tmax,
            "fanouts": phase.completed, "fanouts_per_s": round(phase.completed / elapsed, 1),
            "http_errors": phase.errors, "statuses": phase.statuses,
            "p50_ms": round(bid_load.pct(lat, .5) * 1000, 1), "p99_ms": round(bid_load.pct(lat, .99) * 1000, 1),
            "p999_ms": round(bid_load.pct(lat, .999) * 1000, 1),
            "sched_p99_ms": round(bid_load.pct(phase.from_schedule, .99) * 1000, 1) if phase.from_schedule else None,
            "on_time_timeout_pct": round(100 * timeouts / called, 3) if called else None,
            "on_time_errors": errors,
            "outcomes": per_platform,
            "app_cpu_us_per_fanout": round((cpu1 - cpu0) / max(phase.completed, 1) * 1e6) if cpu0 is not None else None,
            "app_cores": round((cpu1 - cpu0) / elapsed, 2) if cpu0 is not None else None,
            "dsp_servers_cores": round((dsp_cpu1 - dsp_cpu0) / elapsed, 2) if dsp_cpu0 is not None else None,
            "machine_busy_cores": round(bid_load.busy_cores(busy0, busy1), 2),
            "new_connections_per_s": {"/".join(k): round(v / elapsed, 1) for k, v in new_conns.items()},
            "other_processes": bid_load.other_processes(table0, table1),
            "realtime": args.realtime,
        }
        print(json.dumps(row), flush=True)
    finally:
        stop(app)
        stop(dsp)
        client_redis.flushdb()


if __name__ == "__main__":
    main()
