"""Connections: "Test connection" in plain words within 5 s, credentials encrypted and never shown
back, recent calls on the connection's page, Admins only."""
from __future__ import annotations

import time

import pytest
from django.db import connection as db

from apps.core.roles import Role
from apps.integrations import services
from apps.integrations.models import Connection
from tests.support.ports import free_port

from .conftest import make_user
from .fakes import ASANA_TOKEN, JIRA_TOKEN

pytestmark = pytest.mark.django_db


def test_jira_and_asana_connections_test_ok(jira_connection, asana_connection):
    result = services.connection_test(connection_id=jira_connection.pk)
    assert result.ok and result.message == "Connected to Jira as Ops Bot; project 'Operations' (OPS) found."
    result = services.connection_test(connection_id=asana_connection.pk)
    assert result.ok and result.message == "Connected to Asana as Ops Bot; project 'Campaign approvals' found."
    jira_connection.refresh_from_db()
    assert jira_connection.last_test_ok is True and jira_connection.last_tested_at is not None


def test_bad_credentials_are_said_plainly(jira_connection, asana_connection):
    jira_connection.credentials = {**jira_connection.credentials, "api_token": "wrong"}
    jira_connection.save()
    result = services.connection_test(connection_id=jira_connection.pk)
    assert (result.ok, result.message) == (False, "Jira refused the credentials (HTTP 401)")
    asana_connection.credentials = {"token": "wrong"}
    asana_connection.save()
    assert services.connection_test(connection_id=asana_connection.pk).message == "Asana refused the credentials (HTTP 401)"


def test_an_unknown_project_is_said_plainly(jira_connection, asana_connection):
    jira_connection.options = {**jira_connection.options, "project_key": "NOPE"}
    jira_connection.save()
    assert services.connection_test(connection_id=jira_connection.pk).message == \
        "Jira does not know project NOPE (HTTP 404)"
    asana_connection.options = {**asana_connection.options, "project": "999"}
    asana_connection.save()
    assert services.connection_test(connection_id=asana_connection.pk).message == \
        "Asana does not know project 999 (HTTP 404)"


def test_missing_credentials_are_named(jira_connection):
    jira_connection.credentials = {"email": "bot@acme.example"}
    jira_connection.save()
    result = services.connection_test(connection_id=jira_connection.pk)
    assert result.message == "The connection has no api token set: enter it in the admin."


def test_unreachable_is_said_plainly(jira_connection):
    jira_connection.base_url = f"http://127.0.0.1:{free_port()}"
    jira_connection.save()
    result = services.connection_test(connection_id=jira_connection.pk)
    assert (result.ok, result.message) == (False, "Jira is unreachable at the configured base URL")


def test_a_vendor_that_hangs_gets_an_answer_within_5_seconds(jira, jira_connection):
    jira_connection.options = {**jira_connection.options, "timeout_seconds": 30}
    jira_connection.save()
    jira.hold()
    try:
        started = time.monotonic()
        result = services.connection_test(connection_id=jira_connection.pk)
        elapsed = time.monotonic() - started
    finally:
        jira.release()
    assert elapsed < 5.0
    assert (result.ok, result.message) == (False, "Jira did not answer in time (unreachable or slow)")


def _raw_credentials(pk: int) -> str:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM integrations_connection WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.fixture
def admin_user():
    return make_user(Role.ADMIN, username="ops-admin")


def test_the_admin_never_shows_credentials_back(client, admin_user, jira_connection):
    client.force_login(admin_user)
    page = client.get(f"/admin/integrations/connection/{jira_connection.pk}/change/").content.decode()
    assert JIRA_TOKEN not in page and "bot@acme.example" not in page
    assert _raw_credentials(jira_connection.pk) not in page
    assert 'name="credentials__api_token"' in page and 'name="credentials__email"' in page
    assert page.count("<strong>set</strong>") == 2
    assert JIRA_TOKEN not in _raw_credentials(jira_connection.pk)


