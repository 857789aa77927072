"""A staff notification email whose worker died during the SendGrid call ("sending" left behind) is
taken back by the minute sweep once its claim is older than CAMPAIGN_NOTIFICATION_EMAIL_LEASE_SECONDS,
and sent again under a new claim with the same Message-ID; the lost claim can never overwrite the new
one, and a late success of the lost claim keeps the email from going out a second time."""
from __future__ import annotations

import os
import signal
import sys
import textwrap
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import EmailStatus, Notification
from apps.core.roles import Role
from tests.support.processes import ManagedProcess
from tests.support.threads import run_together
from tests.support.wait import wait_until

from .conftest import SENDGRID_FROM, SENDGRID_KEY, make_user

KEY, FROM = SENDGRID_KEY, SENDGRID_FROM


@pytest.fixture(autouse=True)
def lease(settings):
    settings.CAMPAIGN_NOTIFICATION_EMAIL_LEASE_SECONDS = 300
    settings.CAMPAIGN_NOTIFICATION_EMAIL_MAX_ATTEMPTS = 3


def _note(make_campaign, email: str) -> Notification:
    reviewer = make_user(Role.APPROVER, username=email.split("@")[0], email=email)
    campaign = make_campaign("in_review")
    return Notification.objects.get(campaign=campaign, recipient=reviewer, kind="awaiting_decision")


def _after_the_lease() -> timezone.datetime:
    return timezone.now() + timedelta(seconds=300 + 60)


def _message_ids(server) -> list[str]:
    return [r.json().get("headers", {}).get("Message-ID") for r in server.requests]


SEND_IN_A_WORKER = textwrap.dedent("""
    import sys
    import django
    django.setup()
    from apps.campaigns import services
    services.notification_send_email(notification_id=int(sys.argv[1]))
""")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.timeout(120)
def test_a_worker_killed_during_the_call_is_recovered_and_the_email_sent_once_more(sendgrid, make_campaign,
                                                                                   tmp_path):
    note = _note(make_campaign, "killed@example.com")
    conf = django_settings.DATABASES["default"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": f"postgres://{conf['USER']}@{conf['HOST']}:{conf['PORT']}/{conf['NAME']}",
           "SENDGRID_API_URL": sendgrid.url, "SENDGRID_API_KEY": KEY, "SENDGRID_FROM_EMAIL": FROM,
           "PUBLIC_BASE_URL": "https://ce.example.com"}
    sendgrid.hold()  # the provider call is in flight when the worker dies
    worker = ManagedProcess([sys.executable, "-c", SEND_IN_A_WORKER, str(note.pk)], env=env,
                            log_path=tmp_path / "worker.log", name="notification worker", process_group=False)
    with worker.start():
        sendgrid.wait_for_requests(1, timeout=60)
        os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: worker.returncode == -signal.SIGKILL, timeout=10, message="the worker died")
    sendgrid.release()
    stuck = Notification.objects.get(pk=note.pk)
    assert (stuck.email_status, stuck.email_attempts) == (EmailStatus.SENDING, 1)
    assert stuck.email_claim_token and stuck.email_claimed_at is not None

    # Inside the lease the claim may still be a live worker's: nothing is taken back or sent.
    assert services.notification_send_pending_emails() == 0
    assert Notification.objects.get(pk=note.pk).email_status == EmailStatus.SENDING
    assert len(sendgrid.requests) == 1

    later = _after_the_lease()
    assert services.notification_send_pending_emails(now=later) == 1
    assert services.notification_send_pending_emails(now=later) == 0
    note = Notification.objects.get(pk=note.pk)
    assert (note.email_status, note.email_attempts, note.email_claim_token) == (EmailStatus.SENT, 2, "")
    assert len(sendgrid.requests) == 2
    ids = _message_ids(sendgrid)
    assert ids[0] == ids[1] == services.notification_message_id(note)
    assert ids[0].startswith(f"<campaign-notification-{note.pk}.") and ids[0].endswith("@campaign-express.example>")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_late_success_of_a_lost_claim_marks_the_email_sent_and_the_sweep_does_not_resend(sendgrid, make_campaign):
    note = _note(make_campaign, "late@example.com")
    sendgrid.hold()

    def sweep_while_the_call_hangs():
        sendgrid.wait_for_requests(1)
        try:
            return services.notification_emails_recover_stale(now=_after_the_lease())  # presumed dead
        finally:
            sendgrid.release()

    sent, recovered = run_together([lambda: services.notification_send_email(notification_id=note.pk),
                                    sweep_while_the_call_hangs])
    assert (sent, recovered) == (EmailStatus.SENT, 1)
    assert Notification.objects.get(pk=note.pk).email_status == EmailStatus.SENT
    assert services.notification_send_pending_emails(now=_after_the_lease()) == 0
    assert len(sendgrid.requests) == 1


@pytest.mark.django_db
def test_a_lost_claim_cannot_overwrite_the_new_claims_outcome(sendgrid, make_campaign):
    note = _note(make_campaign, "overwrite@example.com")
    sendgrid.fail_next(503, {"errors": [{"message": "Service Unavailable", "field": None}]})
    Notification.objects.filter(pk=note.pk).update(email_status=EmailStatus.SENDING, email_claim_token="new-claim",
                                                   email_claimed_at=timezone.now(), email_attempts=2)
    # What the lost claim's worker would do with its answer: only rows still under its token change.
    assert Notification.objects.filter(pk=note.pk, email_status=EmailStatus.SENDING,
                                       email_claim_token="old-claim").update(email_status=EmailStatus.PENDING) == 0
    assert services.notification_emails_recover_stale() == 0  # the new claim is fresh
    assert Notification.objects.get(pk=note.pk).email_claim_token == "new-claim"
    assert sendgrid.requests == []


@pytest.mark.django_db
def test_claims_lost_too_often_are_failed_not_sent_again(sendgrid, make_campaign):
    note = _note(make_campaign, "crashy@example.com")
    old = timezone.now() - timedelta(hours=1)
    Notification.objects.filter(pk=note.pk).update(email_status=EmailStatus.SENDING, email_claim_token="c3",
                                                   email_claimed_at=old, email_attempts=3)
    assert services.notification_send_pending_emails(now=_after_the_lease()) == 0
    note = Notification.objects.get(pk=note.pk)
    assert note.email_status == EmailStatus.FAILED
    assert note.email_error == "worker lost during the provider call on 3 attempts; given up"
    assert sendgrid.requests == []


@pytest.mark.django_db
def test_a_row_stuck_sending_from_before_claims_were_timed_is_recovered(sendgrid, make_campaign):
    note = _note(make_campaign, "legacy@example.com")
    Notification.objects.filter(pk=note.pk).update(email_status=EmailStatus.SENDING, email_attempts=1)
    assert services.notification_send_pending_emails(now=_after_the_lease()) == 1
    note = Notification.objects.get(pk=note.pk)
    assert (note.email_status, note.email_attempts) == (EmailStatus.SENT, 2)
    assert len(sendgrid.requests) == 1
