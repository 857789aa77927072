"""Asana and Jira approvals end to end against local servers speaking their formats: one item per
submission (even under retries and duplicate deliveries), the status sync casting mapped votes
through the campaigns services, and platform decisions pushed back."""
from __future__ import annotations

import base64

import pytest

from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core.models import OutboundCall
from apps.core.outbound import OutboundError
from apps.integrations import services, tasks
from apps.integrations.models import ExternalTask
from tests.support.wait import wait_until

from .fakes import ASANA_TOKEN, JIRA_EMAIL, JIRA_TOKEN

pytestmark = pytest.mark.django_db


def submit(campaign, actor, capture):
    with capture(execute=True):
        campaign_services.campaign_submit(campaign_id=campaign.pk, actor=actor)
    return campaign_selectors.campaign_get(campaign_id=campaign.pk)


def submit_unsynced(connection, campaign, actor, capture):
    """Submitted while the connection is off (no task created on commit), then the connection back on:
    the test drives the task creation itself."""
    connection.enabled = False
    connection.save()
    campaign = submit(campaign, actor, capture)
    connection.enabled = True
    connection.save()
    return campaign


def issue_posts(jira):
    return [r for r in jira.requests if r.method == "POST" and r.path == "/rest/api/3/issue"]


def test_a_submission_creates_one_jira_issue_in_adf_with_a_link_stored(
        jira, jira_connection, draft_campaign, marketer, django_capture_on_commit_callbacks, settings):
    settings.PUBLIC_BASE_URL = "https://ops.example.com"
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    [post] = issue_posts(jira)
    assert post.header("Authorization") == "Basic " + base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()
    fields = post.json()["fields"]
    assert fields["project"] == {"key": "OPS"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "Approve campaign: Spring Sale (Example Shop)"
    assert fields["labels"] == [f"ce-campaign-{campaign.pk}-round-1"]
    doc = fields["description"]
    assert doc["type"] == "doc" and doc["version"] == 1
    texts = [node["content"][0]["text"] for node in doc["content"]]
    assert "Budget: 1500.00 USD" in texts and "Channels: display" in texts
    assert f"Required approvals: {campaign.required_approvals} " in " ".join(texts) + " "
    link = doc["content"][-1]["content"][0]
    assert link["marks"] == [{"type": "link", "attrs": {
        "href": f"https://ops.example.com/admin/campaigns/campaign/{campaign.pk}/change/"}}]
    task = ExternalTask.objects.get()
    assert (task.state, task.external_key, task.url) == ("created", "OPS-1", f"{jira.url}/browse/OPS-1")
    assert list(OutboundCall.objects.filter(connection=str(jira_connection.pk)).values_list("status_code", flat=True)) == [201]


def test_a_submission_creates_one_asana_task(asana, asana_connection, draft_campaign, marketer,
                                             django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    [post] = [r for r in asana.requests if r.method == "POST" and r.path == "/api/1.0/tasks"]
    assert post.header("Authorization") == f"Bearer {ASANA_TOKEN}"
    data = post.json()["data"]
    assert data["workspace"] == asana.workspace and data["projects"] == [asana.project]
    assert data["name"] == "Approve campaign: Spring Sale (Example Shop)"
    assert "Budget: 1500.00 USD" in data["notes"] and f"/admin/campaigns/campaign/{campaign.pk}/change/" in data["notes"]
    task = ExternalTask.objects.get()
    assert task.state == "created" and task.url == f"https://app.asana.com/0/{asana.project}/{task.external_id}"


def test_no_connection_no_call_and_a_disabled_one_is_ignored(jira, jira_connection, draft_campaign, marketer,
                                                             django_capture_on_commit_callbacks):
    jira_connection.enabled = False
    jira_connection.save()
    submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    assert jira.requests == [] and not ExternalTask.objects.exists()


def test_a_task_delivered_twice_makes_one_issue(jira, jira_connection, draft_campaign, marketer,
                                                django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    tasks.create_approval_task.apply(args=(jira_connection.pk, campaign.pk, 1)).get()
    assert len(issue_posts(jira)) == 1 and len(jira.issues) == 1 and ExternalTask.objects.count() == 1


def test_a_retried_task_after_a_lost_answer_adopts_the_issue_instead_of_making_another(
        jira, jira_connection, draft_campaign, marketer, django_capture_on_commit_callbacks):
    # Jira makes the issue but its answer never arrives in time: the attempt times out (the POST is
    # not re-sent blindly), the Celery task's retry finds the issue by its label and adopts it.
    jira_connection.enabled = False
    jira_connection.save()
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)  # nothing queued yet
    jira_connection.enabled = True
    jira_connection.save()
    jira.hold()
    try:
        with pytest.raises(OutboundError) as caught:
            services.approval_task_create(connection_id=jira_connection.pk, campaign_id=campaign.pk, review_round=1)
    finally:
        jira.release()
    assert caught.value.kind == "timeout" and caught.value.retryable
    wait_until(lambda: all(r.answered.is_set() for r in jira.requests), message="the held answer was sent")
    assert len(issue_posts(jira)) == 1 and list(jira.issues) == ["OPS-1"]  # made, answer lost
    task = ExternalTask.objects.get()
    assert (task.state, task.maybe_created, task.claimed_at) == ("creating", True, None)

    assert tasks.create_approval_task.apply(args=(jira_connection.pk, campaign.pk, 1)).get() == "OPS-1"
    task.refresh_from_db()
    assert (task.state, task.external_key) == ("created", "OPS-1") and "adopted" in task.note
    assert len(issue_posts(jira)) == 1 and list(jira.issues) == ["OPS-1"]  # the retry made nothing new
    [search] = [r for r in jira.requests if r.path == "/rest/api/3/search/jql"]
    assert search.query["jql"] == [f'project = "OPS" AND labels = "ce-campaign-{campaign.pk}-round-1" ORDER BY created ASC']


def test_a_claim_held_by_a_running_attempt_is_not_taken_twice(jira, jira_connection, draft_campaign, marketer,
                                                              django_capture_on_commit_callbacks):
    from django.utils import timezone

    campaign = submit_unsynced(jira_connection, draft_campaign, marketer, django_capture_on_commit_callbacks)
    ExternalTask.objects.create(connection=jira_connection, campaign_id=campaign.pk, review_round=1,
                                claimed_at=timezone.now())
    with pytest.raises(services.AttemptInProgress):
        services.approval_task_create(connection_id=jira_connection.pk, campaign_id=campaign.pk, review_round=1)
    assert jira.requests == []


def test_a_429_with_retry_after_is_honoured_and_one_issue_made(jira, jira_connection, draft_campaign, marketer,
                                                                django_capture_on_commit_callbacks):
    jira.script(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}},
                {"Retry-After": "1", "RateLimit-Reason": "jira-burst-based"})
    submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    assert len(issue_posts(jira)) == 2 and len(jira.issues) == 1
    assert ExternalTask.objects.get().state == "created"
    assert list(OutboundCall.objects.order_by("id").values_list("status_code", "outcome")) == [
        (429, "retryable"), (201, "ok")]


