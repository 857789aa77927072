"""Process plumbing shared by the bid entry points' management commands."""
from __future__ import annotations

import asyncio
import logging.config
import os
import shutil
import signal
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent


def configure_logging() -> None:
    """The project's structlog setup (console lines, JSON in production) for processes that do not
    load Django settings (uvicorn bid workers)."""
    from config.settings.logs import LOGGING

    logging.config.dictConfig(LOGGING)


def bid_process_environment() -> None:
    """Settings every bid process needs before numpy is imported in it (or in the workers it spawns)."""
    # A write for OpenBLAS (read by it when numpy loads), not configuration of ours: an operator's
    # value wins. Two BLAS threads on two cores give erratic latency for these small GEMMs (docs/DESIGN.md "Measured limits behind the choices").
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def prepare_multiprocess_metrics(path: Path) -> Path:
    """Point prometheus_client (in the processes started from here) at a fresh directory, so /metrics
    aggregates every worker. It is emptied first: a previous run's files would be summed in."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    # A write, not a read of configuration: prometheus_client in the processes started from here (and
    # config.env.PROMETHEUS_MULTIPROC_DIR, read when they start) pick the directory up.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def ensure_snapshot() -> None:
    """Build the offer snapshot when Redis has none yet (first start); bidders only read Redis."""
    from apps.bidding.services import offer_snapshot_refresh
    from apps.bidding.snapshot import SNAPSHOT_KEY
    from apps.core import redis as redis_store

    try:
        if redis_store.client().hexists(SNAPSHOT_KEY, "version"):
            return
    except Exception as exc:  # noqa: BLE001 - Redis down: bidders start unready and retry on their own
        log.warning("bid_snapshot_check_failed", error=f"{type(exc).__name__}: {exc}")
        return
    try:
        offer_snapshot_refresh()
    except Exception as exc:  # noqa: BLE001 - e.g. Postgres not migrated yet; beat rebuilds it later
        log.warning("bid_snapshot_build_failed", error=f"{type(exc).__name__}: {exc}")


async def wait_for_shutdown() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
