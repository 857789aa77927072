"""POST /v1/webhooks/sendgrid (signed Event Webhook) and the email analytics it feeds."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from apps.omnichannel import services
from apps.omnichannel.models import Activation, EmailEvent, EmailStats, SendGridBatch, SendLedger
from apps.suppression.selectors import is_suppressed

from .conftest import new_signing_key
from .helpers import make_offer, reachable_by
from .test_providers import activate_and_send

pytestmark = pytest.mark.django_db

URL = "/v1/webhooks/sendgrid"
SIG = "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE"
TS = "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP"
REPO_ROOT = Path(__file__).resolve().parents[2]


def sg_event(send: SendLedger, kind: str, **extra) -> dict:
    """One event as SendGrid's Event Webhook posts it (custom args at top level)."""
    event = {
        "email": send.recipient, "timestamp": int(time.time()), "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": kind, "category": ["offers"], "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"{send.provider_message_id}.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
        "activation_id": str(send.activation_id), "user_id": send.user_id,
    }
    activation = send.activation  # every custom arg of the mail/send request comes back
    if activation.offer_id:
        event["offer_id"] = str(activation.offer_id)
    if activation.campaign_id:
        event["campaign_id"] = str(activation.campaign_id)
    if kind == "delivered":
        event["response"] = "250 OK"
    if kind in ("open", "click"):
        event.update({"useragent": "Mozilla/5.0", "ip": "255.255.255.255"})
    if kind == "click":
        event["url"] = "https://coffee.example.com/latte"
    event.update(extra)
    return event


def post(client, events, key=None, *, timestamp=None, body=None):
    raw = body if body is not None else json.dumps(events).encode()
    headers = {}
    if key is not None:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        headers = {SIG: key.sign(ts, raw), TS: ts}
    return client.post(URL, data=raw, content_type="application/json", **headers)


@pytest.fixture
def email_send(providers):
    _, offer = make_offer()
    reachable_by("u-1", email="ann@example.com")
    activation, send = activate_and_send(offer_id=offer.pk)
    assert send.status == "sent"
    return send


def stats(send) -> dict:
    from apps.omnichannel.selectors import email_analytics_for_activation

    return email_analytics_for_activation(activation_id=send.activation_id)


def test_signed_batch_is_accepted_and_counted(client, email_send, sendgrid_signing_key,
                                              django_capture_on_commit_callbacks):
    events = [sg_event(email_send, "processed"), sg_event(email_send, "delivered"),
              sg_event(email_send, "open"), sg_event(email_send, "open"), sg_event(email_send, "open"),
              sg_event(email_send, "click"), sg_event(email_send, "click")]
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, events, sendgrid_signing_key)
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == 7
    assert SendGridBatch.objects.get().signature_verified is True
    numbers = stats(email_send)
    assert {k: numbers[k] for k in ("total_sent", "delivered", "opens", "unique_opens", "clicks", "unique_clicks",
                                    "bounces")} == {"total_sent": 1, "delivered": 1, "opens": 3, "unique_opens": 1,
                                                    "clicks": 2, "unique_clicks": 1, "bounces": 0}
    assert (numbers["open_rate"], numbers["click_rate"], numbers["bounce_rate"]) == (1.0, 1.0, 0.0)
    assert Activation.objects.get(pk=email_send.activation_id).status == "delivered"
    assert SendLedger.objects.get(pk=email_send.pk).status == "delivered"


def test_tampered_body_is_refused_and_counts_nothing(client, email_send, sendgrid_signing_key,
                                                     django_capture_on_commit_callbacks):
    events = [sg_event(email_send, "open")]
    raw = json.dumps(events).encode()
    ts = str(int(time.time()))
    signature = sendgrid_signing_key.sign(ts, raw)
    tampered = raw.replace(b'"open"', b'"click"')
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, data=tampered, content_type="application/json", **{SIG: signature, TS: ts})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_signature", "detail": "signature does not match the body and timestamp"}
    assert SendGridBatch.objects.count() == 0 and EmailEvent.objects.count() == 0
    assert stats(email_send)["clicks"] == 0 and stats(email_send)["opens"] == 0


