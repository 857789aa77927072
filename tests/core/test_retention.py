"""Retention purges delete in bounded batches (apps.core.retention), and the staff login audit trail
is purged daily after AUTH_AUDIT_RETENTION_DAYS (core.purge_auth_audit)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core.auth import auth_audit_purge
from apps.core.idempotency import idempotency_purge
from apps.core.models import AuthAudit, AuthEvent, IdempotencyRecord, OutboundCall
from apps.core.retention import delete_in_batches

pytestmark = pytest.mark.django_db


def _audit_rows(count: int, *, age: timedelta) -> None:
    at = timezone.now() - age
    AuthAudit.objects.bulk_create(
        AuthAudit(event=AuthEvent.LOGIN_FAILED, username=f"user-{i}", at=at) for i in range(count))


def _deletes(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("DELETE")]


def test_a_purge_deletes_in_statements_of_at_most_the_batch_size():
    _audit_rows(25, age=timedelta(days=400))
    with CaptureQueriesContext(connection) as queries:
        assert delete_in_batches(AuthAudit.objects.all(), batch_size=10) == 25
    deletes = _deletes(queries.captured_queries)
    assert len(deletes) == 3  # 10 + 10 + 5: never one statement over the whole table
    assert AuthAudit.objects.count() == 0


def test_the_batch_size_comes_from_the_setting(settings):
    settings.RETENTION_PURGE_BATCH_SIZE = 4
    _audit_rows(9, age=timedelta(days=400))
    with CaptureQueriesContext(connection) as queries:
        assert delete_in_batches(AuthAudit.objects.all()) == 9
    assert len(_deletes(queries.captured_queries)) == 3


def test_nothing_to_delete_is_one_read_and_no_delete():
    with CaptureQueriesContext(connection) as queries:
        assert delete_in_batches(AuthAudit.objects.all(), batch_size=10) == 0
    assert _deletes(queries.captured_queries) == []


def test_the_login_audit_purge_keeps_rows_inside_the_retention(settings):
    from apps.core.tasks import purge_auth_audit

    settings.AUTH_AUDIT_RETENTION_DAYS = 90
    settings.RETENTION_PURGE_BATCH_SIZE = 2
    _audit_rows(5, age=timedelta(days=91))
    _audit_rows(3, age=timedelta(days=89))
    assert purge_auth_audit.apply().get() == 5
    assert AuthAudit.objects.count() == 3
    assert not AuthAudit.objects.filter(at__lt=timezone.now() - timedelta(days=90)).exists()
    assert auth_audit_purge() == 0  # a second run finds nothing


def test_the_idempotency_purge_is_bounded_and_keeps_other_scopes_and_recent_records():
    old = timezone.now() - timedelta(days=40)
    for i in range(7):
        IdempotencyRecord.objects.create(scope="omnichannel.ingest", key=f"k{i}", fingerprint="f", response_status=201)
    IdempotencyRecord.objects.create(scope="loyalty.redeem", key="l", fingerprint="f", response_status=200)
    IdempotencyRecord.objects.update(created_at=old)
    IdempotencyRecord.objects.create(scope="omnichannel.ingest", key="new", fingerprint="f", response_status=201)
    with CaptureQueriesContext(connection) as queries:
        assert idempotency_purge(scope_prefix="omnichannel.", older_than=timedelta(days=30), batch_size=3) == 7
    assert len(_deletes(queries.captured_queries)) == 3
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["l", "new"]


def test_the_outbound_call_purge_is_bounded_too(settings):
    from apps.core.tasks import purge_outbound_calls

    settings.RETENTION_PURGE_BATCH_SIZE = 2
    old = timezone.now() - timedelta(days=31)
    OutboundCall.objects.bulk_create(OutboundCall(name="v", method="GET", url="http://x/", outcome="ok",
                                                  created_at=old) for _ in range(5))
    with CaptureQueriesContext(connection) as queries:
        assert purge_outbound_calls.apply().get() == 5
    assert len(_deletes(queries.captured_queries)) == 3


def test_the_login_audit_purge_is_on_the_beat_schedule_with_an_expiry():
    import apps.core.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)
    from config.celery import app

    entry = app.conf.beat_schedule["core-purge-auth-audit"]
    assert entry["task"] == "core.purge_auth_audit" and 0 < entry["options"]["expires"] <= 86400
    assert "core.purge_auth_audit" in app.tasks
