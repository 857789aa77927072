"""A single-node migration statement, rewritten for a sharded cluster (``CLICKHOUSE_CLUSTER``).

Migrations are written once, for one node (``CREATE TABLE IF NOT EXISTS analytics_events (...)
ENGINE = ReplacingMergeTree() ...``). On a cluster each table becomes:

* ``<name>_local`` on every shard: the same columns, sort key and partitions, with
  ``Replicated<engine>('/clickhouse/tables/{shard}/<db>/<name>_local', '{replica}', <args>)`` when
  ``CLICKHOUSE_REPLICATED`` is on;
* ``<name>`` on every shard: ``Distributed(<cluster>, <db>, <name>_local, <sharding key>)``, the table
  the code inserts into and reads from, unchanged. The sharding key is ``cityHash64(event_id)``
  unless the migration names another in ``SHARDING_KEYS``: every table's sort key ends in
  ``event_id``, so a re-inserted event lands on the shard holding its first copy and ``FINAL``
  (applied per shard) still sees it once.

``ALTER TABLE <name> ADD|DROP|MODIFY COLUMN`` goes to both tables; any other ``ALTER`` to the local
one only. Other statements are refused in cluster mode (a migration the rewrite does not understand
must not half-apply). SQL runs on ClickHouse 18.16 and on current releases.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

LOCAL_SUFFIX = "_local"
DEFAULT_SHARDING_KEY = "cityHash64(event_id)"

_CREATE = re.compile(r"^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\s*\(", re.IGNORECASE)
_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+(\w+)\s+", re.IGNORECASE)
_COLUMN_ALTER = re.compile(r"^\s*(ADD|DROP|MODIFY)\s+COLUMN\b", re.IGNORECASE)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)\s*\(([^)]*)\)", re.IGNORECASE)


class UnsupportedStatement(ValueError):
    """A migration statement the cluster rewrite does not know how to spread over shards."""


@dataclass
class Plan:
    """One statement's cluster form: run every ``local`` statement on every shard (or once with
    ``ON CLUSTER``) before any ``distributed`` one."""

    local: list[str] = field(default_factory=list)
    distributed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    cluster: str
    database: str
    on_cluster: bool = False
    replicated: bool = False

    def name(self, table: str) -> str:
        clause = f" ON CLUSTER {self.cluster}" if self.on_cluster else ""
        return f"{self.database}.{table}{clause}"


def _replicated_engine(match: re.Match, target: Target, local: str) -> str:
    engine, args = match.group(1), match.group(2).strip()
    path = f"'/clickhouse/tables/{{shard}}/{target.database}/{local}', '{{replica}}'"
    return f"ENGINE = Replicated{engine}({path}{', ' + args if args else ''})"


def plan(statement: str, target: Target, *, sharding_keys: dict[str, str] | None = None) -> Plan:
    """The cluster form of one single-node migration statement (see the module docstring)."""
    create = _CREATE.match(statement)
    if create:
        table = create.group(1)
        local = table + LOCAL_SUFFIX
        body = statement[create.end():]
        if not _ENGINE.search(body):
            raise UnsupportedStatement(f"CREATE TABLE {table}: only *MergeTree engines can be sharded")
        if target.replicated:
            body = _ENGINE.sub(lambda m: _replicated_engine(m, target, local), body, count=1)
        key = (sharding_keys or {}).get(table, DEFAULT_SHARDING_KEY)
        return Plan(
            local=[f"CREATE TABLE IF NOT EXISTS {target.name(local)} ({body}"],
            distributed=[
                f"CREATE TABLE IF NOT EXISTS {target.name(table)} AS {target.database}.{local} "
                f"ENGINE = Distributed({target.cluster}, {target.database}, {local}, {key})"
            ],
        )
    alter = _ALTER.match(statement)
    if alter:
        table, rest = alter.group(1), statement[alter.end():]
        result = Plan(local=[f"ALTER TABLE {target.name(table + LOCAL_SUFFIX)} {rest}"])
        if _COLUMN_ALTER.match(rest):
            result.distributed.append(f"ALTER TABLE {target.name(table)} {rest}")
        return result
    raise UnsupportedStatement(
        f"cannot apply to a cluster (only CREATE TABLE IF NOT EXISTS and ALTER TABLE are rewritten): {statement.strip()[:80]!r}"
    )