def test_old_timestamp_is_refused(client, email_send, sendgrid_signing_key, settings):
    settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS = 300
    response = post(client, [sg_event(email_send, "open")], sendgrid_signing_key, timestamp=int(time.time()) - 301)
    assert response.status_code == 401
    assert "older than 300 s" in response.json()["detail"]
    assert SendGridBatch.objects.count() == 0


def test_unsigned_or_otherwise_signed_is_refused(client, email_send, sendgrid_signing_key):
    assert post(client, [sg_event(email_send, "open")]).status_code == 401
    assert post(client, [sg_event(email_send, "open")], new_signing_key()).status_code == 401
    response = client.post(URL, data=b"[]", content_type="application/json", **{SIG: "not base64!", TS: str(int(time.time()))})
    assert response.status_code == 401
    assert SendGridBatch.objects.count() == 0


def test_a_replayed_batch_counts_once(client, email_send, sendgrid_signing_key, django_capture_on_commit_callbacks):
    events = [sg_event(email_send, "delivered"), sg_event(email_send, "open"), sg_event(email_send, "click")]
    raw = json.dumps(events).encode()
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, None, sendgrid_signing_key, body=raw).status_code == 202
    assert SendGridBatch.objects.count() == 2
    assert [b.new_events for b in SendGridBatch.objects.order_by("id")] == [3, 0]
    numbers = stats(email_send)
    assert (numbers["delivered"], numbers["opens"], numbers["unique_opens"], numbers["clicks"]) == (1, 1, 1, 1)
    assert EmailEvent.objects.count() == 3


def test_processing_a_batch_again_changes_nothing(client, email_send, sendgrid_signing_key,
                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, [sg_event(email_send, "open")], sendgrid_signing_key)
    batch = SendGridBatch.objects.get()
    assert services.sendgrid_batch_process(batch_id=batch.pk) == 0
    assert stats(email_send)["opens"] == 1


@pytest.mark.parametrize("kind,extra,reason", [
    ("unsubscribe", {}, "unsubscribe"),
    ("group_unsubscribe", {"asm_group_id": 10}, "unsubscribe"),
    ("spamreport", {}, "spam_report"),
    ("bounce", {"type": "bounce", "reason": "550 5.1.1 The email account that you tried to reach does not exist",
                "status": "5.1.1", "bounce_classification": "Invalid Address"}, "bounce"),
])
def test_suppressing_events(client, email_send, sendgrid_signing_key, django_capture_on_commit_callbacks, kind, extra,
                            reason):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, [sg_event(email_send, kind, **extra)], sendgrid_signing_key).status_code == 202
    assert is_suppressed(identifier="ann@example.com", channel="email")
    from apps.suppression.models import SuppressionEntry

    entry = SuppressionEntry.objects.get(identifier="ann@example.com")
    assert (entry.channel, entry.reason, entry.source) == ("email", reason, f"sendgrid:{kind}")
    counter = {"unsubscribe": "unsubscribes", "group_unsubscribe": "unsubscribes", "spamreport": "spam_reports",
               "bounce": "bounces"}[kind]
    assert stats(email_send)[counter] == 1


def test_blocked_bounce_counts_but_does_not_suppress(client, email_send, sendgrid_signing_key,
                                                     django_capture_on_commit_callbacks):
    event = sg_event(email_send, "bounce", type="blocked", reason="unable to get mx info", bounce_classification="Unclassified")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, [event], sendgrid_signing_key)
    assert not is_suppressed(identifier="ann@example.com", channel="email")
    numbers = stats(email_send)
    assert (numbers["bounces"], numbers["bounce_rate"]) == (1, 1.0)
    assert Activation.objects.get(pk=email_send.activation_id).status == "failed"
    assert SendLedger.objects.get(pk=email_send.pk).error_code == "bounce"


