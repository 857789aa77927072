"""Non-blocking analytics emitter: ``emit(event_type, **fields)`` (docs/RULES.md §10, docs/DESIGN.md "Analytics pipeline").

Hot path: :func:`emit` checks the event type and field names, stamps ``event_id`` (uuid4 hex) and the
UTC timestamp (integer microseconds), and appends a small tuple to an in-process ``deque``. No lock,
no serialisation, no I/O: a few µs (``bench``: ``python -m apps.analytics.bench_emit``). It is safe
from sync Django code, from asyncio code (it never awaits or blocks) and from any thread
(``deque.append`` / ``popleft`` are atomic).

The buffer is bounded by ``ANALYTICS_BUFFER_SIZE`` (default 100000). When it is full the *new* event
is refused and counted in ``analytics_events_dropped_total{reason="overflow"}`` — emit never blocks
and never raises for a full buffer.

A daemon thread (started on first emit, re-created after ``fork`` via ``os.register_at_fork``, so
uvicorn workers and Celery prefork children each get their own) wakes every
``ANALYTICS_FLUSH_INTERVAL_MS`` (100 ms), normalises events into rows (:func:`events.to_row` — a
bad value is logged and counted as ``reason="invalid"`` here, never in the consumer), packs up to
``ANALYTICS_STREAM_CHUNK`` rows (100) into one msgpack stream entry and XADDs the entries in one
pipeline to the Redis stream ``ANALYTICS_STREAM`` ("analytics:events") on ``ANALYTICS_REDIS_URL``
(default ``REDIS_URL``).

Asyncio processes whose loop is busy (the bid workers, the gRPC sidecar, the NATS agents) flush from
their event loop instead (:meth:`Emitter.run_in_loop`, started by ``Bidder.start``): the same rounds,
without a thread contending for the GIL with the loop.

No MAXLEN: trimming could delete entries the consumer has not inserted yet. The stream is emptied
by the consumer (XACK + XDEL after the ClickHouse insert); ``analytics_stream_length`` shows its size.

Redis down: the encoded entries stay in the flusher (``analytics_flush_errors_total`` counts each
failed attempt) and are retried with back-off; meanwhile the flusher stops draining the buffer, so
new events wait in the buffer and only an overflow of the buffer loses (counted) events. A retry
after a partly applied pipeline may write an entry twice: the pipeline is at-least-once and the
ClickHouse table deduplicates by ``event_id`` (see ``apps.analytics.pipeline``).

At interpreter exit (``atexit``, and Celery's ``worker_process_shutdown``) the buffer is flushed with
a short deadline (``ANALYTICS_EXIT_FLUSH_SECONDS``, 3 s); whatever cannot be written then is counted
as ``reason="exit"``.
"""
from __future__ import annotations

import atexit
import collections
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import msgspec
import redis
import structlog
from prometheus_client import Counter, Gauge

from apps.analytics import events
from apps.analytics.emitter_loop import LoopFlushing
from apps.analytics.event_ids import new_event_id, stable_event_id  # noqa: F401 - stable_event_id re-exported
from config import env

if TYPE_CHECKING:
    pass

log = structlog.get_logger(__name__)

EVENTS_DROPPED = Counter(
    "analytics_events_dropped_total", "Analytics events lost before reaching the stream", ["reason"]
)
EVENTS_FLUSHED = Counter("analytics_events_flushed_total", "Analytics events written to the Redis stream")
FLUSH_ERRORS = Counter("analytics_flush_errors_total", "Failed attempts to write analytics events to Redis")
BUFFERED = Gauge(
    "analytics_buffer_events", "Analytics events waiting in this process's buffer", multiprocess_mode="livesum"
)

_DROPPED_OVERFLOW = EVENTS_DROPPED.labels("overflow")
_ENCODE = msgspec.msgpack.Encoder().encode
_Raw = msgspec.Raw
_SERVED_ROWS = events.served_rows
_ENCODED = events.ENCODED

_time_ns = time.time_ns
_sleep = time.sleep
# The flusher converts events to rows holding the GIL: ~3-5 µs each, so a 300-event round would keep
# an asyncio worker's event loop waiting 1-2 ms (and up to the 5 ms switch interval). Every
# _YIELD_EVERY events it sleeps(0), releasing the GIL, so the loop thread waits at most ~0.3 ms.
_YIELD_EVERY = 64

_check = events.check
_RECORD_KINDS = events.RECORD_KINDS

DEFAULT_STREAM = "analytics:events"


