"""Metrics and analytics plumbing for Celery worker processes (connected in AnalyticsConfig.ready()).

* ``worker_init`` (main worker process, before the pool forks): serve ``/metrics`` with
  prometheus_client's HTTP server on ``CELERY_METRICS_ADDR``:``CELERY_METRICS_PORT`` (127.0.0.1:9808;
  port 0 disables). Tasks run in prefork children, so their samples reach this server only in
  multiprocess mode: the Procfile's worker line sets ``PROMETHEUS_MULTIPROC_DIR`` (emptied at start).
  Without it the server shows the main process's own metrics only.
* ``task_prerun`` / ``task_postrun``: ``celery_tasks_total{task,state}`` and ``celery_task_seconds{task}``.
* ``worker_process_shutdown`` (each prefork child as it exits, where ``atexit`` does not run): flush
  the analytics emitter and mark the child dead for the multiprocess gauges.
"""
from __future__ import annotations

import os
import time

import structlog
from celery import signals
from django.conf import settings
from prometheus_client import Counter, Histogram, start_http_server

from apps.core import metrics as core_metrics

log = structlog.get_logger(__name__)

TASKS = Counter("celery_tasks_total", "Celery tasks finished, by task name and final state", ["task", "state"])
TASK_SECONDS = Histogram(
    "celery_task_seconds", "Celery task run time", ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

_started: dict[str, float] = {}
_server = None


@signals.worker_init.connect
def start_metrics_server(sender=None, **kwargs) -> None:
    """Serve /metrics for this worker (see module docstring). A busy port is logged, not fatal."""
    global _server
    port = settings.CELERY_METRICS_PORT
    if port <= 0 or _server is not None:
        return
    addr = settings.CELERY_METRICS_ADDR
    try:
        _server = start_http_server(port, addr=addr, registry=core_metrics.registry())
    except OSError as exc:
        log.warning("celery_metrics_server_failed", addr=addr, port=port, error=str(exc))
        return
    log.info("celery_metrics_server_started", addr=addr, port=port,
             multiprocess_dir=core_metrics.multiprocess_dir() or None)


@signals.task_prerun.connect
def _task_started(task_id=None, **kwargs) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    name = getattr(task, "name", "unknown")
    TASKS.labels(name, (state or "unknown").lower()).inc()
    started = _started.pop(task_id, None)
    if started is not None:
        TASK_SECONDS.labels(name).observe(time.perf_counter() - started)


@signals.worker_process_shutdown.connect
def _child_exits(pid=None, **kwargs) -> None:
    from apps.analytics.emitter import flush_all_at_exit

    flush_all_at_exit()
    core_metrics.mark_process_dead(pid or os.getpid())
