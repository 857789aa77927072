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


def restore_serialized_rows_over_recreated_ones() -> None:
    """Make ``serialized_rollback`` work after any other transactional test.

    A transactional test without it ends with a flush that re-runs ``post_migrate``, which recreates
    content types and permissions with new ids. A later ``serialized_rollback`` test then reloads the
    rows the migrations made, with their original ids, and fails on the unique
    ``(app_label, model)`` ("duplicate key ... django_content_type_app_label_model"): it ran only in
    some test orders. The fix: empty those two tables (and, by cascade, whatever points at them)
    just before the reload, which writes them all back as they were after migrating.
    """
    from django.db.backends.base.creation import BaseDatabaseCreation

    original = BaseDatabaseCreation.deserialize_db_from_string
    if getattr(original, "_restores_recreated_rows", False):
        return

    def deserialize_db_from_string(self, data):
        with self.connection.cursor() as cursor:
            cursor.execute("TRUNCATE django_content_type, auth_permission CASCADE")
        return original(self, data)

    deserialize_db_from_string._restores_recreated_rows = True
    BaseDatabaseCreation.deserialize_db_from_string = deserialize_db_from_string
