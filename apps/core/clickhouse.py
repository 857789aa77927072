"""The one gateway to ClickHouse (PostHog's ``sync_execute`` pattern).

Every ClickHouse query and insert goes through :func:`execute` / :func:`insert`, which add the
timeouts, a per-thread client, metrics and the database named in ``CLICKHOUSE_URL``. SQL must run on
Debian's ClickHouse 18.16 and on current releases: ``DateTime`` not ``DateTime64``, no TTL, no window
functions, no CTEs, client-side ``%(name)s`` parameters only.

With ``CLICKHOUSE_CLUSTER`` set the node of ``CLICKHOUSE_URL`` is one node of that cluster: tables keep
their names (they are ``Distributed`` tables over ``<name>_local`` on every shard), inserts are
synchronous (``insert_distributed_sync``: an insert returns once every shard has its rows, so the
stream consumer acknowledges only what is stored), and :func:`hosts` / :func:`execute_on` reach every
shard's server for the DDL and retention that must run on the local tables.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors
from django.conf import settings
from prometheus_client import Counter, Histogram

QUERY_SECONDS = Histogram("clickhouse_query_seconds", "ClickHouse query time", ["kind"])
QUERY_ERRORS = Counter("clickhouse_query_errors_total", "ClickHouse queries that failed", ["kind"])

ClickHouseError = (ch_errors.Error, OSError, EOFError)

_local = threading.local()


def _parse(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    if parsed.scheme != "clickhouse":
        raise ValueError(f"CLICKHOUSE_URL must look like clickhouse://user@host:9000/db, got {url!r}")
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port or 9000,
        "user": parsed.username or "default",
        "password": parsed.password or "",
        "database": parsed.path.lstrip("/") or "default",
    }


def url() -> str:
    """``settings.CLICKHOUSE_URL``, read per call: a client is cached per URL (tests point it elsewhere)."""
    return settings.CLICKHOUSE_URL


def database() -> str:
    return _parse(url())["database"]


def cluster() -> str:
    """The ``remote_servers`` cluster the analytics tables are sharded over ('' for one node)."""
    return settings.CLICKHOUSE_CLUSTER


def _new_client(params: dict[str, Any]) -> Client:
    query_settings: dict[str, Any] = {"max_execution_time": int(settings.CLICKHOUSE_QUERY_TIMEOUT)}
    if cluster():
        query_settings["insert_distributed_sync"] = 1
    return Client(
        **params,
        connect_timeout=settings.CLICKHOUSE_CONNECT_TIMEOUT,
        send_receive_timeout=settings.CLICKHOUSE_QUERY_TIMEOUT,
        sync_request_timeout=5,
        settings=query_settings,
    )


def _client(*, with_database: bool = True, host: tuple[str, int] | None = None) -> Client:
    key = (url(), cluster(), with_database, host)
    cached = getattr(_local, "clients", {})
    client = cached.get(key)
    if client is None:
        params = _parse(url())
        if host is not None:
            params["host"], params["port"] = host
        if not with_database:
            params["database"] = "default"
        client = _new_client(params)
        cached[key] = client
        _local.clients = cached
    return client


def reset_connections() -> None:
    """Drop this thread's clients (after a fork, or when the server went away)."""
    for client in getattr(_local, "clients", {}).values():
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - best effort on a dead socket
            pass
    _local.clients = {}


def execute(sql: str, params: dict[str, Any] | None = None, *, kind: str = "query", with_database: bool = True,
            host: tuple[str, int] | None = None) -> list[tuple]:
    """Run one statement and return its rows (on ``host`` — ``(name, port)`` — instead of the node of
    ``CLICKHOUSE_URL`` when given). Raises one of ``ClickHouseError`` on failure."""
    started = time.perf_counter()
    try:
        return _client(with_database=with_database, host=host).execute(sql, params or {})
    except ClickHouseError:
        QUERY_ERRORS.labels(kind).inc()
        reset_connections()
        raise
    finally:
        QUERY_SECONDS.labels(kind).observe(time.perf_counter() - started)


def insert(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert rows (tuples in ``columns`` order) in one native-protocol INSERT; returns the count."""
    rows = list(rows)
    if not rows:
        return 0
    cols = ", ".join(columns)
    started = time.perf_counter()
    try:
        _client().execute(f"INSERT INTO {table} ({cols}) VALUES", rows)
    except ClickHouseError:
        QUERY_ERRORS.labels("insert").inc()
        reset_connections()
        raise
    finally:
        QUERY_SECONDS.labels("insert").observe(time.perf_counter() - started)
    return len(rows)


def ensure_database(*, host: tuple[str, int] | None = None) -> None:
    execute(f"CREATE DATABASE IF NOT EXISTS {database()}", with_database=False, kind="ddl", host=host)


def hosts() -> list[tuple[str, int]]:
    """Every server (each replica of each shard) of :func:`cluster`, as ``(host, native port)``, read
    from ``system.clusters`` on the node of ``CLICKHOUSE_URL``. Raises ``LookupError`` if that node
    does not know the cluster (a typo in ``CLICKHOUSE_CLUSTER`` must not silently mean one node)."""
    rows = execute(
        "SELECT host_name, port FROM system.clusters WHERE cluster = %(c)s ORDER BY shard_num, replica_num",
        {"c": cluster()}, kind="ddl", with_database=False,
    )
    if not rows:
        raise LookupError(f"ClickHouse at {url()} has no cluster {cluster()!r} in remote_servers (CLICKHOUSE_CLUSTER)")
    return [(str(name), int(port)) for name, port in rows]


def ping() -> None:
    execute("SELECT 1", kind="ping", with_database=False)