def test_an_admin_adds_a_connection_and_its_token_is_stored_encrypted(client, admin_user, asana):
    client.force_login(admin_user)
    response = client.post("/admin/integrations/connection/add/", {
        "name": "Asana", "kind": "asana", "base_url": asana.base_url, "enabled": "on",
        "credentials__token": ASANA_TOKEN, "options": '{"project": "%s"}' % asana.project, "rate_per_second": ""})
    assert response.status_code == 302, response.content.decode()[:3000]
    created = Connection.objects.get(name="Asana")
    assert created.credentials == {"token": ASANA_TOKEN}
    assert ASANA_TOKEN not in _raw_credentials(created.pk)
    # a later save with the token left blank keeps it
    response = client.post(f"/admin/integrations/connection/{created.pk}/change/", {
        "name": "Asana", "kind": "asana", "base_url": asana.base_url, "enabled": "on", "credentials__token": "",
        "options": '{"project": "%s"}' % asana.project, "rate_per_second": ""})
    assert response.status_code == 302
    assert Connection.objects.get(pk=created.pk).credentials == {"token": ASANA_TOKEN}


def test_the_test_button_answers_in_plain_words_and_recent_calls_show(client, admin_user, jira, jira_connection):
    client.force_login(admin_user)
    jira.script(400, {"errorMessages": [], "errors": {"project": "valid project is required"}})
    jira_connection_url = f"/admin/integrations/connection/{jira_connection.pk}/"
    page = client.post(jira_connection_url + "test/", follow=True).content.decode()
    assert "Ops Jira: Jira refused the request (HTTP 400)" in page
    page = client.post(jira_connection_url + "test/", follow=True).content.decode()
    assert "Ops Jira: Connected to Jira as Ops Bot" in page
    assert 'class="recent-calls"' in page and "/rest/api/3/myself" in page and "valid project is required" in page
    assert client.get(jira_connection_url + "test/").status_code == 405


def test_connections_are_for_admins_only(client, jira_connection):
    client.force_login(make_user(Role.MARKETER, username="mk"))
    assert client.get("/admin/integrations/connection/").status_code == 403
    assert client.post(f"/admin/integrations/connection/{jira_connection.pk}/test/").status_code in (302, 403)
    jira_connection.refresh_from_db()
    assert jira_connection.last_tested_at is None


def test_the_campaign_admin_shows_the_jira_issue(client, admin_user, jira, jira_connection, draft_campaign, marketer,
                                                 django_capture_on_commit_callbacks):
    from apps.campaigns import services as campaign_services

    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_submit(campaign_id=draft_campaign.pk, actor=marketer)
    client.force_login(admin_user)
    page = client.get(f"/admin/campaigns/campaign/{draft_campaign.pk}/change/").content.decode()
    assert f'href="{jira.url}/browse/OPS-1"' in page and "Jira Cloud round 1" in page
    assert f'href="/v1/reports/campaigns/{draft_campaign.pk}.xlsx?granularity=day"' in page
    # the status sync's reading of the issue is shown on the campaign
    from apps.integrations import tasks

    jira.move("OPS-1", "In Progress", by="someone@acme.example")
    tasks.sync_approval_status.apply().get()
    page = client.get(f"/admin/campaigns/campaign/{draft_campaign.pk}/change/").content.decode()
    assert "OPS-1</a> — In Progress" in page


def test_a_refused_issue_shows_in_the_admin_with_the_vendors_message(
        client, admin_user, jira, jira_connection, draft_campaign, marketer, django_capture_on_commit_callbacks):
    from apps.campaigns import services as campaign_services

    jira_connection.options = {**jira_connection.options, "project_key": "NOPE"}
    jira_connection.save()
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_submit(campaign_id=draft_campaign.pk, actor=marketer)
    client.force_login(admin_user)
    listing = client.get("/admin/integrations/externaltask/").content.decode()
    assert "Failed (not retried)" in listing and "valid project is required" in listing
    page = client.get(f"/admin/campaigns/campaign/{draft_campaign.pk}/change/").content.decode()
    assert "Failed (not retried)" in page and "HTTP 400" in page
