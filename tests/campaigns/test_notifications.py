"""Notification emails through the SendGrid client, against a local server speaking SendGrid's v3
mail/send: exactly one email per (campaign, submission, recipient), whether the task is delivered
twice, retried after a provider error, or run twice at the same time."""
from __future__ import annotations

import pytest

from apps.campaigns import services
from apps.campaigns.models import EmailStatus, Notification
from apps.campaigns.tasks import campaigns_notification_email
from apps.core.roles import Role
from tests.support.threads import run_together

from .conftest import make_user


@pytest.fixture
def reviewer(db):
    return make_user(Role.APPROVER, username="reviewer", email="reviewer@example.com")


def _awaiting(campaign, user) -> Notification:
    return Notification.objects.get(campaign=campaign, recipient=user, kind="awaiting_decision")


@pytest.mark.django_db
def test_email_is_sent_once_even_when_the_task_runs_twice(sendgrid, make_campaign, reviewer):
    campaign = make_campaign("in_review", name="Summer sale")
    note = _awaiting(campaign, reviewer)
    assert campaigns_notification_email.apply(args=[note.pk]).get() == "sent"
    assert campaigns_notification_email.apply(args=[note.pk]).get() == "sent"  # a redelivery: nothing more
    assert len(sendgrid.requests) == 1
    body = sendgrid.requests[0].json()
    assert body["personalizations"] == [{"to": [{"email": "reviewer@example.com"}]}]  # no custom_args: no analytics
    assert body["tracking_settings"] == {"click_tracking": {"enable": False, "enable_text": False},
                                         "open_tracking": {"enable": False}}
    assert body["subject"] == "[Campaign Express] Awaiting your decision: Summer sale"
    assert f"https://ce.example.com/admin/campaigns/campaign/{campaign.pk}/change/" in body["content"][0]["value"]
    note = Notification.objects.get(pk=note.pk)
    assert (note.email_status, note.email_attempts, bool(note.email_message_id)) == (EmailStatus.SENT, 1, True)


@pytest.mark.django_db
def test_a_provider_error_retries_and_still_sends_one_email(sendgrid, make_campaign, reviewer):
    campaign = make_campaign("in_review")
    note = _awaiting(campaign, reviewer)
    sendgrid.fail_next(503, {"errors": [{"message": "Service Unavailable", "field": None}]})
    # Eager apply runs the retry at once: the first attempt is refused, the second goes through.
    result = campaigns_notification_email.apply(args=[note.pk])
    assert result.state in ("SUCCESS", "RETRY")
    assert len(sendgrid.requests) == 2
    note = Notification.objects.get(pk=note.pk)
    assert (note.email_status, note.email_attempts) == (EmailStatus.SENT, 2)


@pytest.mark.django_db
def test_a_permanent_error_is_recorded_and_not_retried(sendgrid, make_campaign, reviewer):
    campaign = make_campaign("in_review")
    note = _awaiting(campaign, reviewer)
    sendgrid.fail_next(400, {"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to"}]})
    assert services.notification_send_email(notification_id=note.pk) == EmailStatus.FAILED
    assert services.notification_send_email(notification_id=note.pk) == EmailStatus.FAILED
    assert len(sendgrid.requests) == 1
    assert Notification.objects.get(pk=note.pk).email_error == "personalizations.0.to: Does not contain a valid address."


@pytest.mark.django_db
def test_no_address_or_no_sendgrid_skips_the_email(settings, make_campaign, approver):
    settings.SENDGRID_API_KEY = ""
    campaign = make_campaign("in_review")
    note = _awaiting(campaign, approver)  # the fixture approver has no email address
    assert services.notification_send_email(notification_id=note.pk) == EmailStatus.SKIPPED
    assert Notification.objects.get(pk=note.pk).email_error == "no email address"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_deliveries_send_one_email(sendgrid, make_campaign):
    reviewer = make_user(Role.APPROVER, username="reviewer-concurrent", email="rc@example.com")
    campaign = make_campaign("in_review")
    note = _awaiting(campaign, reviewer)
    results = run_together([lambda: services.notification_send_email(notification_id=note.pk)] * 2)
    assert sorted(results) == sorted([EmailStatus.SENT, EmailStatus.SENDING]) or results == [EmailStatus.SENT] * 2
    assert len(sendgrid.requests) == 1
    assert Notification.objects.get(pk=note.pk).email_status == EmailStatus.SENT


@pytest.mark.django_db
def test_the_marketer_is_emailed_the_decision(sendgrid, make_campaign, approver):
    marketer = make_user(Role.MARKETER, username="m-email", email="m@example.com")
    campaign = make_campaign("in_review", by=marketer, name="Gift guide")
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    note = Notification.objects.get(campaign=campaign, kind="decided")
    assert note.recipient == marketer and note.message.startswith("“Gift guide” was approved by approver")
    assert services.notification_send_email(notification_id=note.pk) == EmailStatus.SENT
    assert sendgrid.requests[0].json()["personalizations"][0]["to"] == [{"email": "m@example.com"}]


@pytest.mark.django_db
def test_the_sweep_sends_what_is_still_pending_once(sendgrid, make_campaign, reviewer):
    from datetime import timedelta

    from django.utils import timezone

    campaign = make_campaign("in_review")
    note = _awaiting(campaign, reviewer)
    assert services.notification_send_pending_emails() == 0  # too fresh: its task is on its way
    later = timezone.now() + timedelta(minutes=2)
    assert services.notification_send_pending_emails(now=later) >= 1
    assert services.notification_send_pending_emails(now=later) == 0
    assert Notification.objects.get(pk=note.pk).email_status == EmailStatus.SENT
    assert [r.json()["personalizations"][0]["to"][0]["email"] for r in sendgrid.requests].count(
        "reviewer@example.com") == 1