def test_a_400_is_not_retried_and_is_recorded_for_the_admin(jira, jira_connection, draft_campaign, marketer,
                                                            django_capture_on_commit_callbacks):
    jira_connection.options = {**jira_connection.options, "project_key": "NOPE"}
    jira_connection.save()
    submit(draft_campaign, marketer, django_capture_on_commit_callbacks)  # robust on_commit: logged, not raised
    assert len(issue_posts(jira)) == 1 and jira.issues == {}
    task = ExternalTask.objects.get()
    assert task.state == "failed" and task.open is False
    assert "HTTP 400" in task.note and "valid project is required" in task.note
    call = OutboundCall.objects.get()
    assert (call.status_code, call.outcome) == (400, "rejected") and "valid project is required" in call.error


def test_a_resubmission_gets_its_own_issue(jira, jira_connection, draft_campaign, marketer, approver,
                                           django_capture_on_commit_callbacks):
    submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_request_changes(campaign_id=draft_campaign.pk, actor=approver, reason="New art")
    submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    assert sorted(ExternalTask.objects.values_list("review_round", "external_key")) == [(1, "OPS-1"), (2, "OPS-2")]
    # the first issue was sent back with the platform's decision
    assert jira.issues["OPS-1"]["status"] == "In Review"


def sync():
    return tasks.sync_approval_status.apply().get()


