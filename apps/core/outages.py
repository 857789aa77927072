"""A store that is down is a 503 for the caller, never a 500.

While Postgres, Redis or ClickHouse restarts, a request can fail on a lost connection, a refused
connect, or (Postgres) a pool that found no connection within ``DATABASE_POOL_TIMEOUT``. None of that
is the caller's fault nor a bug: the API answers ``503 {"error": "unavailable", ...}`` with
``Retry-After``, and a client retries with the same idempotency key (writes are transactional, so the
failed attempt changed nothing).
"""
from __future__ import annotations

from apps.core.exceptions import Unavailable

RETRY_AFTER_SECONDS = 5


def _kinds() -> list[tuple[tuple[type[BaseException], ...], str]]:
    from clickhouse_driver import errors as clickhouse_errors
    from django import db
    from redis import exceptions as redis_errors

    return [
        ((db.OperationalError, db.InterfaceError), "postgres"),
        ((redis_errors.ConnectionError, redis_errors.TimeoutError), "redis"),
        ((clickhouse_errors.NetworkError, clickhouse_errors.SocketTimeoutError), "clickhouse"),
    ]


def unavailable_store(exc: BaseException) -> str | None:
    """The store whose outage ``exc`` (or an exception it was raised from) reports, else None."""
    kinds = _kinds()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for types, store in kinds:
            if isinstance(current, types):
                return store
        current = current.__cause__ or current.__context__
    return None


def body(store: str) -> dict[str, str]:
    return {"error": "unavailable", "detail": f"{store} is unavailable right now; retry in a few seconds"}


def as_unavailable(exc: BaseException) -> Unavailable | None:
    """``exc`` as the service error kind ``Unavailable`` when it reports a store outage, else None."""
    if isinstance(exc, Unavailable):
        return None  # already a service error: the handler answers it as it is
    store = unavailable_store(exc)
    if store is None:
        return None
    return Unavailable(body(store)["detail"], retry_after=RETRY_AFTER_SECONDS)
