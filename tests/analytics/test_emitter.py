"""The emitter: never blocks, counts overflow, survives a Redis outage, fork and interpreter exit."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
import redis
from prometheus_client import REGISTRY

from apps.analytics import emitter as emitter_mod
from apps.analytics import events
from apps.core import redis as redis_store
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer
from tests.support.wait import async_pause, async_wait_until, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _metric(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _rows(client: redis.Redis, stream: str) -> list[list]:
    return [row for _, data in client.xrange(stream) for row in msgspec.msgpack.decode(data[b"d"])]


def _wait(predicate, timeout: float = 5.0) -> bool:
    return wait_until(predicate, timeout, 0.01, message="the emitter's state")


@pytest.fixture
def private_redis():
    server = RedisServer()
    yield server
    server.stop()


def test_unknown_event_type_and_field_are_programming_errors():
    em = emitter_mod.Emitter(autostart=False)
    with pytest.raises(ValueError):
        em.emit("bid_requests")
    with pytest.raises(TypeError):
        em.emit("win", campaign=1)
    with pytest.raises(ValueError):
        emitter_mod.emit("nope", campaign_id=1)
    with pytest.raises(TypeError):
        emitter_mod.emit("win", price_cpm=1.0)
    assert em.backlog() == 0


def test_event_ids_are_uuid4_hex():
    import uuid

    ids = {emitter_mod.new_event_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).hex == i for i in ids)


def test_emit_with_id_keeps_the_callers_id_and_time(stream):
    event_id = emitter_mod.stable_event_id("loyalty.ledger", 42, "loyalty_earn")
    assert event_id == emitter_mod.stable_event_id("loyalty.ledger", 42, "loyalty_earn") != \
        emitter_mod.stable_event_id("loyalty.ledger", 43, "loyalty_earn")
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    for _ in range(2):  # a first emission and a retry's
        em.emit_with_id("loyalty_earn", event_id=event_id, timestamp_us=1_700_000_000_123_456, user_id="u", stars=5)
    assert em.flush(timeout=5)
    rows = _rows(redis_store.client(), stream)
    assert [tuple(r[:4]) for r in rows] == [(event_id, "loyalty_earn", 1_700_000_000, 123_456)] * 2
    with pytest.raises(TypeError):
        em.emit_with_id("loyalty_earn", event_id="short", timestamp_us=1)
    with pytest.raises(TypeError):
        em.emit_with_id("loyalty_earn", event_id=event_id, timestamp_us=1.5)
    with pytest.raises(ValueError):
        em.emit_with_id("nope", event_id=event_id, timestamp_us=1)


def test_full_buffer_never_blocks_and_counts_overflow():
    # Redis unreachable and a tiny buffer: emit must still return at once (~3 µs each: bench/timings.py)
    em = emitter_mod.Emitter(redis_url=f"redis://127.0.0.1:{free_port()}/0", capacity=1000, interval=0.01)
    dropped = _metric("analytics_events_dropped_total", {"reason": "overflow"})
    for n in range(20_000):
        em.emit("bid_response", request_id=str(n), latency_us=n)
    assert em.backlog() == 1000
    assert _metric("analytics_events_dropped_total", {"reason": "overflow"}) - dropped == 19_000
    em.close(flush=False)


def test_emit_only_buffers():
    """What makes emit cheap (a few µs, measured by bench/timings.py): it appends to the buffer and
    nothing else — no encoding, no I/O, no thread started."""
    em = emitter_mod.Emitter(autostart=False, capacity=10**6)
    for i in range(1000):
        em.emit("bid_response", request_id="r", campaign_id="1", price=1.0, latency_us=i)
    assert em.backlog() == 1000 and em._thread is None and not em._started
    em._buf.clear()


async def test_emit_from_asyncio_code(stream):
    em = emitter_mod.Emitter(stream=stream, interval=0.02)

    async def handler(i: int) -> None:
        em.emit("no_bid", request_id=f"a{i}", reason="no_candidates", latency_us=i)
        await async_pause(0, "one loop turn between emits")

    await asyncio.gather(*(handler(i) for i in range(500)))
    client = redis_store.client()
    assert await asyncio.to_thread(_wait, lambda: em.backlog() == 0)
    assert len(_rows(client, stream)) == 500
    em.close()


def test_background_thread_flushes_within_about_100ms(stream):
    em = emitter_mod.Emitter(stream=stream)  # default interval: 100 ms (the time it takes: bench/timings.py)
    assert em.interval == 0.1
    client = redis_store.client()
    em.emit("click", campaign_id="c1")
    assert _wait(lambda: client.xlen(stream) == 1, timeout=5)  # no flush() call: the thread did it
    em.close()


def test_redis_down_keeps_events_and_flushes_when_it_is_back(private_redis):
    stream = "analytics:events"
    em = emitter_mod.Emitter(redis_url=f"redis://127.0.0.1:{private_redis.port}/0", stream=stream, interval=0.02)
    client = redis.Redis(port=private_redis.port)
    for n in range(300):
        em.emit("win", request_id=f"up{n}")
    assert _wait(lambda: em.backlog() == 0)
    assert len(_rows(client, stream)) == 300

    private_redis.stop()
    errors = _metric("analytics_flush_errors_total")
    for n in range(700):
        em.emit("win", request_id=f"down{n}")
    assert _wait(lambda: _metric("analytics_flush_errors_total") >= errors + 2)
    assert em.backlog() == 700  # kept, not lost
    # (No check of the analytics_buffer_events gauge here: it is process-wide, and the process's
    # default emitter, flushing to the healthy test Redis, may set it to its own 0 at any moment.)

    private_redis.start()  # an empty Redis on the same port (no persistence)
    assert _wait(lambda: em.backlog() == 0, timeout=10)
    rows = _rows(redis.Redis(port=private_redis.port), stream)
    ids = [row[0] for row in rows]
    assert sorted(row[events.COLUMNS.index("request_id")] for row in rows) == sorted(f"down{n}" for n in range(700))
    assert len(set(ids)) == 700
    em.close()


async def test_loop_flusher_writes_without_a_thread_and_stop_flushes_the_rest(stream):
    em = emitter_mod.Emitter(stream=stream, interval=0.02)
    em.run_in_loop()
    client = redis_store.client()
    for n in range(1000):  # more than one loop turn's worth of rows
        em.emit("bid_response", request_id=f"l{n}", campaign_id=7, price=1.5, latency_us=n)
    await async_wait_until(lambda: em.backlog() == 0, timeout=5, message="the loop flushed the buffer")
    assert em._thread is None  # emit did not start the thread: the loop flushes
    for n in range(10):  # written by stop_in_loop, not by a later round
        em.emit("no_bid", request_id=f"late{n}", reason="deadline")
    assert await em.stop_in_loop()
    rows = _rows(client, stream)
    assert len(rows) == 1010 and len({row[0] for row in rows}) == 1010
    assert rows[0][events.COLUMNS.index("campaign_id")] == "7"
    em.close()


class _BusyEmitter(emitter_mod.Emitter):
    """Events keep arriving while a round waits for Redis (as in a loaded bid worker)."""

    def _send(self, entries):
        for n in range(3):
            self.emit("click", request_id=f"meanwhile{len(self._buf)}-{n}")
        return super()._send(entries)

    async def _send_async(self, client, entries):
        for n in range(3):
            self.emit("click", request_id=f"meanwhile{len(self._buf)}-{n}")
        return await super()._send_async(client, entries)


def _request_ids(stream: str) -> list[str]:
    return [row[events.COLUMNS.index("request_id")] for row in _rows(redis_store.client(), stream)]


async def test_a_round_writes_what_was_buffered_when_it_began(stream):
    # one write per round, not one for every few events that arrive while it waits for Redis
    em = _BusyEmitter(stream=stream, autostart=False)
    for n in range(5):
        em.emit("click", request_id=f"first{n}")
    assert em.flush_once()
    assert sorted(_request_ids(stream)) == [f"first{n}" for n in range(5)]
    assert em.backlog() == 3  # the next round's
    assert em.flush_once() and em.backlog() == 3 and len(_request_ids(stream)) == 8
    client = em._async_client()
    assert await em._flush_once_async(client) and em.backlog() == 3 and len(_request_ids(stream)) == 11
    await client.aclose()
    em._aredis = None
    em.close(flush=False)


async def test_loop_flusher_keeps_events_while_redis_is_down(private_redis):
    stream = "analytics:events"
    em = emitter_mod.Emitter(redis_url=f"redis://127.0.0.1:{private_redis.port}/0", stream=stream, interval=0.02)
    em.run_in_loop()
    private_redis.stop()
    errors = _metric("analytics_flush_errors_total")
    for n in range(500):
        em.emit("win", request_id=f"down{n}")
    await async_wait_until(lambda: _metric("analytics_flush_errors_total") >= errors + 2, timeout=5,
                           message="two failed flushes")
    assert em.backlog() == 500  # kept, not lost
    await asyncio.to_thread(private_redis.start)
    await async_wait_until(lambda: em.backlog() == 0, timeout=10, interval=0.02, message="the backlog flushed")
    rows = _rows(redis.Redis(port=private_redis.port), stream)
    assert sorted(row[events.COLUMNS.index("request_id")] for row in rows) == sorted(f"down{n}" for n in range(500))
    assert await em.stop_in_loop()
    em.close()


def test_forked_child_gets_a_fresh_buffer_and_thread(stream):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    for n in range(10):
        em.emit("click", request_id=f"parent{n}")
    pid = os.fork()
    if pid == 0:  # child: the parent's 10 buffered events are the parent's to send
        code = 1
        try:
            if em.backlog() == 0 and not em._started:
                for n in range(5):
                    em.emit("click", request_id=f"child{n}")
                code = 0 if em.stop(flush=True) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert em.flush()
    request_ids = sorted(row[events.COLUMNS.index("request_id")] for row in _rows(redis_store.client(), stream))
    assert request_ids == sorted([f"parent{n}" for n in range(10)] + [f"child{n}" for n in range(5)])


def test_events_are_flushed_at_interpreter_exit(stream):
    code = (
        "from apps.analytics.emitter import emit\n"
        "for n in range(1234): emit('email_open', activation_id=str(n), channel='email')\n"
    )
    env = {**os.environ, "ANALYTICS_STREAM": stream, "ANALYTICS_FLUSH_INTERVAL_MS": "60000"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert len(_rows(redis_store.client(), stream)) == 1234
