"""The bid app on a Redis Cluster against the single Redis, side by side in one run (issue 20).

Starts a local cluster of 3 masters (``tests/support/redis_cluster.py``: Debian's redis-server,
ports 7001-7003 + (REDIS_PORT-6390)*10), then runs ``bench/bid_load.py`` alternately against the
single Redis (``BENCH_REDIS_URL``, default db 14) and the cluster — single, cluster, single,
cluster… for ``--rounds`` rounds, so drift in the shared machine's load hits both alike — each run
seeding its own store and starting its own bid app (2 uvicorn workers). Prints, per target, the
median over the rounds of: the closed-loop throughput, the open-loop mix's server p99, and the
server p99 of the L1-hit phase (known users only: no Redis read at all on the bid path), and the
cluster/single ratios; then ``bench/bid_inprocess.py`` (CPU per request, one Bidder, no HTTP) on
both, with known users only (L1 hits) and with 10 % unknown users (an L2 read each). The targets of
issue 20: throughput within 10 %, L1-hit p99 unchanged.

Beside the latencies it prints, per phase and store, where the CPU goes (``bid_load.py`` measures
it): the bid app's CPU µs per request, the redis-server processes' CPU µs per request (all masters of
the cluster) and the Redis commands per request, and the cores the bid app used in the closed loop —
so a throughput gap reads as "more work per request" or as "the same work, waiting".
``--one-master`` adds a third store to the rotation, a cluster of one master holding every slot:
the cluster client's code paths on one redis-server process, which tells the client's cost apart
from that of three server processes and of an L1 miss read from two masters.

    .venv/bin/python bench/redis_cluster.py                      # 2 rounds, ~3 minutes
    .venv/bin/python bench/redis_cluster.py --rounds 3 --duration 10
    .venv/bin/python bench/redis_cluster.py --rounds 2 --duration 6 --one-master --inprocess-requests 0
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.redis_cluster import LocalRedisCluster, base_port  # noqa: E402


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_load(redis_url: str, args) -> dict[str, dict]:
    cmd = [sys.executable, str(ROOT / "bench" / "bid_load.py"), "--redis-url", redis_url, "--rate", str(args.rate),
           "--duration", str(args.duration), "--max-duration", str(args.duration), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"})
    if out.returncode != 0:
        raise SystemExit(f"bid_load.py against {redis_url} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    phases: dict[str, dict] = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            key = ("closed" if row["phase"].startswith("closed") else "l1" if "L1 hits" in row["phase"] else "mix")
            phases[key] = row
    return phases


def run_inprocess(redis_url: str, unknown_ratio: float, args) -> float:
    """Median CPU µs per request of ``bench/bid_inprocess.py`` (one Bidder in this machine's process,
    no HTTP): the figure that repeats within a few per cent where the HTTP runs move by ±15 %."""
    cmd = [sys.executable, str(ROOT / "bench" / "bid_inprocess.py"), "--redis-url", redis_url,
           "--requests", str(args.inprocess_requests), "--rounds", "3", "--unknown-ratio", str(unknown_ratio)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"})
    for line in out.stdout.splitlines():
        if line.startswith("median "):
            return float(line.split()[1])
    raise SystemExit(f"bid_inprocess.py against {redis_url} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


LABELS = {"single": "single Redis", "cluster": "Redis Cluster (3 masters)", "cluster1": "Cluster, 1 master"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--single-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=3000, help="open-loop rate, req/s")
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--inprocess-requests", type=int, default=10_000,
                        help="requests per round of the in-process CPU comparison (0: skip it)")
    parser.add_argument("--one-master", action="store_true",
                        help="also a cluster of one master holding every slot (port base + 5)")
    args = parser.parse_args()
    inprocess: dict[tuple[str, float], list[float]] = {}

    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(LocalRedisCluster())
        stores = {"single": args.single_url, "cluster": cluster.url}
        if args.one_master:
            stores["cluster1"] = stack.enter_context(LocalRedisCluster(masters=1, first_port=base_port() + 5)).url
        print(f"# {', '.join(f'{name} {url}' for name, url in stores.items())}; {os.cpu_count()} CPUs, "
              f"load average {load_average()}", flush=True)
        runs: dict[str, list[dict]] = {name: [] for name in stores}
        for n in range(args.rounds):
            for name, url in stores.items():
                phases = run_load(url, args)
                runs[name].append(phases)
                print(f"# round {n + 1} {name}: closed {phases['closed']['req_per_s']:,.0f} req/s "
                      f"(bid app {phases['closed'].get('server_cores')} cores, "
                      f"{phases['closed'].get('server_cpu_us_per_req')} µs/req; Redis "
                      f"{phases['closed'].get('redis_cpu_us_per_req')} µs/req), mix server p99 "
                      f"{phases['mix']['server_p99_us']} µs, L1-hit server p99 {phases['l1']['server_p99_us']} µs, "
                      f"errors {phases['closed']['errors'] + phases['mix']['errors'] + phases['l1']['errors']}; "
                      f"load average {load_average()}", flush=True)
        for n in range(args.rounds if args.inprocess_requests else 0):
            for unknown in (0.0, 0.1):
                for name, url in stores.items():
                    inprocess.setdefault((name, unknown), []).append(run_inprocess(url, unknown, args))
            print(f"# in-process round {n + 1}: " + ", ".join(
                f"{name} {unknown:.0%} unknown {values[-1]:.1f} µs" for (name, unknown), values in inprocess.items())
                + f"; load average {load_average()}", flush=True)

    def median(name: str, phase: str, field: str) -> float:
        return statistics.median(float(r[phase].get(field) or 0) for r in runs[name])

    others = [name for name in stores if name != "single"]
    print(f"\n# load average after: {load_average()}")
    print("\n| figure (median of rounds) | " + " | ".join(LABELS[name] for name in stores) + " | "
          + " | ".join(f"{name} / single" for name in others) + " |")
    print("|---|" + "---|" * (len(stores) + len(others)))

    def row(label: str, values: dict[str, float], digits: int = 1) -> None:
        ratios = [f"{values[name] / values['single']:.3f}" if values["single"] else "-" for name in others]
        print(f"| {label} | " + " | ".join(f"{values[name]:,.{digits}f}" for name in stores) + " | "
              + " | ".join(ratios) + " |")

    mix, l1 = f"open-loop {args.rate}/s mix", f"open-loop {args.rate}/s L1 hits"
    for label, phase, field, digits in (
            ("closed-loop max throughput, req/s", "closed", "req_per_s", 0),
            ("closed-loop server p99, µs", "closed", "server_p99_us", 0),
            (f"{mix}: server p99, µs", "mix", "server_p99_us", 0),
            (f"{mix}: client p99, ms", "mix", "p99_ms", 2),
            (f"{l1}: server p50, µs", "l1", "server_p50_us", 0),
            (f"{l1}: server p99, µs", "l1", "server_p99_us", 0),
            (f"{l1}: L1 misses in the phase (should be 0)", "l1", "l1_misses", 0),
            ("closed loop: bid app cores used", "closed", "server_cores", 2),
            ("closed loop: bid app CPU µs/request", "closed", "server_cpu_us_per_req", 1),
            ("closed loop: redis-server CPU µs/request (all masters)", "closed", "redis_cpu_us_per_req", 1),
            ("closed loop: Redis commands/request", "closed", "redis_cmds_per_req", 3),
            ("closed loop: redis-server wake-ups/request", "closed", "redis_wakeups_per_req", 3),
            ("closed loop: bid app preemptions/request", "closed", "server_preempted_per_req", 3),
            (f"{mix}: bid app CPU µs/request", "mix", "server_cpu_us_per_req", 1),
            (f"{mix}: redis-server CPU µs/request", "mix", "redis_cpu_us_per_req", 1),
            (f"{l1}: bid app CPU µs/request", "l1", "server_cpu_us_per_req", 1),
            (f"{l1}: redis-server CPU µs/request", "l1", "redis_cpu_us_per_req", 1),
            (f"{l1}: redis-server wake-ups/request", "l1", "redis_wakeups_per_req", 3),
            (f"{l1}: bid app preemptions/request", "l1", "server_preempted_per_req", 3)):
        row(label, {name: median(name, phase, field) for name in stores}, digits)
    for unknown in (0.0, 0.1) if inprocess else ():
        row(f"in-process CPU per request, {unknown:.0%} unknown users (L2 reads), µs",
            {name: statistics.median(inprocess[(name, unknown)]) for name in stores})


if __name__ == "__main__":
    main()
