"""ClickHouse migrations (idempotent, recorded) and retention (drops only whole old partitions)."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.core.management import call_command

from apps.analytics import bid_inputs, clickhouse_schema, events, rl_decisions, services
from apps.core import clickhouse as ch

UTC = dt.timezone.utc


@pytest.fixture
def scratch_database(settings):
    """A brand-new ClickHouse database for this test (dropped afterwards)."""
    name = f"{ch.database()}_mig_{uuid.uuid4().hex[:8]}"
    base = ch.url().rsplit("/", 1)[0]
    settings.CLICKHOUSE_URL = f"{base}/{name}"
    yield name
    ch.execute(f"DROP DATABASE IF EXISTS {name}", with_database=False, kind="ddl")


def test_migrations_create_the_database_and_are_idempotent(scratch_database, capsys):
    assert clickhouse_schema.migrate() == ["0001_analytics_events", "0002_bid_inputs", "0003_rl_decisions"]
    assert clickhouse_schema.migrate() == []
    call_command("migrate_clickhouse", "--list")
    out = capsys.readouterr().out
    assert "[X] 0001_analytics_events" in out and "[X] 0002_bid_inputs" in out and "no migrations to apply" in out
    assert "[X] 0003_rl_decisions" in out
    recorded = ch.execute("SELECT name, count() FROM schema_migrations GROUP BY name ORDER BY name")
    assert recorded == [("0001_analytics_events", 1), ("0002_bid_inputs", 1), ("0003_rl_decisions", 1)]
    tables = {row[0] for row in ch.execute("SHOW TABLES")}
    assert {"analytics_events", "bid_inputs", "rl_decisions", "schema_migrations"} <= tables
    columns = [row[0] for row in ch.execute("DESCRIBE TABLE analytics_events")]
    assert columns[: len(events.COLUMNS)] == list(events.COLUMNS)
    columns = [row[0] for row in ch.execute("DESCRIBE TABLE bid_inputs")]
    assert columns[: len(bid_inputs.COLUMNS)] == list(bid_inputs.COLUMNS)
    columns = [row[0] for row in ch.execute("DESCRIBE TABLE rl_decisions")]
    assert columns[: len(rl_decisions.COLUMNS)] == list(rl_decisions.COLUMNS)


def test_a_half_applied_migration_is_completed(scratch_database):
    clickhouse_schema.migrate()
    ch.execute("DROP TABLE schema_migrations", kind="ddl")  # forget it ever ran; the table stays
    names = ["0001_analytics_events", "0002_bid_inputs", "0003_rl_decisions"]
    assert clickhouse_schema.migrate() == names  # IF NOT EXISTS: no error
    assert clickhouse_schema.applied() == set(names)


@pytest.fixture
def retention_table(clickhouse_db):
    name = f"analytics_events_rt_{uuid.uuid4().hex[:8]}"
    ch.execute(f"CREATE TABLE {name} AS analytics_events", kind="ddl")
    yield name
    ch.execute(f"DROP TABLE IF EXISTS {name}", kind="ddl")


def _row(ts: dt.datetime) -> tuple:
    us = int(ts.timestamp() * 1_000_000)
    return events.row_to_insert(events.to_row("win", uuid.uuid4().hex, us, {"campaign_id": "r"}))


def test_retention_drops_only_partitions_entirely_older_than_the_cutoff(retention_table):
    now = dt.datetime(2024, 6, 15, 12, 0, tzinfo=UTC)  # cutoff with 90 days: 2024-03-17 12:00
    stamps = [
        dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),  # Dec: gone
        dt.datetime(2024, 1, 10, tzinfo=UTC),               # Jan: gone
        dt.datetime(2024, 2, 29, 23, 0, tzinfo=UTC),        # Feb: ended before the cutoff, gone
        dt.datetime(2024, 3, 1, tzinfo=UTC),                # Mar: partly newer than the cutoff, kept
        dt.datetime(2024, 3, 31, tzinfo=UTC),
        dt.datetime(2024, 6, 15, tzinfo=UTC),               # Jun: kept
    ]
    ch.insert(retention_table, events.COLUMNS, [_row(ts) for ts in stamps])
    assert services.partitions_list(table=retention_table) == ["202312", "202401", "202402", "202403", "202406"]

    dropped = services.partitions_drop_expired(days=90, table=retention_table, now=now)
    assert dropped == ["202312", "202401", "202402"]
    left = ch.execute(f"SELECT timestamp FROM {retention_table} ORDER BY timestamp")
    assert [row[0].astimezone(UTC) for row in left] == stamps[3:]
    assert services.partitions_drop_expired(days=90, table=retention_table, now=now) == []


def test_retention_days_come_from_settings(retention_table, settings):
    ch.insert(retention_table, events.COLUMNS, [_row(dt.datetime(2024, 1, 5, tzinfo=UTC))])
    settings.ANALYTICS_RETENTION_DAYS = 400
    now = dt.datetime(2024, 6, 1, tzinfo=UTC)
    assert services.partitions_drop_expired(table=retention_table, now=now) == []
    settings.ANALYTICS_RETENTION_DAYS = 30
    assert services.partitions_drop_expired(table=retention_table, now=now) == ["202401"]
    with pytest.raises(ValueError):
        services.partitions_drop_expired(days=0, table=retention_table)