def stream_name() -> str:
    """``ANALYTICS_STREAM`` (from ``config.env``: the emitter also runs in the bid workers, which load
    no Django settings); the consumer reads the same stream."""
    return env.ANALYTICS_STREAM or DEFAULT_STREAM


class Emitter(LoopFlushing):
    """A bounded buffer plus its background flusher. The process-wide instance backs :func:`emit`;
    tests build their own (another Redis URL, a small capacity)."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        stream: str | None = None,
        capacity: int | None = None,
        interval: float | None = None,
        chunk: int | None = None,
        autostart: bool = True,
    ) -> None:
        self.redis_url = redis_url or env.ANALYTICS_REDIS_URL or env.REDIS_URL
        self.stream = stream or stream_name()
        self.capacity = capacity if capacity is not None else env.ANALYTICS_BUFFER_SIZE
        self.interval = interval if interval is not None else env.ANALYTICS_FLUSH_INTERVAL_MS / 1000
        self.chunk = max(1, chunk if chunk is not None else env.ANALYTICS_STREAM_CHUNK)
        self.autostart = autostart
        # events drained from the buffer per flush round (bounds what a Redis outage holds outside it)
        self.round_max = max(self.chunk, 10_000)
        self._reset_state()
        _EMITTERS.add(self)

    def _reset_state(self) -> None:
        """Fresh buffer, locks and thread (at init and in a forked child: the parent's buffered
        events belong to the parent, which flushes them; the parent's locks may be held)."""
        self._buf: collections.deque = collections.deque()
        self._pending: list[tuple[bytes, int]] = []  # (encoded entry, events in it) awaiting Redis
        self._held = 0  # events in _pending: they count against the capacity too
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._redis: redis.Redis | None = None
        self._failures = 0
        self._task = None  # the asyncio flusher (run_in_loop), when this process flushes from its event loop
        self._wake = None  # its asyncio.Event: set by stop_in_loop to end the sleep between rounds
        self._aredis = None

    # --- hot path ------------------------------------------------------------------------------
    def emit(self, event_type: str, **fields: Any) -> None:
        """Queue one event; see the module docstring. ValueError / TypeError for a programming error."""
        _check(event_type, fields)
        buf = self._buf
        if len(buf) + self._held >= self.capacity:
            _DROPPED_OVERFLOW.inc()
            return
        buf.append((event_type, new_event_id(), _time_ns() // 1000, fields))
        if not self._started and self.autostart:
            self.start()

    def emit_with_id(self, event_type: str, *, event_id: str, timestamp_us: int, **fields: Any) -> None:
        """Queue an event whose identity the caller fixes (see :func:`emit_with_id`)."""
        _check(event_type, fields)
        if not isinstance(event_id, str) or len(event_id) != 32 or not isinstance(timestamp_us, int):
            raise TypeError("event_id must be 32 hex characters and timestamp_us an int (µs since the epoch)")
        buf = self._buf
        if len(buf) + self._held >= self.capacity:
            _DROPPED_OVERFLOW.inc()
            return
        buf.append((event_type, event_id, timestamp_us, fields))
        if not self._started and self.autostart:
            self.start()

    def emit_record(self, kind: str, values: tuple) -> None:
        """Queue one record for a table of its own (``events.RECORD_KINDS``; see :func:`emit_record`)."""
        if kind not in _RECORD_KINDS:
            raise ValueError(f"unknown analytics record kind {kind!r}")
        buf = self._buf
        if len(buf) + self._held >= self.capacity:
            _DROPPED_OVERFLOW.inc()
            return
        buf.append((kind, None, _time_ns() // 1000, values))  # its rows carry their own ids
        if not self._started and self.autostart:
            self.start()

    def emit_served(self, values: tuple) -> None:
        """Queue the bid path's record of one answered request (``events.SERVED``) as its wire rows,
        converted and msgpack-encoded now rather than by the flusher: while the request's objects are
        still in the CPU's caches (a round reads records ~100 ms old), and the buffer holds one tuple of
        ``msgspec.Raw`` rows, which the collector never walks, instead of the record's ~5 tuples. A
        record that cannot be converted or encoded is dropped and counted as ``reason="invalid"`` here,
        never raised into the request."""
        buf = self._buf
        if len(buf) + self._held >= self.capacity:
            _DROPPED_OVERFLOW.inc()
            return
        ts_us = _time_ns() // 1000
        try:
            encoded = tuple([_Raw(_ENCODE(row)) for row in _SERVED_ROWS(ts_us, values)])
        except (events.InvalidEvent, OverflowError, TypeError, ValueError) as exc:
            # OverflowError: an int msgpack cannot hold (e.g. an exchange's banner.pos beyond 64 bits)
            EVENTS_DROPPED.labels("invalid").inc()
            log.error("analytics_event_invalid", event_type=events.SERVED, error=f"{type(exc).__name__}: {exc}")
            return
        buf.append((_ENCODED, None, ts_us, encoded))
        if not self._started and self.autostart:
            self.start()

    # --- background ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the flusher thread (idempotent; called by the first emit)."""
        with self._start_lock:
            if self._started:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="analytics-flusher", daemon=True)
            self._thread.start()
            self._started = True

    def stop(self, *, flush: bool = True, timeout: float = 3.0) -> bool:
        """Stop the flusher thread and (by default) flush what is left. True when nothing is left."""
        with self._start_lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._started = False
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return self.flush(timeout=timeout) if flush else self.backlog() == 0

    def backlog(self) -> int:
        """Events not yet in the stream (buffer plus encoded entries waiting for Redis)."""
        return len(self._buf) + self._held

    def _run(self) -> None:
        while True:
            delay = self.interval if not self._failures else min(2.0, self.interval * 2 ** min(self._failures, 5))
            if self._stop.wait(delay):
                return
            try:
                self.flush_once()
            except Exception:  # noqa: BLE001 - the flusher must survive anything and keep the events
                log.exception("analytics_flusher_crashed")

    def _client(self) -> redis.Redis:
        if self._redis is None:
            from apps.core.redis import sync_from_url  # redis:// or redis+cluster://

            self._redis = sync_from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=2)  # type: ignore[assignment]
        return self._redis  # type: ignore[return-value]

    def _send(self, entries: list[tuple[bytes, int]]) -> bool:
        try:
            pipe = self._client().pipeline(transaction=False)
            for payload, _ in entries:
                pipe.xadd(self.stream, {"d": payload})
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            return self._failed(exc)
        return self._succeeded()

    def _failed(self, exc: Exception) -> bool:
        FLUSH_ERRORS.inc()
        self._failures += 1
        if self._failures in (1, 10) or self._failures % 100 == 0:
            log.warning("analytics_flush_failed", error=str(exc), attempts=self._failures, backlog=self.backlog())
        return False

    def _succeeded(self) -> bool:
        if self._failures:
            log.info("analytics_flush_recovered", attempts=self._failures)
        self._failures = 0
        return True

    def _drain_rows(self, count: int, rows: list) -> None:
        """Move ``count`` events (already counted in ``_held``) from the buffer into ``rows``."""
        popleft = self._buf.popleft
        append = rows.append
        to_row = events.to_row
        for _ in range(count):
            event_type, event_id, ts_us, fields = popleft()
            try:
                if event_id is None:  # a record (emit_record): one or more rows of its own table
                    rows.extend(events.record_rows(event_type, ts_us, fields))
                else:
                    append(to_row(event_type, event_id, ts_us, fields))
            except events.InvalidEvent as exc:
                self._held -= 1
                EVENTS_DROPPED.labels("invalid").inc()
                log.error("analytics_event_invalid", event_type=event_type, error=str(exc))

    def _entries(self, rows: list) -> list[tuple[bytes, int]]:
        """Rows packed ``chunk`` at a time into msgpack stream entries: ``[(payload, events)]``."""
        chunk = self.chunk
        return [(_ENCODE(rows[start : start + chunk]), len(rows[start : start + chunk]))
                for start in range(0, len(rows), chunk)]

    def _round(self, per_pause: int):
        """One flush round as a sequence of steps, for :meth:`flush_once` (thread) and
        :meth:`_flush_once_async` (event loop), which differ only in how they send and pause: retry
        the held entries, then write the events the buffer held when the round began. It yields
        entries to write (the driver sends back whether they were written) or ``None`` after each
        ``per_pause`` conversions (the driver lets other work run); it returns True when all was
        written. Call it holding ``_flush_lock``."""
        if self._pending:
            if not (yield self._pending):
                BUFFERED.set(self.backlog())
                return False
            EVENTS_FLUSHED.inc(self._held)
            self._pending, self._held = [], 0
        buf = self._buf
        # Only the events buffered when the round began: those emitted while it converts or waits
        # for Redis wait for the next round. Draining until empty, a busy asyncio worker (whose
        # requests emit during every await of the pipeline) wrote one XADD pipeline per request or
        # two instead of one per interval: ~25 µs of redis-py and a Redis round trip each time.
        todo = len(buf)
        while todo > 0 and buf:
            rows: list[tuple] = []
            count = min(self.round_max, todo, len(buf))
            todo -= count
            while count > 0:
                take = min(count, per_pause)
                # counted as held before they leave the buffer, so emit never sees room that is
                # not there, and backlog() stays exact at the pauses
                self._held += take
                self._drain_rows(take, rows)
                count -= take
                if count:
                    yield None
            entries = self._entries(rows)
            self._pending, self._held = entries, len(rows)
            if not (yield entries):
                BUFFERED.set(self.backlog())
                return False
            EVENTS_FLUSHED.inc(len(rows))
            self._pending, self._held = [], 0
        BUFFERED.set(len(buf))
        return True

    def flush_once(self) -> bool:
        """One flush round: retry held entries, then write what the buffer held when the round began.
        True when all of it was written (events emitted meanwhile wait for the next round)."""
        with self._flush_lock:
            steps, written = self._round(_YIELD_EVERY), None
            try:
                while True:
                    entries = steps.send(written)
                    if entries is None:
                        written = _sleep(0)  # let the event loop thread have the GIL (see _YIELD_EVERY)
                    else:
                        written = self._send(entries)
            except StopIteration as done:
                return done.value

    def flush(self, *, timeout: float = 5.0) -> bool:
        """Write everything buffered now (tests, exit). Retries until ``timeout``; True when empty."""
        deadline = time.monotonic() + timeout
        while True:
            if self.flush_once() and not self._buf:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # --- asyncio processes ----------------------------------------------------------------------
    def close(self, *, flush: bool = True, timeout: float = 3.0) -> int:
        """Stop for good: flush (optionally), forget this emitter (no exit-time flush) and return the
        number of events discarded, which are counted as ``reason="closed"``."""
        self.stop(flush=flush, timeout=timeout)
        _EMITTERS.discard(self)
        lost = self.backlog()
        if lost:
            EVENTS_DROPPED.labels("closed").inc(lost)
        self._buf.clear()
        self._pending, self._held = [], 0
        return lost

    def _after_fork_in_child(self) -> None:
        self._reset_state()


_EMITTERS: "weakref.WeakSet[Emitter]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for emitter in list(_EMITTERS):
        emitter._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


def flush_all_at_exit() -> None:
    """Flush every emitter with a short deadline; count what could not be written."""
    deadline = time.monotonic() + env.ANALYTICS_EXIT_FLUSH_SECONDS
    for emitter in list(_EMITTERS):
        if not emitter.backlog():
            continue
        if not emitter.stop(flush=True, timeout=max(0.0, deadline - time.monotonic())):
            lost = emitter.backlog()
            EVENTS_DROPPED.labels("exit").inc(lost)
            log.error("analytics_events_lost_at_exit", count=lost, stream=emitter.stream)


atexit.register(flush_all_at_exit)

_default = Emitter()


def default_emitter() -> Emitter:
    """The process-wide emitter behind :func:`emit`."""
    return _default


#: ``emit(event_type, **fields)``: queue one analytics event without blocking (see the module
#: docstring). ``event_type`` must be one of :data:`apps.analytics.events.EVENT_TYPES` (else
#: ValueError) and every keyword one of :data:`apps.analytics.events.FIELDS` (else TypeError).
#: The process-wide emitter's bound method itself: a function passing ``**fields`` on would build the
#: keyword dict twice, +6.8k instructions per event under callgrind (14.5k -> 21.2k), on the bid path.
emit = _default.emit


def emit_with_id(event_type: str, *, event_id: str, timestamp_us: int, **fields: Any) -> None:
    """Queue an event with a fixed ``event_id`` and ``timestamp_us`` (e.g. :func:`stable_event_id` of the row
    that records the fact, and that row's time).

    For events a retry may emit again: ``analytics_events`` is a ``ReplacingMergeTree`` ordered by
    ``(campaign_id, event_type, timestamp, event_id)``, so every emission of the same fact collapses into
    one row (reports read ``FINAL``). A write whose commit reached the database but whose answer was lost
    emits nothing (Django runs no ``on_commit`` callback when COMMIT raises); the client's retry, answered
    from the stored result, emits the event then, with the same identity.
    """
    _default.emit_with_id(event_type, event_id=event_id, timestamp_us=timestamp_us, **fields)


def emit_record(kind: str, values: tuple) -> None:
    """Queue one record of a kind with a table of its own (``apps.analytics.events.RECORDS``, e.g.
    ``bid_inputs``) without blocking: the same buffer, stream and consumer as :func:`emit`. ``values``
    is the kind's tuple of references (see its module); the flusher converts it into a row, so the
    caller pays only for the append. An unknown kind raises ValueError."""
    _default.emit_record(kind, values)
