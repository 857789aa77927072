"""Applies the versioned ClickHouse migrations in ``apps/analytics/clickhouse_migrations``.

Used by ``manage.py migrate_clickhouse`` (``make migrate`` / ``make run``) and by the tests'
session fixture (:func:`apps.analytics.testing.clickhouse_schema`), so tests build their schema with
the same code as production. Idempotent: applied names are recorded in ``schema_migrations`` and
every statement is itself ``IF NOT EXISTS``.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

import structlog

from apps.analytics import clickhouse_migrations
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


def migrate() -> list[str]:
    """Create the database and apply pending migrations; returns the names applied now."""
    ch.ensure_database()
    ch.execute(MIGRATIONS_TABLE_SQL, kind="ddl")
    done = applied()
    newly: list[str] = []
    for name, module in available():
        if name in done:
            continue
        for statement in module.OPERATIONS:
            ch.execute(statement, kind="ddl")
        ch.execute("INSERT INTO schema_migrations (name) VALUES", [(name,)], kind="ddl")
        log.info("clickhouse_migration_applied", name=name, database=ch.database())
        newly.append(name)
    return newly
