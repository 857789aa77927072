"""Readiness checks of the stores, each bounded by a short timeout. Used by ``/ready``."""
from __future__ import annotations

import socket
from typing import Callable
from urllib.parse import urlparse

from django.conf import settings
from django.db import connection

from apps.core import clickhouse
from apps.core import redis as redis_store


def check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    redis_store.client().ping()


def check_clickhouse() -> None:
    clickhouse.ping()


def check_nats() -> None:
    """Open a TCP connection and read the server's INFO greeting — a real NATS answer."""
    parsed = urlparse(settings.NATS_URL)
    with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=1) as sock:
        sock.settimeout(1)
        if not sock.recv(4096).startswith(b"INFO "):
            raise ConnectionError("unexpected greeting from NATS")


CHECKS: dict[str, Callable[[], None]] = {
    "postgres": check_postgres,
    "redis": check_redis,
    "clickhouse": check_clickhouse,
    "nats": check_nats,
}


def run_checks() -> dict[str, str]:
    """Return ``{store: "ok" | "<error>"}`` for every store."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and we say why
            results[name] = f"{type(exc).__name__}: {exc}"[:300]
    return results
