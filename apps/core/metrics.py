"""Prometheus exposition for every process. Metrics themselves are module-level objects next to the
code they measure. With ``PROMETHEUS_MULTIPROC_DIR`` set (several uvicorn workers, Celery prefork
children), samples from all worker processes are aggregated.

Multiprocess mode rules (prometheus_client): the variable must be set, and the directory exist and be
emptied, *before* prometheus_client is first imported in the parent process (see
``apps.bidding.runner.prepare_multiprocess_metrics`` and the Procfile's worker line); a Gauge needs a
``multiprocess_mode``; a process that exits should be passed to :func:`mark_process_dead`.
"""
from __future__ import annotations

import bisect
import threading

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from config import env

__all__ = ["CONTENT_TYPE_LATEST", "multiprocess_dir", "registry", "render", "mark_process_dead",
           "buffered", "flush_buffered"]


def multiprocess_dir() -> str:
    """The multiprocess directory, or "" when this process keeps its metrics in memory.

    ``config.env`` reads it at start-up, as prometheus_client does when first imported; it is set
    before a process starts (the Procfile, or run_bid_app for the workers it launches)."""
    return env.PROMETHEUS_MULTIPROC_DIR


def registry() -> CollectorRegistry:
    """The registry to expose: every process's samples in multiprocess mode, else this process's."""
    if multiprocess_dir():
        aggregated = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregated)
        return aggregated
    return REGISTRY


def render() -> bytes:
    """The text exposition format for ``/metrics`` (this process's buffered samples flushed first)."""
    flush_buffered()
    return generate_latest(registry())


# --- buffered metrics for hot paths --------------------------------------------------------------
# In multiprocess mode every inc()/observe() takes a lock, checks the pid and writes an mmap'd file:
# ~3-4 µs each, ~25 µs per bid request with the bid path's 6-7 updates. A hot path instead counts in
# plain Python numbers and the owner flushes them into the real metric every ~100 ms (and /metrics
# does before rendering), so a scrape lags this process by at most one flush interval.
# In single-process mode an update is an in-memory add under a lock: ``buffered`` hands back the metric
# itself, unless the caller asks for buffering ``always`` (the bid path: its owner, the Bidder, flushes).


class _BufferedCounter:
    __slots__ = ("_target", "_pending")

    def __init__(self, target) -> None:
        self._target = target
        self._pending = 0

    def inc(self, amount: float = 1) -> None:
        self._pending += amount

    def flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = 0
            self._target.inc(pending)


class _BufferedHistogram:
    __slots__ = ("_target", "_bounds", "_counts", "_sum", "_dirty")

    def __init__(self, target) -> None:
        self._target = target
        self._bounds = list(target._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._dirty = False

    def observe(self, amount: float) -> None:
        # the same bucket rule as prometheus_client: the first bound >= amount
        self._counts[bisect.bisect_left(self._bounds, amount)] += 1
        self._sum += amount
        self._dirty = True

    def flush(self) -> None:
        if not self._dirty:
            return
        counts, total = self._counts, self._sum
        self._counts, self._sum, self._dirty = [0] * len(counts), 0.0, False
        target = self._target
        target._sum.inc(total)
        buckets = target._buckets
        for i, count in enumerate(counts):
            if count:
                buckets[i].inc(count)


_buffered: list = []
_flush_lock = threading.Lock()


def buffered(metric, *, always: bool = False):
    """A counter / histogram (an unlabelled metric or a ``.labels(...)`` child) for a hot path:
    buffered in multiprocess mode (see above; call :func:`flush_buffered` periodically), else the
    metric itself — or buffered in either mode with ``always`` (prometheus_client's single-process
    update still takes a lock: ~1 µs each). Only for code running on one thread (the bid workers'
    event loop)."""
    if (not multiprocess_dir() and not always) or isinstance(metric, (_BufferedCounter, _BufferedHistogram)):
        return metric  # (a proxy already: buffering twice would lose the histogram's buckets)
    proxy = _BufferedHistogram(metric) if hasattr(metric, "_upper_bounds") else _BufferedCounter(metric)
    _buffered.append(proxy)
    return proxy


def flush_buffered() -> None:
    """Write every buffered hot-path update into its metric (cheap when nothing changed)."""
    with _flush_lock:
        for proxy in _buffered:
            proxy.flush()


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker's live gauges from the aggregate (multiprocess mode only)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)
