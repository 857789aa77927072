"""A store that is down is answered 503 JSON with Retry-After, never a 500 (issue 16, found by bench/api_soak.py).

Each failure is real: a connection to a port where nothing listens."""
from __future__ import annotations

import psycopg
import pytest
import redis
from clickhouse_driver import Client as ClickHouse
from django.db import connection

from apps.core.api import exception_handler
from tests.support.ports import free_port  # nothing listens there


def raised(call) -> BaseException:
    with pytest.raises(Exception) as info:
        call()
    return info.value


def test_postgres_down_is_a_503_through_djangos_wrapper():
    port = free_port()

    def connect():
        with connection.wrap_database_errors:  # Django's translation: django.db.OperationalError
            psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=x connect_timeout=1")

    response = exception_handler(raised(connect), {})
    assert response.status_code == 503
    assert response.data["error"] == "unavailable" and "postgres" in response.data["detail"]
    assert response.headers["Retry-After"] == "5"


def test_redis_down_is_a_503():
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    response = exception_handler(raised(client.ping), {})
    assert (response.status_code, response.data["error"]) == (503, "unavailable")
    assert "redis" in response.data["detail"]


def test_clickhouse_down_is_a_503_also_when_wrapped():
    client = ClickHouse(host="127.0.0.1", port=free_port(), connect_timeout=1)

    def query():
        try:
            client.execute("SELECT 1")
        except Exception as exc:
            raise RuntimeError("report failed") from exc

    response = exception_handler(raised(query), {})
    assert response.status_code == 503 and "clickhouse" in response.data["detail"]


def test_other_errors_are_not_outages():
    assert exception_handler(ValueError("a bug"), {}) is None  # Django's 500 path, as before