def test_a_mapped_jira_status_casts_the_approvers_vote(jira, jira_connection, draft_campaign, marketer,
                                                       django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    assert sync() == {"polled": 1, "votes_cast": 0, "errors": 0}
    assert ExternalTask.objects.get().external_status == "To Review"
    jira.move("OPS-1", "Approved", by="ann@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        assert sync()["votes_cast"] == 1
    [vote] = campaign_selectors.campaign_votes(campaign_id=campaign.pk)
    assert (vote.approver.username, vote.decision, vote.reason) == ("ann", "approve", "approved in OPS-1")
    task = ExternalTask.objects.get()
    assert task.external_status == "Approved" and task.decision_cast == "approve:Approved"
    if campaign.required_approvals == 1:
        assert campaign_selectors.campaign_get(campaign_id=campaign.pk).status == "approved"
        assert task.decision_pushed == "approve" and task.open is False
        # the item already said Approved: nothing was transitioned back
        assert not [r for r in jira.requests if r.method == "POST" and r.path.endswith("/transitions")]
    assert sync()["votes_cast"] == 0  # nothing cast twice


def test_a_jira_reject_takes_the_last_comment_as_reason(jira, jira_connection, draft_campaign, marketer,
                                                        django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    jira.move("OPS-1", "Rejected", by="ann@acme.example", comment="Logo is off-brand")
    with django_capture_on_commit_callbacks(execute=True):
        sync()
    [vote] = campaign_selectors.campaign_votes(campaign_id=campaign.pk)
    assert (vote.decision, vote.reason) == ("reject", "Logo is off-brand")
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).status == "rejected"


def test_a_reject_without_comment_says_where(jira, jira_connection, draft_campaign, marketer,
                                             django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    jira.move("OPS-1", "Rejected", by="ann@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        sync()
    assert [v.reason for v in campaign_selectors.campaign_votes(campaign_id=campaign.pk)] == ["Rejected in OPS-1"]


def test_an_unmapped_user_or_status_casts_nothing(jira, jira_connection, draft_campaign, marketer,
                                                  django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    jira.move("OPS-1", "In Progress", by="ann@acme.example")
    sync()
    jira.move("OPS-1", "Approved", by="stranger@acme.example")
    sync()
    assert list(campaign_selectors.campaign_votes(campaign_id=campaign.pk)) == []
    task = ExternalTask.objects.get()
    assert "not a mapped approver" in task.note and task.external_status == "Approved"


def test_the_self_approval_rule_holds_for_mapped_votes(jira, jira_connection, draft_campaign, marketer,
                                                       django_capture_on_commit_callbacks):
    jira_connection.options = {**jira_connection.options, "user_map": {"mark@acme.example": "marketer"}}
    jira_connection.save()
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    jira.move("OPS-1", "Approved", by="mark@acme.example")
    sync()
    assert list(campaign_selectors.campaign_votes(campaign_id=campaign.pk)) == []
    assert "refused" in ExternalTask.objects.get().note


def test_a_platform_decision_transitions_the_jira_issue(jira, jira_connection, draft_campaign, marketer,
                                                        django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    rejecter = __import__("tests.factories", fromlist=["make_user"]).make_user("Approver", username="rita")
    with django_capture_on_commit_callbacks(execute=True):
        campaign_services.campaign_reject(campaign_id=campaign.pk, actor=rejecter, reason="Wrong budget")
    posts = [r for r in jira.requests if r.method == "POST" and r.path == "/rest/api/3/issue/OPS-1/transitions"]
    assert [p.json() for p in posts] == [{"transition": {"id": "21"}}]
    assert jira.issues["OPS-1"]["status"] == "Rejected"
    assert ExternalTask.objects.get().decision_pushed == "reject"


def test_asana_completion_by_a_mapped_approver_approves_and_a_platform_decision_completes(
        asana, asana_connection, draft_campaign, marketer, django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    gid = ExternalTask.objects.get().external_id
    sync()
    assert ExternalTask.objects.get().external_status == "open"
    asana.complete(gid, by="ann@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        assert sync()["votes_cast"] == 1
    [vote] = campaign_selectors.campaign_votes(campaign_id=campaign.pk)
    assert vote.approver.username == "ann" and vote.decision == "approve"


def test_a_platform_approval_completes_the_asana_task(asana, asana_connection, draft_campaign, marketer,
                                                      approver, django_capture_on_commit_callbacks):
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    gid = ExternalTask.objects.get().external_id
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(campaign.required_approvals):
            from tests.factories import make_user

            campaign_services.campaign_approve(campaign_id=campaign.pk, actor=make_user("Approver"))
    puts = [r for r in asana.requests if r.method == "PUT" and r.path == f"/api/1.0/tasks/{gid}"]
    assert [p.json() for p in puts] == [{"data": {"completed": True}}]
    assert asana.tasks[gid]["completed"] is True
    assert any("approved" in s["text"] for s in asana.stories[gid])


def test_the_sync_is_on_the_beat_schedule():
    from config.celery import app

    entry = app.conf.beat_schedule["integrations-sync-approval-status"]
    assert entry["task"] == "integrations.sync_approval_status" and entry["options"]["expires"] < 60


def test_services_module_is_the_public_face():
    assert callable(services.approval_task_create) and callable(services.connection_test)


# --- Asana: the status from a section or an enum custom field --------------------------------------

def _asana_source(connection, source: str, status_map: dict) -> None:
    connection.options = {**connection.options, "status_source": source, "status_map": status_map}
    connection.save()


def test_asana_status_from_the_section_maps_by_name_or_gid_and_unmapped_casts_nothing(
        asana, asana_connection, draft_campaign, marketer, django_capture_on_commit_callbacks):
    from .fakes import AsanaServer

    _asana_source(asana_connection, "section", {"Approved": "approve", AsanaServer.SECTIONS["Rejected"]: "reject"})
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    gid = ExternalTask.objects.get().external_id
    assert sync()["votes_cast"] == 0
    assert ExternalTask.objects.get().external_status == "To review"
    [poll] = [r for r in asana.requests if r.method == "GET" and r.path == f"/api/1.0/tasks/{gid}"]
    assert "memberships.section.name" in poll.query["opt_fields"][0]

    asana.move_to_section(gid, "Parked", by="ann@acme.example")  # a section the map does not name
    assert sync()["votes_cast"] == 0
    task = ExternalTask.objects.get()
    assert task.external_status == "Parked" and "not in the connection's status_map" in task.note
    asana.move_to_section(gid, "Approved", by="stranger@acme.example")  # mapped status, unmapped user
    assert sync()["votes_cast"] == 0
    assert "not a mapped approver" in ExternalTask.objects.get().note
    assert list(campaign_selectors.campaign_votes(campaign_id=campaign.pk)) == []

    asana.move_to_section(gid, "Rejected", by="ann@acme.example", comment="Price is wrong")  # mapped by gid
    with django_capture_on_commit_callbacks(execute=True):
        assert sync()["votes_cast"] == 1
    [vote] = campaign_selectors.campaign_votes(campaign_id=campaign.pk)
    assert (vote.approver.username, vote.decision, vote.reason) == ("ann", "reject", "Price is wrong")
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).status == "rejected"
    # the vote came from the item: the platform's reject is not pushed back as a completion
    assert not [r for r in asana.requests if r.method == "PUT"]


@pytest.mark.parametrize("field_ref", ["Approval", "1500000000000001"], ids=["by-name", "by-gid"])
def test_asana_status_from_an_enum_custom_field_casts_mapped_votes(
        asana, asana_connection, draft_campaign, marketer, django_capture_on_commit_callbacks, field_ref):
    from .fakes import AsanaServer

    _asana_source(asana_connection, f"custom_field:{field_ref}",
                  {AsanaServer.OPTIONS["Approved"]: "approve", "Rejected": "reject"})
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    gid = ExternalTask.objects.get().external_id
    assert sync()["votes_cast"] == 0 and ExternalTask.objects.get().external_status == ""  # no option chosen
    asana.set_approval(gid, "Pending", by="ann@acme.example")
    assert sync()["votes_cast"] == 0 and ExternalTask.objects.get().external_status == "Pending"
    asana.move_to_section(gid, "Approved", by="ann@acme.example")  # the section is not the source here
    asana.complete(gid, by="ann@acme.example")  # nor is completion
    assert sync()["votes_cast"] == 0
    assert list(campaign_selectors.campaign_votes(campaign_id=campaign.pk)) == []

    asana.set_approval(gid, "Approved", by="ann@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        assert sync()["votes_cast"] == 1
    [vote] = campaign_selectors.campaign_votes(campaign_id=campaign.pk)
    assert (vote.approver.username, vote.decision, vote.reason) == ("ann", "approve", f"approved in Asana task {gid}")
    assert ExternalTask.objects.get().decision_cast == "approve:Approved"
    assert sync()["votes_cast"] == 0  # nothing cast twice


def test_asana_custom_field_reject_takes_the_last_comment(asana, asana_connection, draft_campaign, marketer,
                                                         django_capture_on_commit_callbacks):
    _asana_source(asana_connection, "custom_field:Approval", {"Approved": "approve", "Rejected": "reject"})
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    gid = ExternalTask.objects.get().external_id
    asana.set_approval(gid, "Rejected", by="ann@acme.example", comment="Hero image is blurry")
    with django_capture_on_commit_callbacks(execute=True):
        assert sync()["votes_cast"] == 1
    [vote] = campaign_selectors.campaign_votes(campaign_id=campaign.pk)
    assert (vote.decision, vote.reason) == ("reject", "Hero image is blurry")


# --- Jira Cloud's rate-limit headers ------------------------------------------------------------------

def test_a_jira_429_with_only_x_ratelimit_reset_waits_until_then_and_makes_one_issue(
        jira, jira_connection, draft_campaign, marketer, django_capture_on_commit_callbacks):
    import time

    jira.limit_for(1.5)  # Jira refuses every call until the reset, saying so only in X-RateLimit-Reset
    submit(draft_campaign, marketer, django_capture_on_commit_callbacks)
    assert jira.refused == 1  # the retry waited for the reset (the client's own backoff is 0.25-0.5 s)
    assert len(issue_posts(jira)) == 2 and len(jira.issues) == 1
    assert ExternalTask.objects.get().state == "created"
    assert time.time() >= jira.limited_until


def test_a_far_jira_reset_is_handed_to_the_celery_retry(jira, jira_connection, draft_campaign, marketer,
                                                        django_capture_on_commit_callbacks):
    campaign = submit_unsynced(jira_connection, draft_campaign, marketer, django_capture_on_commit_callbacks)
    jira.limit_for(600)
    with pytest.raises(OutboundError) as caught:
        services.approval_task_create(connection_id=jira_connection.pk, campaign_id=campaign.pk, review_round=1)
    assert jira.refused == 1 and caught.value.status_code == 429 and caught.value.retryable
    assert 500 < tasks._countdown(caught.value, 0) <= 600  # the task retries after the reset, not before
    task = ExternalTask.objects.get()
    assert task.state == "creating" and "rate limiting" in task.note and jira.issues == {}


def test_an_asana_create_whose_answer_was_lost_is_adopted_by_the_retry(
        asana, asana_connection, draft_campaign, marketer, django_capture_on_commit_callbacks):
    # Asana makes the task, the connection drops before its answer: the POST is not re-sent blindly;
    # the Celery task's retry finds the task by the marker line in its notes and adopts it.
    asana.drop(when=lambda r: r.method == "POST" and r.path == "/api/1.0/tasks")
    campaign = submit(draft_campaign, marketer, django_capture_on_commit_callbacks)  # the attempt fails retryable
    posts = [r for r in asana.requests if r.method == "POST" and r.path == "/api/1.0/tasks"]
    assert len(posts) == 1 and len(asana.tasks) == 1  # made, answer lost, not re-sent
    task = ExternalTask.objects.get()
    assert (task.state, task.maybe_created) == ("creating", True)
    [gid] = asana.tasks
    assert tasks.create_approval_task.apply(args=(asana_connection.pk, campaign.pk, 1)).get() == gid  # the retry
    task.refresh_from_db()
    assert (task.state, task.external_id) == ("created", gid) and "adopted" in task.note
    assert len([r for r in asana.requests if r.method == "POST" and r.path == "/api/1.0/tasks"]) == 1
    [lookup] = [r for r in asana.requests if r.method == "GET" and r.path == "/api/1.0/tasks"]
    assert lookup.query["project"] == [asana.project] and "notes" in lookup.query["opt_fields"][0]
    assert f"[ce-campaign-{campaign.pk}-round-1]" in asana.tasks[gid]["notes"]
