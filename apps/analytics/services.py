"""Writes on the analytics store: retention (dropping whole monthly partitions).

ClickHouse 18.16 has no TTL, so retention is a daily beat task: every partition of
``analytics_events`` (``PARTITION BY toYYYYMM(timestamp)``) whose month ended before the cutoff
(now − ``ANALYTICS_RETENTION_DAYS``, default 90) is dropped. A partition that still holds any event
newer than the cutoff is kept whole, so data is kept at least the configured number of days.

On a cluster (``CLICKHOUSE_CLUSTER``) the partitions live in ``<table>_local`` on every shard: they are
listed on, and dropped from, every host of the cluster (a ``Distributed`` table has no partitions).
"""
from __future__ import annotations

import datetime as dt
import re

import structlog
from django.conf import settings
from prometheus_client import Counter

from apps.analytics.clickhouse_cluster import LOCAL_SUFFIX
from apps.core import clickhouse as ch

log = structlog.get_logger(__name__)

PARTITIONS_DROPPED = Counter("analytics_partitions_dropped_total", "Monthly partitions dropped by retention")

_MONTH = re.compile(r"^(\d{4})(\d{2})$")


def retention_days() -> int:
    return settings.ANALYTICS_RETENTION_DAYS


def _month_end(partition: str) -> dt.datetime | None:
    """First moment after the month a ``toYYYYMM`` partition holds (None if not such a partition)."""
    match = _MONTH.match(partition.strip("'"))
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.timezone.utc)


def _storage() -> tuple[str, list[tuple[str, int] | None]]:
    """The suffix of the tables holding the parts, and the hosts holding them (None: CLICKHOUSE_URL)."""
    if not ch.cluster():
        return "", [None]
    return LOCAL_SUFFIX, list(ch.hosts())


def partitions_list(*, table: str = "analytics_events") -> list[str]:
    """Active partitions of ``table`` in the configured database (``system.parts.partition``), on every
    shard of a cluster."""
    suffix, hosts = _storage()
    found: set[str] = set()
    for host in hosts:
        rows = ch.execute(
            "SELECT DISTINCT partition FROM system.parts WHERE database = %(db)s AND table = %(table)s AND active",
            {"db": ch.database(), "table": table + suffix},
            kind="ddl", host=host,
        )
        found.update(row[0] for row in rows)
    return sorted(found)


def partitions_drop_expired(*, days: int | None = None, table: str = "analytics_events", now: dt.datetime | None = None) -> list[str]:
    """Drop every monthly partition entirely older than ``now - days``; returns the ones dropped."""
    days = retention_days() if days is None else days
    if days <= 0:
        raise ValueError("retention days must be positive")
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=days)
    dropped = []
    for partition in partitions_list(table=table):
        month_end = _month_end(partition)
        if month_end is None or month_end > cutoff:
            continue
        suffix, hosts = _storage()
        for host in hosts:
            ch.execute(f"ALTER TABLE {table}{suffix} DROP PARTITION {partition.strip(chr(39))}", kind="ddl", host=host)
        PARTITIONS_DROPPED.inc()
        log.info("analytics_partition_dropped", table=table, partition=partition, cutoff=cutoff.isoformat())
        dropped.append(partition)
    return dropped
