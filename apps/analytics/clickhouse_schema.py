"""Applies the versioned ClickHouse migrations in ``apps/analytics/clickhouse_migrations``.

Used by ``manage.py migrate_clickhouse`` (``make migrate`` / ``make run``) and by the tests'
session fixture (:func:`apps.analytics.testing.clickhouse_schema`), so tests build their schema with
the same code as production. Idempotent: applied names are recorded in ``schema_migrations`` and
every statement is itself ``IF NOT EXISTS``.

With ``CLICKHOUSE_CLUSTER`` set every table statement is rewritten by
:mod:`apps.analytics.clickhouse_cluster` (local tables on every shard, then the ``Distributed`` ones) and
applied either once with ``ON CLUSTER`` (``CLICKHOUSE_CLUSTER_DDL=on_cluster``, needs Keeper) or by this
runner on every host of ``system.clusters`` itself (``per_shard``, the default). ``schema_migrations``
stays a plain table on the node of ``CLICKHOUSE_URL``, which records what the whole cluster has.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import structlog
from django.conf import settings

from apps.analytics import clickhouse_cluster, clickhouse_migrations
from apps.core import clickhouse as ch

log = structlog.get_logger(__name__)

_NAME = re.compile(r"^\d{4}_\w+$")

MIGRATIONS_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name String,
    applied_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
ORDER BY name
"""


def available() -> list[tuple[str, ModuleType]]:
    """Every migration module, in name order."""
    names = sorted(
        info.name for info in pkgutil.iter_modules(clickhouse_migrations.__path__) if _NAME.match(info.name)
    )
    return [(name, importlib.import_module(f"{clickhouse_migrations.__name__}.{name}")) for name in names]


def applied() -> set[str]:
    """Names recorded in ``schema_migrations`` (the table must exist)."""
    return {row[0] for row in ch.execute("SELECT DISTINCT name FROM schema_migrations")}


def _target() -> clickhouse_cluster.Target:
    return clickhouse_cluster.Target(
        cluster=ch.cluster(), database=ch.database(),
        on_cluster=settings.CLICKHOUSE_CLUSTER_DDL == "on_cluster", replicated=settings.CLICKHOUSE_REPLICATED,
    )


def _apply_clustered(module: ModuleType, target: clickhouse_cluster.Target, hosts: list[tuple[str, int]]) -> None:
    """One migration on the cluster: every local-table statement before any distributed one."""
    plans = [clickhouse_cluster.plan(statement, target, sharding_keys=getattr(module, "SHARDING_KEYS", None))
             for statement in module.OPERATIONS]  # all rewritten first: one not understood applies nothing
    for phase in ("local", "distributed"):
        for statement in (sql for p in plans for sql in getattr(p, phase)):
            if target.on_cluster:
                ch.execute(statement, kind="ddl")
            else:
                for host in hosts:
                    ch.execute(statement, kind="ddl", host=host)


def migrate() -> list[str]:
    """Create the database and apply pending migrations; returns the names applied now."""
    clustered = bool(ch.cluster())
    target = _target()
    hosts = ch.hosts() if clustered else []
    if clustered and target.on_cluster:
        ch.execute(f"CREATE DATABASE IF NOT EXISTS {target.database} ON CLUSTER {target.cluster}",
                   with_database=False, kind="ddl")
    elif clustered:
        for host in hosts:
            ch.ensure_database(host=host)
    ch.ensure_database()
    ch.execute(MIGRATIONS_TABLE_SQL, kind="ddl")
    done = applied()
    newly: list[str] = []
    for name, module in available():
        if name in done:
            continue
        if clustered:
            _apply_clustered(module, target, hosts)
        else:
            for statement in module.OPERATIONS:
                ch.execute(statement, kind="ddl")
        ch.execute("INSERT INTO schema_migrations (name) VALUES", [(name,)], kind="ddl")
        log.info("clickhouse_migration_applied", name=name, database=ch.database(), cluster=ch.cluster() or None,
                 hosts=len(hosts) or 1)
        newly.append(name)
    return newly
