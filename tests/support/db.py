"""Conditions on the real Postgres, for concurrency tests that must know a transaction is blocked."""
from __future__ import annotations

from django.db import connections

from tests.support.wait import wait_until

_WAITERS = """
SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.datname = current_database()
"""


def blocked_backends(using: str = "default") -> int:
    """How many backends of this database wait for a lock another transaction holds."""
    with connections[using].cursor() as cursor:
        cursor.execute(_WAITERS)
        return cursor.fetchone()[0]


def wait_for_blocked_backends(count: int = 1, timeout: float = 10, using: str = "default") -> int:
    """Until at least ``count`` backends of this database wait on a lock (e.g. a second insert of the
    same unique key behind an open transaction); returns how many."""
    return wait_until(lambda: (n := blocked_backends(using)) >= count and n, timeout, 0.02,
                      message=f"{count} backend(s) blocked on a lock")
