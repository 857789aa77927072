"""Each provider receives exactly what the real API expects; its answers drive the send ledger.

Sends run through the Celery task (eager: these tests are about the task's logic; a real worker is
in test_worker_e2e.py).
"""
from __future__ import annotations

import base64
import uuid

import pytest

from apps.omnichannel import services
from apps.omnichannel.models import Activation, Contact, SendLedger
from apps.omnichannel.services import sends
from apps.omnichannel.tasks import send_activation
from apps.suppression.selectors import is_suppressed

from .conftest import (
    APNS_JWT,
    APNS_TOPIC,
    FCM_PROJECT,
    FCM_TOKEN,
    SENDGRID_KEY,
    TWILIO_CALLBACK,
    TWILIO_SID,
    TWILIO_TOKEN,
)
from .fakes import fcm_error
from .helpers import make_offer, reachable_by

pytestmark = pytest.mark.django_db


def run_task(send_id: int) -> None:
    """Run the send task in-process. Not propagating makes an eager retry run again at once (the
    countdown is not waited for), as a worker would after the back-off."""
    from config.celery import app

    app.conf.task_eager_propagates = False
    try:
        send_activation.apply(args=[send_id])
    finally:
        app.conf.task_eager_propagates = True


def activate_and_send(user_id="u-1", **kwargs):
    kwargs.setdefault("title", "Pumpkin latte -20%")
    kwargs.setdefault("body", "Today only")
    activation = services.activation_create(user_id=user_id, **kwargs)
    send = SendLedger.objects.get(activation=activation)
    run_task(send.pk)
    send.refresh_from_db()
    activation.refresh_from_db()
    return activation, send


# --- exact requests --------------------------------------------------------------------------------------
def test_sendgrid_mail_send_request(providers):
    campaign, offer = make_offer()
    reachable_by("u-1", email="Ann@Example.com")
    activation, send = activate_and_send(offer_id=offer.pk, url="https://coffee.example.com/latte")
    [request] = providers.sendgrid.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.header("Authorization") == f"Bearer {SENDGRID_KEY}"
    assert request.header("Content-Type") == "application/json"
    assert request.json() == {
        "personalizations": [{
            "to": [{"email": "ann@example.com"}],
            "custom_args": {"activation_id": str(activation.pk), "user_id": "u-1", "offer_id": str(offer.pk),
                            "campaign_id": str(campaign.pk)},
        }],
        "from": {"email": "offers@example.com", "name": "Campaign Express"},
        "subject": "Pumpkin latte -20%",
        "content": [
            {"type": "text/plain", "value": "Today only\n\nhttps://coffee.example.com/latte"},
            {"type": "text/html", "value": '<p>Today only</p><p><a href="https://coffee.example.com/latte">'
                                           "Pumpkin latte -20%</a></p>"},
        ],
        "tracking_settings": {"click_tracking": {"enable": True, "enable_text": True}, "open_tracking": {"enable": True}},
    }
    assert (send.status, activation.status) == ("sent", "sent")
    assert send.provider_message_id and activation.email_stats.total_sent == 1


def test_twilio_messages_request(providers):
    reachable_by("u-1", phone="+14155550100")
    activation, send = activate_and_send(url="https://c.example/x")
    [request] = providers.twilio.requests
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    assert request.header("Authorization") == "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert request.form() == {"To": "+14155550100", "From": "+14155550000",
                              "Body": "Pumpkin latte -20%: Today only https://c.example/x", "StatusCallback": TWILIO_CALLBACK}
    assert send.status == "sent" and send.provider_message_id.startswith("SM")


def test_fcm_v1_request(providers):
    reachable_by("u-1", fcm_token="fcm-token-1")
    activation, send = activate_and_send(data={"screen": "offers", "from": "x", "google.c.a": "y"})
    [request] = providers.fcm.requests
    assert (request.method, request.path) == ("POST", f"/v1/projects/{FCM_PROJECT}/messages:send")
    assert request.header("Authorization") == f"Bearer {FCM_TOKEN}"
    assert request.json() == {"message": {
        "token": "fcm-token-1",
        "notification": {"title": "Pumpkin latte -20%", "body": "Today only"},
        "data": {"screen": "offers", "activation_id": str(activation.pk), "user_id": "u-1"},
    }}
    assert send.status == "sent" and send.provider_message_id.startswith(f"projects/{FCM_PROJECT}/messages/")