def test_events_without_custom_args_are_matched_by_message_id(client, email_send, sendgrid_signing_key,
                                                              django_capture_on_commit_callbacks):
    event = sg_event(email_send, "open")
    del event["activation_id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, [event], sendgrid_signing_key)
    assert response.status_code == 202
    assert SendGridBatch.objects.get().signature_verified is True
    assert stats(email_send)["unique_opens"] == 1


def test_a_lost_send_is_proven_delivered_by_sendgrid(client, providers, sendgrid_signing_key,
                                                     django_capture_on_commit_callbacks):
    reachable_by("u-1", email="ann@example.com")
    activation = services.activation_create(user_id="u-1", title="Hi")
    send = SendLedger.objects.get(activation=activation)
    SendLedger.objects.filter(pk=send.pk).update(status="sending", claim_token="t-1")
    services.send_execute(send_id=send.pk, claim_token="t-1")  # the redelivered task: outcome unknown
    send.refresh_from_db()
    assert (send.status, send.error_code) == ("failed", "outcome_unknown")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, [sg_event(send, "delivered")], sendgrid_signing_key)
    assert SendLedger.objects.get(pk=send.pk).status == "delivered"
    assert Activation.objects.get(pk=activation.pk).status == "delivered"


def test_malformed_bodies_are_400(client, sendgrid_signing_key):
    # Signed properly: the signature is checked first, then the body is parsed.
    response = post(client, None, sendgrid_signing_key, body=b"{not json")
    assert response.status_code == 400 and response.json()["detail"] == "body is not JSON"
    response = post(client, None, sendgrid_signing_key, body=b'{"event": "open"}')
    assert response.status_code == 400 and response.json()["detail"] == "body must be a JSON array of event objects"
    assert SendGridBatch.objects.count() == 0


# --- no verification key -----------------------------------------------------------------------------------
def test_without_a_verification_key_nothing_is_accepted(client, email_send, settings,
                                                        django_capture_on_commit_callbacks):
    """Unsigned events would let anyone plant permanent suppressions and fake opens: 403, nothing stored."""
    settings.SENDGRID_WEBHOOK_VERIFICATION_KEY = ""
    settings.SENDGRID_WEBHOOK_ALLOW_UNSIGNED = False
    events = [sg_event(email_send, "unsubscribe"), sg_event(email_send, "open"), sg_event(email_send, "click")]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        unsigned = post(client, events)
        signed = post(client, events, new_signing_key())  # a signature nobody can check is no better
    for response in (unsigned, signed):
        assert response.status_code == 403
        assert response.json() == {
            "error": "not_configured",
            "detail": "SendGrid events are not accepted: SENDGRID_WEBHOOK_VERIFICATION_KEY is not configured"}
    assert callbacks == []
    assert SendGridBatch.objects.count() == 0 and EmailEvent.objects.count() == 0
    assert not is_suppressed(identifier="ann@example.com", channel="email")
    numbers = stats(email_send)
    assert (numbers["opens"], numbers["clicks"], numbers["unsubscribes"]) == (0, 0, 0)


def test_unsigned_events_are_accepted_only_with_the_development_flag(client, email_send, settings,
                                                                     django_capture_on_commit_callbacks):
    settings.SENDGRID_WEBHOOK_VERIFICATION_KEY = ""
    settings.SENDGRID_WEBHOOK_ALLOW_UNSIGNED = True
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, [sg_event(email_send, "open")])
    assert response.status_code == 202, response.content
    assert SendGridBatch.objects.get().signature_verified is False
    assert stats(email_send)["unique_opens"] == 1


def test_a_configured_key_is_checked_even_with_the_development_flag(client, email_send, sendgrid_signing_key,
                                                                     settings):
    settings.SENDGRID_WEBHOOK_ALLOW_UNSIGNED = True
    assert post(client, [sg_event(email_send, "open")]).status_code == 401
    response = post(client, [sg_event(email_send, "open")], new_signing_key())
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_signature", "detail": "signature does not match the body and timestamp"}
    assert SendGridBatch.objects.count() == 0


