"""Run the bid app in N uvicorn worker processes, each with its own ``SO_REUSEPORT`` listening socket.

``uvicorn --workers N`` shares one listening socket: whichever worker wakes first accepts every
connection waiting at that moment, and keeps it for good. Exchanges hold a pool of keep-alive
connections opened in a burst, so one worker can end up with most of them and saturate while the
other idles (measured here: 14/18, 25/7, 11/21 splits, and 2-worker throughput of one; see
docs/DESIGN.md "Measured limits behind the choices"). With one ``SO_REUSEPORT`` socket per worker the kernel spreads
connections by hashing each one, independently of which worker is awake.

The parent only supervises: it restarts a worker that dies (giving up after repeated crashes at
start-up) and passes SIGTERM/SIGINT on for a graceful shutdown. Started by ``manage.py run_bid_app``,
which prepares the environment (metrics directory, BLAS threads) first::

    python -m apps.bidding.serve --host 127.0.0.1 --port 8081 --workers 2
"""
from __future__ import annotations

import argparse
import multiprocessing
import signal
import socket
import sys
import time
from collections.abc import Callable

APP = "apps.bidding.asgi:app"
BACKLOG = 2048
CRASH_WINDOW_SECONDS = 10.0
MAX_QUICK_CRASHES = 5
# Exchanges keep a pool of connections and use some of them only now and then. uvicorn's default 5 s
# idle timeout closes those, and a request written while the close is under way is lost (seen as a
# connection error by the exchange). Pools are sized for peaks: keep idle connections like nginx does.
KEEP_ALIVE_SECONDS = 75


def listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def _protocol_class():
    """uvicorn's httptools protocol with the bid path's cheaper request cycle (``apps.bidding.protocol``)."""
    from apps.bidding.protocol import BidHttpProtocol

    return BidHttpProtocol


def _worker(host: str, port: int, log_level: str, app: str = APP) -> None:
    import uvicorn

    sock = listen_socket(host, port)
    # No proxy in front of the bid app: skip the X-Forwarded-* middleware and the Server header.
    config = uvicorn.Config(app, loop="uvloop", http=_protocol_class(), lifespan="on", access_log=False,
                            proxy_headers=False, server_header=False, log_level=log_level,
                            timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def _forget_metrics_of(pid: int) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics (its counters stay summed in)."""
    from config import env

    if env.PROMETHEUS_MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def port_is_free(host: str, port: int, *, label: str) -> None:
    """Fail at once, with a clear message, when something else listens there (workers bind with
    ``SO_REUSEPORT``, which would otherwise share the port with another server of the same user)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(f"{label}: cannot listen on {host}:{port}: {exc.strerror}") from None


def supervise(target: Callable[..., None], args: tuple, *, workers: int, label: str, where: str) -> int:
    """Run ``target(*args)`` in ``workers`` spawned processes and keep them running: a worker that dies
    is restarted (giving up after repeated crashes at start-up), SIGTERM/SIGINT are passed on for a
    graceful shutdown. ``label`` and ``where`` name the server in its log lines. Shared by the bid app
    and the gRPC sidecar (``apps.bidding.grpc_server.serve_workers``)."""
    ctx = multiprocessing.get_context("spawn")
    procs: dict[int, multiprocessing.process.BaseProcess] = {}
    started: dict[int, float] = {}
    crashes: list[float] = []
    stopping = False

    def start(slot: int) -> None:
        proc = ctx.Process(target=target, args=args, name=f"{label.replace(' ', '-')}-worker-{slot}")
        proc.start()
        procs[slot] = proc
        started[slot] = time.monotonic()

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the worker finishes in-flight requests, then shuts down

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        start(slot)
    print(f"{label}: {workers} workers on {where} (one SO_REUSEPORT socket each), "
          f"pids {[p.pid for p in procs.values()]}", flush=True)
    while not stopping:
        time.sleep(0.2)
        for slot, proc in list(procs.items()):
            if proc.is_alive() or stopping:
                continue
            now = time.monotonic()
            if now - started[slot] < CRASH_WINDOW_SECONDS:
                crashes.append(now)
            recent = [t for t in crashes if now - t < 60]
            if len(recent) >= MAX_QUICK_CRASHES:
                print(f"{label}: workers keep dying at start-up (exit code {proc.exitcode}); giving up", flush=True)
                stop(signal.SIGTERM, None)
                break
            print(f"{label}: worker {proc.pid} exited with code {proc.exitcode}; restarting", flush=True)
            if proc.pid is not None:
                _forget_metrics_of(proc.pid)
            start(slot)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        proc.join(timeout=max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()
    return 1 if len([t for t in crashes if time.monotonic() - t < 60]) >= MAX_QUICK_CRASHES else 0


def serve(host: str, port: int, workers: int, log_level: str = "warning", app: str = APP) -> int:
    port_is_free(host, port, label="bid app")
    return supervise(_worker, (host, port, log_level, app), workers=workers, label="bid app", where=f"{host}:{port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the bid app with SO_REUSEPORT uvicorn workers.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--app", default=APP, help="another ASGI app on the same server (bench/ceiling.py's raw app)")
    args = parser.parse_args(argv)
    return serve(args.host, args.port, max(1, args.workers), args.log_level, args.app)


if __name__ == "__main__":
    sys.exit(main())