def test_apns_request(providers, settings):
    settings.FCM_ACCESS_TOKEN = ""
    reachable_by("u-1", apns_token="a1b2c3d4e5")
    activation, send = activate_and_send()
    [request] = providers.apns.requests
    assert (request.method, request.path) == ("POST", "/3/device/a1b2c3d4e5")
    assert request.header("authorization") == f"bearer {APNS_JWT}"
    assert request.header("apns-topic") == APNS_TOPIC
    assert request.header("apns-push-type") == "alert"
    assert request.header("apns-priority") == "10"
    assert str(uuid.UUID(request.header("apns-id"))) == send.provider_message_id
    assert request.json() == {"aps": {"alert": {"title": "Pumpkin latte -20%", "body": "Today only"}, "sound": "default"},
                              "activation_id": str(activation.pk), "user_id": "u-1"}
    assert send.status == "sent"


def test_apns_client_asks_for_http2():
    from apps.omnichannel.providers import base as p

    client = p._client("apns", http2=True)
    assert client._transport._pool._http2 is True  # needs h2; plain http:// test servers get HTTP/1.1


# --- retryable and permanent errors ----------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_5xx_and_429_are_retried(providers, status):
    reachable_by("u-1", email="ann@example.com")
    providers.sendgrid.fail_next(status, {"errors": [{"message": "try later", "field": None}]}, times=2)
    activation, send = activate_and_send()
    assert len(providers.sendgrid.requests) == 3
    assert (send.status, send.attempts, activation.status) == ("sent", 3, "sent")


def test_retries_are_bounded(providers, settings):
    settings.OMNICHANNEL_SEND_MAX_RETRIES = 2
    reachable_by("u-1", phone="+14155550100")
    providers.twilio.fail_next(503, {"code": 20503, "message": "Service unavailable", "status": 503}, times=5)
    activation, send = activate_and_send()
    assert len(providers.twilio.requests) == 3
    assert (send.status, send.attempts, send.error_code) == ("failed", 3, "20503")
    assert send.error.startswith("retries exhausted: ")
    assert activation.status == "failed"


def test_a_timeout_is_retryable(providers, settings):
    settings.OMNICHANNEL_PROVIDER_TIMEOUT_SECONDS = 0.2
    from apps.omnichannel.providers import base as p

    p._clients.clear()
    reachable_by("u-1", email="ann@example.com")
    activation = services.activation_create(user_id="u-1", title="Hi")
    send = SendLedger.objects.get(activation=activation)
    providers.sendgrid.hold()
    outcome = services.send_execute(send_id=send.pk, claim_token="run-1")
    providers.sendgrid.release()
    p._clients.clear()
    assert outcome.status == "queued" and outcome.retry_in is not None
    send.refresh_from_db()
    assert (send.status, send.error_code, send.claim_token) == ("queued", "timeout", "")


@pytest.mark.parametrize("status,body,code", [
    (400, {"errors": [{"message": "Invalid email", "field": "personalizations.0.to"}]}, "400"),
    (401, {"errors": [{"message": "bad key", "field": None}]}, "401"),
    (413, {"errors": [{"message": "too large", "field": None}]}, "413"),
])
def test_4xx_is_permanent(providers, status, body, code):
    reachable_by("u-1", email="ann@example.com")
    providers.sendgrid.fail_next(status, body)
    activation, send = activate_and_send()
    assert len(providers.sendgrid.requests) == 1
    assert (send.status, send.attempts, send.error_code, activation.status) == ("failed", 1, code, "failed")
    assert activation.reason == send.error


