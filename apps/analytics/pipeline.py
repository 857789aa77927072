"""Redis stream → ClickHouse writer (the cold half of the analytics pipeline).

:func:`consume` is what the Celery beat task runs every second. One batch:

1. the consumer's own pending entries (read with id ``0``: delivered to it earlier, not yet acked —
   e.g. ClickHouse was down), else entries idle longer than ``ANALYTICS_CLAIM_IDLE_SECONDS`` (60)
   in *another* consumer's pending list, taken with ``XAUTOCLAIM`` (that consumer crashed), else new
   entries (``XREADGROUP >``);
2. decode (each entry is a msgpack list of up to ``ANALYTICS_STREAM_CHUNK`` rows — see
   :mod:`apps.analytics.emitter`), so ``ANALYTICS_BATCH_EVENTS`` (10,000) / chunk entries per read;
3. one INSERT into ``analytics_events`` through :mod:`apps.core.clickhouse`;
4. only after the insert succeeded: ``XACK`` + ``XDEL`` (the stream holds only unwritten events).

ClickHouse down ⇒ the insert raises, nothing is acked, the entries stay in this consumer's pending
list and step 1 retries them on the next run; nothing is lost. A crash between 3 and 4 re-inserts the
batch: delivery is at-least-once and exactly-once is restored in ClickHouse by ``event_id`` — the
table is a ``ReplacingMergeTree`` keyed by ``event_id`` and reports read it ``FINAL`` (see
clickhouse_migrations/0001 and :mod:`apps.analytics.selectors`).

An entry that cannot be decoded, or a row the driver refuses to serialise, is moved to the
``<stream>:dead`` stream (with the error) and acked, so one bad entry never blocks the pipeline.

Consumers: one name per worker process (``<host>-<pid>``). The Celery task takes a short Redis lock
so only one consume loop runs at a time (it keeps one worker slot, not all of them, and a single
consumer easily keeps up: ~100k events/s); without the lock several consumers would simply split
the stream, which is also correct.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass, field

import msgspec
import redis
import structlog
from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from apps.analytics import events
from apps.analytics.emitter import stream_name
from apps.core import clickhouse as ch
from apps.core import redis as redis_store

log = structlog.get_logger(__name__)

GROUP = "analytics-writers"
TABLE = "analytics_events"

STREAM_LENGTH = Gauge(
    "analytics_stream_length", "Entries in the analytics Redis stream not yet written (queued)",
    multiprocess_mode="livemostrecent",  # the latest observation, whichever worker made it
)
STREAM_LAG = Gauge(
    "analytics_stream_lag_seconds", "Age of the oldest unwritten entry in the analytics stream",
    multiprocess_mode="livemostrecent",  # the latest observation, whichever worker made it
)
STREAM_PENDING = Gauge(
    "analytics_stream_pending", "Entries delivered to a consumer and not yet acknowledged",
    multiprocess_mode="livemostrecent",  # the latest observation, whichever worker made it
)
EVENTS_INSERTED = Counter("analytics_events_inserted_total", "Analytics events inserted into ClickHouse")
INSERT_ERRORS = Counter("analytics_insert_errors_total", "Failed ClickHouse inserts of analytics batches")
EVENTS_CLAIMED = Counter("analytics_entries_claimed_total", "Stream entries claimed from idle consumers")
DEAD_LETTERS = Counter("analytics_dead_letters_total", "Stream entries moved to the dead-letter stream")
BATCH_SECONDS = Histogram(
    "analytics_batch_seconds", "Time to write one analytics batch (read, insert, ack)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# what clickhouse_driver raises client-side for a value it cannot serialise into a column
_UNSERIALISABLE = (TypeError, ValueError, OverflowError, AttributeError, struct.error)

_decode = msgspec.msgpack.Decoder(list[list]).decode


def consumer_name() -> str:
    """This process's consumer name: unique per worker process, stable for its lifetime."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class BatchResult:
    entries: int = 0
    events: int = 0
    claimed: int = 0
    dead: int = 0
    source: str = "new"  # own-pending | claimed | new


@dataclass
class ConsumeResult:
    batches: int = 0
    events: int = 0
    claimed: int = 0
    dead: int = 0
    error: str | None = None
    details: list[BatchResult] = field(default_factory=list)


