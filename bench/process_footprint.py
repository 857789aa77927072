"""RSS and idle CPU of each production process: the figures behind the resource requests in docker/k8s/.

Starts each process of the Procfile (on free ports, with this shell's CLICKHOUSE_URL, REDIS_URL, NATS_URL,
DATABASE_URL...), waits until it is up (its HTTP port answers, or its start-up line appears), lets it
settle for ``--settle`` seconds, then reads the resident set size of the process and every descendant
(``/proc/<pid>/status`` VmRSS, summed: a prefork pool's children count) and the CPU it used
(utime+stime of the tree, ``/proc/<pid>/stat``) over ``--window`` seconds of idling. Stops it and goes on.

    .venv/bin/python bench/process_footprint.py                # all processes
    .venv/bin/python bench/process_footprint.py --only bid web

Under load the bid app's CPU is what bench/bid_load.py measures (server CPU µs per request); this
script is for the memory requests and the idle floor.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes() -> dict[str, tuple[list[str], dict[str, str], str | None]]:
    """name -> (command, extra env, readiness URL or None)."""
    web, bid, grpc = free_port(), free_port(), free_port()
    celery = [PY, "-m", "celery", "-A", "config"]
    return {
        "web": ([PY, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(web),
                 "--no-access-log"], {}, f"http://127.0.0.1:{web}/live"),
        "bid (2 workers)": ([PY, "manage.py", "run_bid_app", "--host", "127.0.0.1", "--port", str(bid), "--workers", "2"],
                            {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="fp-prom-")}, f"http://127.0.0.1:{bid}/live"),
        "grpc": ([PY, "manage.py", "run_grpc", "--host", "127.0.0.1", "--port", str(grpc)], {}, None),
        "agents (20 consumers)": ([PY, "manage.py", "run_agents", "--count", "20"], {}, None),
        "worker (prefork, concurrency 2)": ([*celery, "worker", "--concurrency=2", "-Q", f"fp-{os.getpid()}",
                                             "-n", f"fp-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
                                            {"CELERY_METRICS_PORT": "0"}, None),
        "beat": ([*celery, "beat", "--schedule", str(Path(tempfile.mkdtemp(prefix="fp-beat-")) / "s")], {}, None),
        "migrate_clickhouse (job)": ([PY, "manage.py", "migrate_clickhouse"], {}, "exit"),
    }


def tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return found


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / TICK


def measure(name, cmd, extra_env, ready, settle: float, window: float) -> str:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **extra_env}
    log = tempfile.NamedTemporaryFile(prefix="fp-", suffix=".log", delete=False)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    peak = 0
    try:
        if ready == "exit":
            while proc.poll() is None:
                peak = max(peak, rss_kib(tree(proc.pid)))
                time.sleep(0.02)
            return f"| {name} | {peak / 1024:.0f} (peak) | — | {time.monotonic() - started:.1f} s to finish |"
        deadline = time.monotonic() + 60
        while ready and time.monotonic() < deadline:
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                return f"| {name} | exited {proc.returncode} (see {log.name}) | | |"
            time.sleep(0.1)
        up = time.monotonic() - started
        time.sleep(settle)
        pids = tree(proc.pid)
        before = cpu_seconds(pids)
        time.sleep(window)
        pids = tree(proc.pid)
        cpu = (cpu_seconds(pids) - before) / window
        return (f"| {name} | {rss_kib(pids) / 1024:.0f} ({len(pids)} processes) | {cpu * 1000:.0f} m | "
                f"{up:.1f} s to up (+{settle:.0f} s settle) |")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names (prefixes) to measure")
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--window", type=float, default=5.0)
    args = parser.parse_args()
    print("| process | RSS MiB | idle CPU | note |")
    print("|---|---|---|---|")
    for name, (cmd, extra, ready) in processes().items():
        if args.only and not any(name.startswith(prefix) for prefix in args.only):
            continue
        print(measure(name, cmd, extra, ready, args.settle, args.window), flush=True)


if __name__ == "__main__":
    main()
