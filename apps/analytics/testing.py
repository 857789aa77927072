"""Test helpers other slices can use (no pytest import here).

``clickhouse_schema()`` applies the real ClickHouse migrations to the database named in
``CLICKHOUSE_URL`` (scripts/test.sh points it at a test database), once per process. Use it from a
session fixture::

    @pytest.fixture(scope="session")
    def clickhouse_db():
        return apps.analytics.testing.clickhouse_schema()

``consume_all(stream=...)`` drains a stream into ClickHouse with the production writer, and
``flush_and_consume()`` does the whole path for the process-wide emitter: after it returns, every
event emitted so far is in ``analytics_events``.
"""
from __future__ import annotations

from apps.analytics import clickhouse_schema as _schema
from apps.analytics import emitter as _emitter
from apps.analytics import pipeline as _pipeline
from apps.core import clickhouse as _ch

_migrated: set[str] = set()


def clickhouse_schema() -> str:
    """Create the test ClickHouse database and apply every migration (idempotent, cached per
    ClickHouse URL); returns the database name."""
    key = _ch.url()
    if key not in _migrated:
        _schema.migrate()
        _migrated.add(key)
    return _ch.database()


def consume_all(*, stream: str | None = None, claim_idle_seconds: float = 60) -> int:
    """Write everything queued in ``stream`` (default ANALYTICS_STREAM) to ClickHouse; returns events
    written. Raises if ClickHouse refuses the insert."""
    writer = _pipeline.Writer(stream=stream, consumer="test-consumer", claim_idle_seconds=claim_idle_seconds)
    total = 0
    while True:
        batch = writer.write_batch()
        if not batch.entries:
            return total
        total += batch.events


def flush_and_consume() -> int:
    """Flush the process-wide emitter to its stream, then write the stream to ClickHouse."""
    default = _emitter.default_emitter()
    if not default.flush(timeout=10):
        raise RuntimeError("analytics emitter could not flush to Redis")
    return consume_all(stream=default.stream)