def _load_settings(**environ) -> subprocess.CompletedProcess:
    """Load the Django settings in a fresh interpreter with ``environ`` on top of this one's."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **environ}
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); print('settings loaded')"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_production_refuses_to_start_with_unsigned_events_allowed():
    production = {"CAMPAIGN_EXPRESS_ENV": "production", "DJANGO_SECRET_KEY": "a-real-secret-for-this-test",
                  "DJANGO_ALLOWED_HOSTS": "ce.example.com", "SENDGRID_API_KEY": "",
                  "SENDGRID_WEBHOOK_VERIFICATION_KEY": ""}
    loaded = _load_settings(**production, SENDGRID_WEBHOOK_ALLOW_UNSIGNED="false")
    assert loaded.returncode == 0, loaded.stderr
    assert "settings loaded" in loaded.stdout
    refused = _load_settings(**production, SENDGRID_WEBHOOK_ALLOW_UNSIGNED="true")
    assert refused.returncode != 0 and "settings loaded" not in refused.stdout
    assert ("ImproperlyConfiguredEnv: SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true is refused when "
            "CAMPAIGN_EXPRESS_ENV=production") in refused.stderr
    # Outside production the flag is allowed (for local development against SendGrid's test events).
    development = _load_settings(CAMPAIGN_EXPRESS_ENV="development", SENDGRID_WEBHOOK_ALLOW_UNSIGNED="true")
    assert development.returncode == 0, development.stderr


def test_a_malformed_verification_key_stops_the_process_naming_the_variable():
    """A key that does not load would answer every SendGrid post with a 500: settings refuse it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    loaded = _load_settings(SENDGRID_WEBHOOK_VERIFICATION_KEY=new_signing_key().public_b64)
    assert loaded.returncode == 0, loaded.stderr
    for key, why in [("not-a-key", "is not a base64 DER public key"),
                     (base64.b64encode(p384).decode(), "must be an ECDSA P-256 public key")]:
        refused = _load_settings(SENDGRID_WEBHOOK_VERIFICATION_KEY=key)
        assert refused.returncode != 0 and "settings loaded" not in refused.stdout
        assert f"ImproperlyConfiguredEnv: SENDGRID_WEBHOOK_VERIFICATION_KEY {why}" in refused.stderr


# --- analytics API -----------------------------------------------------------------------------------------
def test_email_analytics_endpoints(client, marketer_client, integration_client, plain_client, providers,
                                   sendgrid_signing_key, django_capture_on_commit_callbacks):
    campaign, offer = make_offer()
    sends = []
    for n in range(4):
        reachable_by(f"u-{n}", email=f"user{n}@example.com")
        sends.append(activate_and_send(f"u-{n}", offer_id=offer.pk)[1])
    reachable_by("u-x", email="x@example.com")
    no_campaign, _ = activate_and_send("u-x", title="no campaign")
    events = [sg_event(sends[0], "open"), sg_event(sends[0], "open"), sg_event(sends[1], "open"),
              sg_event(sends[0], "click"), sg_event(sends[3], "bounce", type="bounce")]
    with django_capture_on_commit_callbacks(execute=True):
        post(client, events, sendgrid_signing_key)
    detail = marketer_client.get(f"/v1/channels/email/analytics/{sends[0].activation_id}")
    assert detail.status_code == 200
    assert detail.json()["opens"] == 2 and detail.json()["unique_opens"] == 1
    listing = marketer_client.get(f"/v1/channels/email/analytics?campaign_id={campaign.pk}").json()
    assert listing["count"] == 4
    totals = listing["totals"]
    assert {k: totals[k] for k in ("total_sent", "opens", "unique_opens", "unique_clicks", "bounces", "activations")} == {
        "total_sent": 4, "opens": 3, "unique_opens": 2, "unique_clicks": 1, "bounces": 1, "activations": 4}
    assert (totals["open_rate"], totals["click_rate"], totals["bounce_rate"]) == (0.5, 0.25, 0.25)
    assert marketer_client.get("/v1/channels/email/analytics").json()["count"] == 5
    assert no_campaign.campaign_id is None
    from apps.omnichannel.selectors import email_analytics_by_campaign

    by_campaign = {row["campaign_id"]: row for row in email_analytics_by_campaign()}
    assert by_campaign[campaign.pk]["open_rate"] == 0.5 and by_campaign[None]["total_sent"] == 1
    assert plain_client.get("/v1/channels/email/analytics").status_code == 403
    assert integration_client.get(f"/v1/channels/email/analytics/{sends[0].activation_id}").status_code == 403
    assert marketer_client.get("/v1/channels/email/analytics/999999").status_code == 404
    assert marketer_client.get("/v1/channels/email/analytics?campaign_id=x").status_code == 400
    assert EmailStats.objects.count() == 5
