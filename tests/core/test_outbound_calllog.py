"""The outbound call log: one row per attempt, secrets never stored, tagged by connection, a failed
write never fails the call, purged daily by beat after the retention."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.models import OutboundCall
from apps.core.outbound import OutboundClient, OutboundError
from apps.core.outbound.calllog import recent_calls, redact_url
from tests.factories import make_user
from tests.support.admin import changelist
from tests.support.http_server import LocalHTTPServer


@pytest.fixture
def server():
    with LocalHTTPServer() as running:
        yield running


def test_redact_url_masks_userinfo_and_secret_query_values():
    assert redact_url("https://user:pw@api.example.com:8443/x?api_key=abc&q=1&access_token=t&page=2") == \
        "https://api.example.com:8443/x?api_key=***&q=1&access_token=***&page=2"
    assert redact_url("https://api.example.com/x") == "https://api.example.com/x"


@pytest.mark.django_db
def test_every_attempt_is_a_row_without_bodies_or_headers(server):
    server.script(503, {"errors": [{"message": "try later"}]}, {"Retry-After": "0"})
    client = OutboundClient("jira", server.url, backoff=0, retries=1, auth=("bot@example.com", "tok-SECRET"),
                            log_context={"connection": "7"})
    client.post("/rest/api/3/issue?token=qs-SECRET", json={"fields": {"summary": "body-SECRET"}})
    rows = list(OutboundCall.objects.order_by("id"))
    assert [(r.name, r.connection, r.method, r.status_code, r.outcome, r.attempt) for r in rows] == [
        ("jira", "7", "POST", 503, "retryable", 1), ("jira", "7", "POST", 200, "ok", 2)]
    assert rows[0].url == f"{server.url}/rest/api/3/issue?token=***"
    assert "try later" in rows[0].error and rows[1].error == ""
    for row in rows:
        text = " ".join(str(getattr(row, f.attname)) for f in OutboundCall._meta.fields)
        assert "SECRET" not in text
    assert [r.pk for r in recent_calls(connection="7")] == [rows[1].pk, rows[0].pk]


@pytest.mark.django_db
def test_a_final_4xx_and_a_per_call_tag_are_logged(server):
    server.script(400, {"errorMessages": ["Field 'project' is required"]})
    client = OutboundClient("jira", server.url, log_context={"connection": "1"})
    with pytest.raises(OutboundError):
        client.post("/rest/api/3/issue", json={}, log_context={"connection": "2"})
    row = OutboundCall.objects.get()
    assert (row.connection, row.status_code, row.outcome) == ("2", 400, "rejected")
    assert "Field 'project' is required" in row.error


def test_a_call_log_that_cannot_be_written_does_not_fail_the_call(server):
    # No database access in this test (pytest-django refuses it): the write fails, the call does not.
    response = OutboundClient("vendor", server.url, log_calls=True).get("/ping")
    assert response.status_code == 200


@pytest.mark.django_db
def test_the_daily_purge_drops_rows_past_the_retention(settings):
    from apps.core.tasks import purge_outbound_calls

    settings.OUTBOUND_CALL_LOG_RETENTION_DAYS = 30
    now = timezone.now()
    old = OutboundCall.objects.create(name="v", method="GET", url="http://x/", outcome="ok",
                                      created_at=now - timedelta(days=31))
    kept = OutboundCall.objects.create(name="v", method="GET", url="http://x/", outcome="ok",
                                       created_at=now - timedelta(days=29))
    assert purge_outbound_calls.apply().get() == 1
    assert list(OutboundCall.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not OutboundCall.objects.filter(pk=old.pk).exists()


def test_the_purge_is_on_the_beat_schedule_with_an_expiry():
    from config.celery import app

    entry = app.conf.beat_schedule["core-purge-outbound-calls"]
    assert entry["task"] == "core.purge_outbound_calls" and entry["options"]["expires"] > 0
    assert "core.purge_outbound_calls" in app.tasks


@pytest.mark.django_db
def test_the_admin_lists_calls_with_filters_and_is_read_only(client, server):
    OutboundClient("asana", server.url, log_context={"connection": "3"}).get("/users/me")
    admin = make_user("Admin", username="ops-admin")
    client.force_login(admin)
    cl = changelist(client.get("/admin/core/outboundcall/?q=users"), expect_rows=True)
    assert [c.name for c in cl.result_list] == ["asana"]
    changelist(client.get("/admin/core/outboundcall/?outcome__exact=timeout"), expect_rows=False)
    assert client.get("/admin/core/outboundcall/add/").status_code == 403
    marketer = make_user("Marketer", username="ops-marketer")
    client.force_login(marketer)
    assert client.get("/admin/core/outboundcall/").status_code == 403