class Writer:
    """Reads batches from one stream with one consumer name and writes them to ClickHouse."""

    def __init__(
        self,
        *,
        stream: str | None = None,
        consumer: str | None = None,
        client: redis.Redis | None = None,
        batch_events: int | None = None,
        chunk: int | None = None,
        claim_idle_seconds: float | None = None,
        table: str = TABLE,
    ) -> None:
        self.stream = stream or stream_name()
        self.dead_stream = f"{self.stream}:dead"
        self.consumer = consumer or consumer_name()
        self.redis = client or redis_store.client(settings.ANALYTICS_REDIS_URL or None)
        chunk = chunk or settings.ANALYTICS_STREAM_CHUNK
        batch_events = batch_events or settings.ANALYTICS_BATCH_EVENTS
        self.batch_entries = max(1, batch_events // max(1, chunk))
        self.claim_idle_ms = int(
            1000 * (claim_idle_seconds if claim_idle_seconds is not None else settings.ANALYTICS_CLAIM_IDLE_SECONDS)
        )
        self.table = table
        self._group_ready = False

    # --- group -------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the consumer group (from the start of the stream, so nothing queued before the
        first consumer existed is skipped) and the stream itself if missing."""
        if self._group_ready:
            return
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    # --- reading -----------------------------------------------------------------------------
    def _read(self) -> tuple[list[tuple[bytes, dict]], str]:
        own = self.redis.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=self.batch_entries)
        entries = own[0][1] if own else []
        gone = [entry_id for entry_id, data in entries if not data]  # deleted while pending: come back empty
        if gone:
            self.redis.xack(self.stream, GROUP, *gone)
        entries = [(entry_id, data) for entry_id, data in entries if data]
        if entries:
            return entries, "own-pending"
        if self.claim_idle_ms >= 0:
            claimed = self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0",
                count=self.batch_entries,
            )
            # reply: [next_start, [(id, fields), ...], (redis 7: [deleted ids])]
            taken = [(entry_id, data) for entry_id, data in claimed[1] if data]
            deleted = list(claimed[2]) if len(claimed) > 2 else []
            if deleted:  # entries deleted while pending: drop them from the pending list
                self.redis.xack(self.stream, GROUP, *deleted)
            if taken:
                EVENTS_CLAIMED.inc(len(taken))
                log.warning("analytics_entries_claimed", count=len(taken), consumer=self.consumer)
                return taken, "claimed"
        new = self.redis.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=self.batch_entries)
        return (new[0][1] if new else []), "new"

    # --- writing -----------------------------------------------------------------------------
    def _dead_letter(self, entry_id: bytes, data: dict, error: str) -> None:
        DEAD_LETTERS.inc()
        log.error("analytics_entry_dead_lettered", entry_id=entry_id.decode(), error=error, stream=self.stream)
        self.redis.xadd(self.dead_stream, {"entry_id": entry_id, "error": error[:500], **{k: v for k, v in data.items()}})

    def _ack(self, entry_ids: list[bytes]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.stream, GROUP, *entry_ids)
        pipe.xdel(self.stream, *entry_ids)
        pipe.execute()

    def _insert(self, rows: list[tuple]) -> None:
        """Events into ``self.table``; records (``events.RECORDS``) into their own tables, without the
        kind column. Every table deduplicates by ``event_id``, so a batch re-inserted after a partial
        failure is harmless."""
        plain: list[tuple] = []
        records: dict[str, list[tuple]] = {}
        for row in rows:
            kind = row[1]
            if kind in events.RECORDS:
                records.setdefault(kind, []).append(row[:1] + row[2:])
            else:
                plain.append(row)
        if plain:
            ch.insert(self.table, events.COLUMNS, plain)
        for kind, kind_rows in records.items():
            table, columns, to_insert = events.RECORDS[kind]
            ch.insert(table, columns, [to_insert(row) for row in kind_rows])

    def write_batch(self) -> BatchResult:
        """Read, insert and acknowledge one batch. Raises ``ch.ClickHouseError`` (nothing acked)."""
        self.ensure_group()
        started = time.perf_counter()
        try:
            entries, source = self._read()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the stream (and its group) was deleted under us, e.g. a FLUSHDB: start again from scratch
            self._group_ready = False
            self.ensure_group()
            entries, source = self._read()
        result = BatchResult(entries=len(entries), source=source)
        if not entries:
            return result
        if source == "claimed":
            result.claimed = len(entries)
        decoded: list[tuple[bytes, dict, list[tuple]]] = []
        for entry_id, data in entries:
            try:
                decoded.append((entry_id, data, [events.row_to_insert(row) for row in _decode(data[b"d"])]))
            except (KeyError, msgspec.DecodeError, TypeError, ValueError, OverflowError, OSError) as exc:
                self._dead_letter(entry_id, data, f"undecodable entry: {exc!r}")
                self._ack([entry_id])
                result.dead += 1
        rows = [row for _, _, entry_rows in decoded for row in entry_rows]
        try:
            self._insert(rows)
        except ch.ClickHouseError:
            INSERT_ERRORS.inc()
            raise
        except _UNSERIALISABLE as exc:
            # the driver refused a value: find the offending entries one by one, keep the rest
            ch.reset_connections()  # the refused INSERT left the connection mid-protocol
            log.error("analytics_batch_unserialisable", error=repr(exc), entries=len(decoded))
            good: list[tuple[bytes, dict, list[tuple]]] = []
            for entry_id, data, entry_rows in decoded:
                try:
                    self._insert(entry_rows)
                    good.append((entry_id, data, entry_rows))
                except _UNSERIALISABLE as entry_exc:
                    ch.reset_connections()
                    self._dead_letter(entry_id, data, f"unserialisable rows: {entry_exc!r}")
                    self._ack([entry_id])
                    result.dead += 1
            decoded = good
            rows = [row for _, _, entry_rows in decoded for row in entry_rows]
        if decoded:
            self._ack([entry_id for entry_id, _, _ in decoded])
        result.events = len(rows)
        EVENTS_INSERTED.inc(len(rows))
        BATCH_SECONDS.observe(time.perf_counter() - started)
        return result

    def run(self, *, max_seconds: float = 5.0, max_batches: int | None = None) -> ConsumeResult:
        """Write batches until the stream has nothing for us, the time budget is spent, or an error."""
        deadline = time.monotonic() + max_seconds
        total = ConsumeResult()
        while max_batches is None or total.batches < max_batches:
            try:
                batch = self.write_batch()
            except ch.ClickHouseError as exc:
                total.error = f"clickhouse: {exc}"
                log.warning("analytics_insert_failed", error=str(exc), consumer=self.consumer)
                break
            if not batch.entries:
                break
            total.batches += 1
            total.events += batch.events
            total.claimed += batch.claimed
            total.dead += batch.dead
            total.details.append(batch)
            if time.monotonic() >= deadline:
                break
        self.observe()
        return total

    # --- gauges ------------------------------------------------------------------------------
    def observe(self) -> dict[str, float]:
        """Refresh queued / pending / lag gauges from the stream; returns them."""
        try:
            length = self.redis.xlen(self.stream)
            oldest = self.redis.xrange(self.stream, count=1)
            pending = self.redis.xpending(self.stream, GROUP)["pending"] if self._group_ready else 0
        except redis.ResponseError:
            return {}
        lag = 0.0
        if oldest:
            millis = int(oldest[0][0].split(b"-")[0])
            lag = max(0.0, time.time() - millis / 1000)
        STREAM_LENGTH.set(length)
        STREAM_PENDING.set(pending)
        STREAM_LAG.set(lag)
        return {"length": length, "pending": pending, "lag_seconds": lag}

    def forget_idle_consumers(self, *, idle_seconds: float = 3600) -> list[str]:
        """Delete consumers with nothing pending that have been idle a long time (old worker pids)."""
        self.ensure_group()
        removed = []
        for info in self.redis.xinfo_consumers(self.stream, GROUP):
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if info["pending"] == 0 and info["idle"] >= idle_seconds * 1000 and name != self.consumer:
                self.redis.xgroup_delconsumer(self.stream, GROUP, name)
                removed.append(name)
        return removed


def consume(*, stream: str | None = None, max_seconds: float | None = None) -> ConsumeResult:
    """Run one consume loop under a short Redis lock (the beat task's body)."""
    writer = Writer(stream=stream)
    max_seconds = max_seconds if max_seconds is not None else settings.ANALYTICS_CONSUME_SECONDS
    lock_key = f"{writer.stream}:writer-lock"
    token = writer.consumer.encode()
    # the lock outlives the loop's budget; a crashed holder's lock simply expires
    if not writer.redis.set(lock_key, token, nx=True, px=int((max_seconds + 30) * 1000)):
        writer.observe()
        return ConsumeResult()
    try:
        return writer.run(max_seconds=max_seconds)
    finally:
        _release(writer.redis, lock_key, token)


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def _release(client: redis.Redis, key: str, token: bytes) -> None:
    try:
        client.eval(_RELEASE, 1, key, token)
    except redis.RedisError:
        pass  # it expires on its own
