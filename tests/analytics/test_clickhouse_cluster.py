"""Sharded analytics: the migrations on a cluster of two real ClickHouse 18.16 shards (no Keeper, so the
runner's per-shard DDL), events through the real emitter → Redis stream → consumer path spread over
both shards, and the reports reading the same figures as on one node."""
from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest
from clickhouse_driver import errors as ch_errors
from django.core.management import CommandError, call_command

from apps.analytics import clickhouse_cluster, clickhouse_schema, selectors, services, testing
from apps.analytics import emitter as emitter_mod
from apps.core import clickhouse as ch
from apps.core import redis as redis_store
from tests.support.clickhouse_cluster import CLUSTER, two_shard_cluster

UTC = dt.timezone.utc
DB = "ce_cluster_test"
TABLES = ("analytics_events", "bid_inputs", "rl_decisions")


@pytest.fixture(scope="module")
def shards():
    with two_shard_cluster() as started:
        yield started


@pytest.fixture
def one_node_url(settings):
    """The one-node test database (before ``on_cluster`` points the settings at the cluster)."""
    return settings.CLICKHOUSE_URL


@pytest.fixture
def on_cluster(shards, settings):
    """Settings pointing at shard 1 as a node of the two-shard cluster, migrations applied."""
    settings.CLICKHOUSE_URL = shards[0].url(DB)
    settings.CLICKHOUSE_CLUSTER = CLUSTER
    settings.CLICKHOUSE_CLUSTER_DDL = "per_shard"
    settings.CLICKHOUSE_REPLICATED = False
    ch.reset_connections()
    testing.clickhouse_schema()
    yield shards
    ch.reset_connections()


def _tables(shard) -> dict[str, str]:
    return dict(shard.execute("SELECT name, engine FROM system.tables WHERE database = %(db)s", {"db": DB}))


def test_migrations_create_local_and_distributed_tables_on_every_shard(on_cluster):
    for shard in on_cluster:
        tables = _tables(shard)
        for table in TABLES:
            assert tables[f"{table}_local"] == "ReplacingMergeTree", (shard.number, table)
            assert tables[table] == "Distributed", (shard.number, table)
        create = shard.execute(f"SHOW CREATE TABLE {DB}.analytics_events")[0][0]
        assert f"Distributed({CLUSTER}, {DB}, analytics_events_local, cityHash64(event_id))" in create.replace("'", "")
    assert "schema_migrations" in _tables(on_cluster[0]) and "schema_migrations" not in _tables(on_cluster[1])
    assert clickhouse_schema.migrate() == []  # applied once, recorded on the node of CLICKHOUSE_URL
    assert clickhouse_schema.applied() == {name for name, _ in clickhouse_schema.available()}


def _traffic(campaign: str, start: dt.datetime) -> list[tuple[str, str, int, dict]]:
    """(type, event_id, timestamp_us, fields): bids, no-bids, wins and clicks over two days."""
    rng = random.Random(20)
    out = []
    for n in range(1200):
        ts = start + dt.timedelta(seconds=rng.randrange(0, 2 * 86400), microseconds=rng.randrange(10**6))
        us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
        kind = rng.choice(["bid_response"] * 5 + ["no_bid", "win", "win", "click"])
        fields = {"campaign_id": campaign, "request_id": f"r{n}", "latency_us": rng.randrange(100, 9000)}
        if kind == "win":
            fields["win_price"] = round(rng.uniform(0.5, 4.0), 3)
        out.append((kind, uuid.uuid4().hex, us, fields))
    return out


def _emit_and_consume(traffic, stream: str) -> int:
    """The production path: Emitter → Redis stream → pipeline.Writer → ClickHouse (the table name
    the code always uses). The first 200 events are emitted twice (at-least-once delivery)."""
    em = emitter_mod.Emitter(stream=stream, autostart=False, capacity=10_000)
    for kind, event_id, us, fields in traffic + traffic[:200]:
        em.emit_with_id(kind, event_id=event_id, timestamp_us=us, **fields)
    assert em.flush()
    return testing.consume_all(stream=stream)


def _report(campaign: str, start: dt.datetime) -> dict:
    end = start + dt.timedelta(days=2)
    return {g: selectors.campaign_report(campaign_id=campaign, start=start, end=end, granularity=g)
            for g in ("hour", "day")}


def test_events_spread_over_both_shards_and_reports_match_one_node(one_node_url, on_cluster, settings, stream,
                                                                   campaign_tag):
    start = dt.datetime(2031, random.randrange(1, 13), 3, tzinfo=UTC)
    traffic = _traffic(campaign_tag, start)
    assert _emit_and_consume(traffic, stream) == 1400

    per_shard = [shard.execute(f"SELECT count() FROM {DB}.analytics_events_local FINAL WHERE campaign_id = %(c)s",
                               {"c": campaign_tag})[0][0] for shard in on_cluster]
    assert sum(per_shard) == 1200 and min(per_shard) > 400, per_shard  # cityHash64(event_id): about half each
    clustered = _report(campaign_tag, start)
    assert clustered["day"]["totals"]["bids"] == sum(1 for t in traffic if t[0] == "bid_response")
    assert len(selectors.event_list(campaign_id=campaign_tag)) == 1200

    # The same events, emitted the same way, into the one-node test database.
    settings.CLICKHOUSE_URL, settings.CLICKHOUSE_CLUSTER = one_node_url, ""
    ch.reset_connections()
    testing.clickhouse_schema()
    try:
        assert _emit_and_consume(traffic, f"{stream}:one-node") == 1400
        assert _report(campaign_tag, start) == clustered
    finally:
        ch.execute(f"ALTER TABLE analytics_events DROP PARTITION {start:%Y%m}", kind="ddl")
        redis_store.client().delete(f"{stream}:one-node", f"{stream}:one-node:dead", f"{stream}:one-node:writer-lock")