def test_fcm_unregistered_token_is_forgotten(providers):
    reachable_by("u-1", fcm_token="dead-token")
    providers.fcm.fail_next(404, fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"))
    _, send = activate_and_send()
    assert (send.status, send.error_code) == ("failed", "UNREGISTERED")
    assert len(providers.fcm.requests) == 1
    assert Contact.objects.get(user_id="u-1").fcm_token == ""


def test_fcm_unavailable_is_retried(providers):
    reachable_by("u-1", fcm_token="tok")
    providers.fcm.fail_next(503, fcm_error(503, "UNAVAILABLE", "The service is currently unavailable."))
    _, send = activate_and_send()
    assert (send.status, len(providers.fcm.requests)) == ("sent", 2)


@pytest.mark.parametrize("status,reason", [(410, "Unregistered"), (400, "BadDeviceToken")])
def test_apns_dead_tokens_are_forgotten(providers, settings, status, reason):
    settings.FCM_ACCESS_TOKEN = ""
    reachable_by("u-1", apns_token="deadbeef")
    providers.apns.fail_next(status, {"reason": reason, "timestamp": 1700000000000} if status == 410 else {"reason": reason})
    _, send = activate_and_send()
    assert (send.status, send.error_code) == ("failed", reason)
    assert Contact.objects.get(user_id="u-1").apns_token == ""


def test_twilio_unsubscribed_number_is_suppressed(providers):
    reachable_by("u-1", phone="+14155550100")
    providers.twilio.fail_next(400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                                     "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400})
    _, send = activate_and_send()
    assert (send.status, send.error_code) == ("failed", "21610")
    assert is_suppressed(identifier="+14155550100", channel="sms")


# --- suppression right before sending, and at most one send ------------------------------------------------
def test_suppressed_after_queueing_is_never_sent(providers):
    from apps.suppression.services import suppression_add

    reachable_by("u-1", email="ann@example.com")
    activation = services.activation_create(user_id="u-1", title="Hi")
    suppression_add(identifier="ANN@example.com", channel="email", reason="unsubscribe")
    run_task(SendLedger.objects.get(activation=activation).pk)
    send = SendLedger.objects.get(activation=activation)
    activation.refresh_from_db()
    assert providers.sendgrid.requests == []
    assert (send.status, send.attempts) == ("suppressed", 0)
    assert activation.status == "failed"
    assert activation.reason == "not sent: suppressed on email (ann@example.com)"


def test_consent_withdrawn_after_queueing_is_not_sent(providers):
    reachable_by("u-1", phone="+14155550100")
    activation = services.activation_create(user_id="u-1", title="Hi")
    services.contact_upsert(user_id="u-1", fields={"consent_sms": False})
    run_task(SendLedger.objects.get(activation=activation).pk)
    assert providers.twilio.requests == []
    assert SendLedger.objects.get(activation=activation).status == "failed"


def test_a_task_retried_after_a_crash_sends_once(providers, monkeypatch):
    """The worker crashes after the provider accepted the message (here: while recording the
    activation's new status); the broker redelivers the task; the message is not sent again."""
    reachable_by("u-1", email="ann@example.com")
    activation = services.activation_create(user_id="u-1", title="Hi")
    send = SendLedger.objects.get(activation=activation)
    real = sends._activation_transition

    def crash(*args, **kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(sends, "_activation_transition", crash)
    with pytest.raises(SystemExit):
        services.send_execute(send_id=send.pk, claim_token="task-1")
    monkeypatch.setattr(sends, "_activation_transition", real)
    # The crash rolled back the "sent" record too: the row still holds task-1's claim.
    send.refresh_from_db()
    assert (send.status, send.claim_token, len(providers.sendgrid.requests)) == ("sending", "task-1", 1)
    outcome = services.send_execute(send_id=send.pk, claim_token="task-1")  # the redelivered task
    assert outcome.detail == "outcome_unknown"
    assert len(providers.sendgrid.requests) == 1
    again = services.send_execute(send_id=send.pk, claim_token="task-1")
    assert again.detail == "already finished" and len(providers.sendgrid.requests) == 1


def test_a_duplicate_task_does_not_send_twice(providers):
    reachable_by("u-1", fcm_token="tok")
    activation = services.activation_create(user_id="u-1", title="Hi")
    send = SendLedger.objects.get(activation=activation)
    run_task(send.pk)
    run_task(send.pk)
    assert len(providers.fcm.requests) == 1
    assert Activation.objects.get(pk=activation.pk).status == "sent"


def test_the_ledger_refuses_a_second_send_of_an_activation_on_a_channel(providers):
    from django.db import IntegrityError, transaction

    reachable_by("u-1", email="ann@example.com")
    activation = services.activation_create(user_id="u-1", title="Hi")
    with pytest.raises(IntegrityError), transaction.atomic():
        SendLedger.objects.create(activation=activation, user_id="u-1", channel="email", provider="sendgrid",
                                  recipient="other@example.com")
