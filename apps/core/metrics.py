"""Prometheus exposition for every process. Metrics themselves are module-level objects next to the
code they measure. With ``PROMETHEUS_MULTIPROC_DIR`` set (several uvicorn workers, Celery prefork
children), samples from all worker processes are aggregated.

Multiprocess mode rules (prometheus_client): the variable must be set, and the directory exist and be
emptied, *before* prometheus_client is first imported in the parent process (see
``apps.bidding.runner.prepare_multiprocess_metrics`` and the Procfile's worker line); a Gauge needs a
``multiprocess_mode``; a process that exits should be passed to :func:`mark_process_dead`.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess

from config import env

__all__ = ["CONTENT_TYPE_LATEST", "multiprocess_dir", "registry", "render", "mark_process_dead"]


def multiprocess_dir() -> str:
    """The multiprocess directory, or "" when this process keeps its metrics in memory."""
    return env.env_str("PROMETHEUS_MULTIPROC_DIR", "")


def registry() -> CollectorRegistry:
    """The registry to expose: every process's samples in multiprocess mode, else this process's."""
    if multiprocess_dir():
        aggregated = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregated)
        return aggregated
    return REGISTRY


def render() -> bytes:
    """The text exposition format for ``/metrics``."""
    return generate_latest(registry())


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker's live gauges from the aggregate (multiprocess mode only)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
