"""Emit → Redis stream → consumer → ClickHouse, against the real Redis and ClickHouse."""
from __future__ import annotations

import datetime as dt
import os
import uuid

import pytest
from prometheus_client import REGISTRY

from apps.analytics import emitter as emitter_mod
from apps.analytics import events, pipeline, selectors, tasks, testing
from apps.core import clickhouse as ch
from apps.core import redis as redis_store
from config import env
from tests.support.ports import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.usefixtures("clickhouse_db")


def _metric(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def _counts(campaign: str) -> tuple[int, int, int]:
    """(rows as stored, rows the reports see, distinct event ids) for one campaign."""
    raw = ch.execute("SELECT count() FROM analytics_events WHERE campaign_id = %(c)s", {"c": campaign})[0][0]
    final, uniq = ch.execute(
        "SELECT count(), uniqExact(event_id) FROM analytics_events FINAL WHERE campaign_id = %(c)s", {"c": campaign}
    )[0]
    return raw, final, uniq


def _full_fields(event_type: str, campaign: str, n: int) -> dict:
    return {
        "request_id": f"req-{event_type}-{n}",
        "user_id": f"user-{n}",
        "campaign_id": campaign,
        "offer_id": 9000 + n,  # an int id is stored as its string
        "bid_id": uuid.uuid4().hex,
        "imp_id": f"imp-{n}",
        "price": 1.25 + n,
        "win_price": 0.875 + n,
        "latency_us": 1234 + n,
        "reason": "frequency_capped",
        "channel": "email",
        "activation_id": f"act-{n}",
        "stars": -15 + n,
        "amount": 12.5 + n,
        "platform": "ios",
        "country": "USA",
        "device_type": "mobile",
        "tier": "gold",
        "extra": {"sample_rate": 0.01, "nested": {"k": [1, 2, "x"]}, "unicode": "é✓"},
    }


def test_every_event_type_round_trips_with_every_field(stream, campaign_tag):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    before = dt.datetime.now(dt.timezone.utc)
    sent = {}
    for n, event_type in enumerate(sorted(events.EVENT_TYPES)):
        fields = _full_fields(event_type, campaign_tag, n)
        sent[fields["request_id"]] = (event_type, fields)
        em.emit(event_type, **fields)
    after = dt.datetime.now(dt.timezone.utc)
    assert em.flush()
    assert testing.consume_all(stream=stream) == len(events.EVENT_TYPES)

    got = selectors.event_list(campaign_id=campaign_tag)
    assert len(got) == len(events.EVENT_TYPES)
    for event in got:
        event_type, fields = sent[event.request_id]
        assert event.event_type == event_type
        assert uuid.UUID(event.event_id).version == 4 and len(event.event_id) == 32
        assert before <= event.timestamp <= after and event.timestamp.tzinfo is not None
        for name, value in fields.items():
            expected = str(value) if name == "offer_id" else value
            assert getattr(event, name) == expected, name


def test_absent_fields_read_back_as_none(stream, campaign_tag):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    em.emit("click", campaign_id=campaign_tag)
    em.flush()
    testing.consume_all(stream=stream)
    (event,) = selectors.event_list(campaign_id=campaign_tag)
    assert event.event_type == "click"
    for name in events.FIELDS:
        if name != "campaign_id":
            assert getattr(event, name) is None, name


def test_default_emit_and_the_celery_task_deliver(campaign_tag):
    """The module-level ``emit`` and the beat task (run in-process) carry events to ClickHouse."""
    for n in range(25):
        emitter_mod.emit("win", campaign_id=campaign_tag, request_id=f"r{n}", win_price=2.0)
    assert emitter_mod.default_emitter().flush()
    redis_store.client().delete(f"{emitter_mod.stream_name()}:writer-lock")
    tasks.consume_events.apply().get()
    assert _counts(campaign_tag) == (25, 25, 25)


def test_100k_events_arrive_exactly_once(stream, campaign_tag):
    em = emitter_mod.Emitter(stream=stream, autostart=False, capacity=200_000)
    for n in range(100_000):  # ~2.5 µs per emit: bench/timings.py
        em.emit("bid_response", campaign_id=campaign_tag, request_id=f"r{n}", price=1.5, latency_us=n % 5000)
    assert em.flush(timeout=30)
    result = pipeline.consume(stream=stream, max_seconds=60)
    assert result.error is None and result.events == 100_000
    # every batch held at most 10,000 events
    assert all(batch.events <= 10_000 for batch in result.details) and result.batches >= 10
    assert _counts(campaign_tag) == (100_000, 100_000, 100_000)
    client = redis_store.client()
    assert client.xlen(stream) == 0
    assert client.xpending(stream, pipeline.GROUP)["pending"] == 0


def test_clickhouse_outage_loses_nothing_and_duplicates_nothing(stream, campaign_tag, settings):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    client = redis_store.client()
    for n in range(3000):
        em.emit("win", campaign_id=campaign_tag, request_id=f"a{n}", win_price=1.0)
    assert em.flush()
    entries = client.xlen(stream)
    good_url = ch.url()
    settings.CLICKHOUSE_URL = f"clickhouse://default@127.0.0.1:{free_port()}/{ch.database()}"
    errors_before = _metric("analytics_insert_errors_total")

    writer = pipeline.Writer(stream=stream, consumer="outage-consumer")
    result = writer.run(max_seconds=5)
    assert result.error and result.events == 0
    # events keep flowing while ClickHouse is away
    for n in range(2000):
        em.emit("win", campaign_id=campaign_tag, request_id=f"b{n}", win_price=1.0)
    assert em.flush()
    assert writer.run(max_seconds=5).events == 0
    assert _metric("analytics_insert_errors_total") >= errors_before + 2
    # nothing acknowledged, nothing deleted
    assert client.xlen(stream) == entries + 20
    assert client.xpending(stream, pipeline.GROUP)["pending"] == entries  # the batch it read, still unacked

    settings.CLICKHOUSE_URL = good_url
    result = writer.run(max_seconds=30)
    assert result.error is None and result.events == 5000
    assert _counts(campaign_tag) == (5000, 5000, 5000)
    assert client.xlen(stream) == 0


def test_crashed_consumer_pending_events_are_claimed_by_another(stream, campaign_tag):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    for n in range(1500):
        em.emit("click", campaign_id=campaign_tag, request_id=f"c{n}")
    assert em.flush()
    client = redis_store.client()
    crashed = pipeline.Writer(stream=stream, consumer="worker-that-dies", claim_idle_seconds=0.2, batch_events=1000)
    crashed.ensure_group()
    taken, source = crashed._read()  # delivered to it; it dies before inserting
    assert source == "new" and len(taken) == crashed.batch_entries
    survivor = pipeline.Writer(stream=stream, consumer="survivor", claim_idle_seconds=0.2)
    survivor.run()  # the rest of the stream; the dead worker's entries are not idle long enough yet
    assert _counts(campaign_tag)[2] == 500
    wait_until(lambda: len(client.xpending_range(stream, pipeline.GROUP, min="-", max="+", count=len(taken) + 1,
                                                 consumername="worker-that-dies", idle=200)) == len(taken),
               timeout=10, message="the dead worker's entries idle for the 0.2 s claim_idle_seconds")
    claimed_before = _metric("analytics_entries_claimed_total")
    result = survivor.run()
    assert result.claimed == len(taken) and result.events == 1000
    assert _metric("analytics_entries_claimed_total") == claimed_before + len(taken)
    assert _counts(campaign_tag) == (1500, 1500, 1500)
    consumers = {c["name"]: c["pending"] for c in client.xinfo_consumers(stream, pipeline.GROUP)}
    assert consumers == {b"worker-that-dies": 0, b"survivor": 0} or consumers == {"worker-that-dies": 0, "survivor": 0}


class _DiesBeforeAck(pipeline.Writer):
    def _ack(self, entry_ids):
        raise SystemExit("worker killed between the ClickHouse insert and XACK")


def test_reinserted_batch_is_counted_once(stream, campaign_tag):
    """Crash between insert and XACK: the batch is inserted twice, the reports still see it once."""
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    for n in range(800):
        em.emit("win", campaign_id=campaign_tag, request_id=f"d{n}", win_price=1000.0)
    assert em.flush()
    dying = _DiesBeforeAck(stream=stream, consumer="dies-before-ack")
    with pytest.raises(SystemExit):
        dying.write_batch()
    survivor = pipeline.Writer(stream=stream, consumer="survivor", claim_idle_seconds=0)
    assert survivor.run().events == 800
    raw, final, uniq = _counts(campaign_tag)
    assert raw == 1600 and final == 800 and uniq == 800
    now = dt.datetime.now(dt.timezone.utc)
    report = selectors.campaign_report(
        campaign_id=campaign_tag, start=now - dt.timedelta(hours=2), end=now + dt.timedelta(hours=1), granularity="hour"
    )
    assert report["totals"]["wins"] == 800 and report["totals"]["spend"] == 800.0


def test_undecodable_entry_is_dead_lettered_not_blocking(stream, campaign_tag):
    client = redis_store.client()
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    em.emit("win", campaign_id=campaign_tag, request_id="before")
    em.flush()
    client.xadd(stream, {"d": b"\xc1not msgpack"})
    em.emit("win", campaign_id=campaign_tag, request_id="after")
    em.flush()
    result = pipeline.Writer(stream=stream).run()
    assert result.events == 2 and result.dead == 1
    assert client.xlen(f"{stream}:dead") == 1 and client.xlen(stream) == 0
    assert _counts(campaign_tag) == (2, 2, 2)


def test_invalid_values_are_refused_in_the_emitting_process(stream):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    before = _metric("analytics_events_dropped_total", {"reason": "invalid"})
    em.emit("win", win_price="not a number")
    em.emit("bid_response", latency_us=2**70)
    em.emit("click", campaign_id=1.5)
    em.emit("click", extra=["not", "a", "dict"])
    em.emit("click", campaign_id=7)
    assert em.flush()
    assert _metric("analytics_events_dropped_total", {"reason": "invalid"}) == before + 4
    assert redis_store.client().xlen(stream) == 1


def test_consume_lock_keeps_a_second_loop_out(stream):
    client = redis_store.client()
    client.set(f"{stream}:writer-lock", b"someone-else", px=5000)
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    em.emit("click", campaign_id="x")
    em.flush()
    assert pipeline.consume(stream=stream).events == 0
    assert client.xlen(stream) == 1


def test_gauges_report_queue_length_and_lag(stream):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    em.emit("click", campaign_id="x")
    em.flush()
    writer = pipeline.Writer(stream=stream)
    writer.ensure_group()
    observed = wait_until(lambda: (seen := writer.observe())["lag_seconds"] >= 0.04 and seen, timeout=10,
                          message="the lag of the waiting event growing past 40 ms")
    assert observed["length"] == 1
    assert _metric("analytics_stream_length") == 1


def test_idle_consumers_are_forgotten(stream):
    writer = pipeline.Writer(stream=stream, consumer="current")
    writer.ensure_group()
    client = redis_store.client()
    client.xgroup_createconsumer(stream, pipeline.GROUP, "old-worker-123")

    def idle_ms() -> int:
        return next(c["idle"] for c in client.xinfo_consumers(stream, pipeline.GROUP)
                    if c["name"] in (b"old-worker-123", "old-worker-123"))

    wait_until(lambda: idle_ms() >= 20, timeout=10, message="old-worker-123 idle for 20 ms")
    assert writer.forget_idle_consumers(idle_seconds=0.01) == ["old-worker-123"]


def test_events_wait_in_stream_until_a_group_exists():
    """Events queued before any consumer group existed are not skipped when the group is created."""
    name = f"analytics:test:{uuid.uuid4().hex[:12]}"
    client = redis_store.client()
    try:
        em = emitter_mod.Emitter(stream=name, autostart=False)
        em.emit("click", campaign_id="early")
        em.flush()
        writer = pipeline.Writer(stream=name)
        writer.ensure_group()
        entries, _ = writer._read()
        assert len(entries) == 1
    finally:
        client.delete(name)


def test_emitter_and_consumer_share_the_configured_stream(monkeypatch):
    # ANALYTICS_STREAM as config.env read it (the emitter runs where no Django settings are loaded).
    monkeypatch.setattr(env, "ANALYTICS_STREAM", "analytics:elsewhere")
    assert emitter_mod.Emitter(autostart=False).stream == "analytics:elsewhere"
    assert pipeline.Writer().stream == "analytics:elsewhere"
    monkeypatch.setattr(env, "ANALYTICS_STREAM", "")
    assert emitter_mod.Emitter(autostart=False).stream == "analytics:events"


def test_beat_schedule_has_the_analytics_entries():
    from config.celery import app

    entries = {entry["task"]: entry for entry in app.conf.beat_schedule.values()}
    assert entries["analytics.consume_events"]["schedule"] == 1.0
    assert entries["analytics.consume_events"]["options"]["expires"] <= 1.0
    assert "analytics.drop_expired_partitions" in entries
    assert os.environ.get("CLICKHOUSE_URL", "").endswith(ch.database())


def test_writer_recovers_when_the_stream_and_group_are_deleted(stream, campaign_tag):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    writer = pipeline.Writer(stream=stream)
    writer.ensure_group()
    redis_store.client().delete(stream)  # e.g. FLUSHDB on the Redis database
    em.emit("click", campaign_id=campaign_tag)
    em.flush()
    assert writer.run().events == 1
    assert _counts(campaign_tag) == (1, 1, 1)