def _local_count(shard, campaign: str) -> int:
    return shard.execute(f"SELECT count() FROM {DB}.analytics_events_local WHERE campaign_id = %(c)s", {"c": campaign})[0][0]


def test_retention_lists_and_drops_partitions_on_every_shard(on_cluster, stream, campaign_tag):
    start = dt.datetime(1981, random.randrange(1, 13), 5, tzinfo=UTC)
    assert _emit_and_consume(_traffic(campaign_tag, start)[:300], stream) == 500
    month = f"{start:%Y%m}"
    assert month in services.partitions_list()
    for shard in on_cluster:
        assert _local_count(shard, campaign_tag) > 0
    assert month in services.partitions_drop_expired(days=90)
    assert month not in services.partitions_list()
    for shard in on_cluster:
        assert _local_count(shard, campaign_tag) == 0


def test_a_cluster_the_node_does_not_know_is_refused(on_cluster, settings):
    settings.CLICKHOUSE_CLUSTER = "no_such_cluster"
    with pytest.raises(CommandError, match="no cluster 'no_such_cluster'"):
        call_command("migrate_clickhouse")


def test_on_cluster_and_replicated_ddl_parse_on_18_16(on_cluster):
    """Without Keeper 18.16 cannot run them, but it must get past parsing: ``ON CLUSTER`` fails with
    code 49 (no DDL worker) and a replicated table with code 225 (no ZooKeeper), never 62 (syntax)."""
    module = dict(clickhouse_schema.available())["0001_analytics_events"]
    node = ch.hosts()[0]
    for target, code in ((clickhouse_cluster.Target(CLUSTER, DB, on_cluster=True, replicated=True), 49),
                         (clickhouse_cluster.Target(CLUSTER, DB, replicated=True), 225)):
        plan = clickhouse_cluster.plan(module.OPERATIONS[0].replace("analytics_events", "probe_events"), target)
        statement = plan.local[0]
        assert ("ON CLUSTER" in statement) is target.on_cluster
        assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/" in statement
        with pytest.raises(ch_errors.ServerException) as refused:
            ch.execute(statement, kind="ddl", host=node)
        assert refused.value.code == code, refused.value.message[:200]
    on_cluster_distributed = clickhouse_cluster.plan(
        module.OPERATIONS[0], clickhouse_cluster.Target(CLUSTER, DB, on_cluster=True)).distributed[0]
    with pytest.raises(ch_errors.ServerException) as refused:
        ch.execute(on_cluster_distributed.replace("IF NOT EXISTS", ""), kind="ddl", host=node)
    assert refused.value.code == 49


def test_alters_and_unknown_statements():
    target = clickhouse_cluster.Target(CLUSTER, DB)
    column = clickhouse_cluster.plan("ALTER TABLE bid_inputs ADD COLUMN x String DEFAULT ''", target)
    assert column.local == [f"ALTER TABLE {DB}.bid_inputs_local ADD COLUMN x String DEFAULT ''"]
    assert column.distributed == [f"ALTER TABLE {DB}.bid_inputs ADD COLUMN x String DEFAULT ''"]
    drop = clickhouse_cluster.plan("ALTER TABLE bid_inputs DROP PARTITION 202001", target)
    assert drop.distributed == [] and drop.local[0].startswith(f"ALTER TABLE {DB}.bid_inputs_local ")
    with pytest.raises(clickhouse_cluster.UnsupportedStatement):
        clickhouse_cluster.plan("CREATE VIEW v AS SELECT 1", target)
    with pytest.raises(clickhouse_cluster.UnsupportedStatement):
        clickhouse_cluster.plan("CREATE TABLE IF NOT EXISTS m (a UInt8) ENGINE = Memory", target)


def test_on_cluster_mode_sends_on_cluster_ddl_and_without_keeper_says_so(on_cluster, settings):
    """``CLICKHOUSE_CLUSTER_DDL=on_cluster`` sends the DDL once with ON CLUSTER; this cluster has no
    Keeper, so the server refuses it and the command names the cause instead of half-applying."""
    settings.CLICKHOUSE_URL = on_cluster[0].url("ce_cluster_on_cluster")
    settings.CLICKHOUSE_CLUSTER_DDL = "on_cluster"
    ch.reset_connections()
    with pytest.raises(CommandError, match="DDL background thread is not initialized"):
        call_command("migrate_clickhouse")
    for shard in on_cluster:
        assert shard.execute("SELECT count() FROM system.databases WHERE name = 'ce_cluster_on_cluster'") == [(0,)]
