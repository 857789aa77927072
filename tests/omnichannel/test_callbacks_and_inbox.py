"""Twilio status callbacks (X-Twilio-Signature) and the in-app / web / in-store message fetches."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.omnichannel import services
from apps.omnichannel.models import Activation, InboxMessage, SendLedger
from apps.omnichannel.signatures import twilio_signature
from apps.suppression.selectors import is_suppressed

from .conftest import TWILIO_CALLBACK, TWILIO_SID, TWILIO_TOKEN
from .helpers import reachable_by
from .test_providers import activate_and_send, run_task

pytestmark = pytest.mark.django_db

CALLBACK_PATH = "/v1/webhooks/twilio/status"


def twilio_post(client, params: dict, *, token=TWILIO_TOKEN, url=TWILIO_CALLBACK):
    signature = twilio_signature(auth_token=token, url=url, params=list(params.items()))
    return client.post(CALLBACK_PATH, params, HTTP_X_TWILIO_SIGNATURE=signature)


def callback_params(send, status, **extra):
    params = {"AccountSid": TWILIO_SID, "ApiVersion": "2010-04-01", "From": "+14155550000", "To": send.recipient,
              "MessageSid": send.provider_message_id, "SmsSid": send.provider_message_id,
              "MessageStatus": status, "SmsStatus": status}
    params.update(extra)
    return params


@pytest.fixture
def sms_send(providers):
    reachable_by("u-1", phone="+14155550100")
    _, send = activate_and_send()
    assert send.status == "sent"
    return send


def test_signature_matches_twilios_documented_example():
    # The example of Twilio's "Validating requests" documentation (auth token 12345).
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
              ("From", "+12349013030"), ("To", "+18005551212")]
    assert twilio_signature(auth_token="12345", url="https://mycompany.com/myapp.php?foo=1&bar=2",
                            params=params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_delivered_callback(client, sms_send):
    response = twilio_post(client, callback_params(sms_send, "delivered"))
    assert response.status_code == 204
    assert SendLedger.objects.get(pk=sms_send.pk).status == "delivered"
    assert Activation.objects.get(pk=sms_send.activation_id).status == "delivered"


def test_undelivered_callback_with_unsubscribed_error(client, sms_send):
    response = twilio_post(client, callback_params(sms_send, "undelivered", ErrorCode="21610"))
    assert response.status_code == 204
    send = SendLedger.objects.get(pk=sms_send.pk)
    assert (send.status, send.error_code) == ("failed", "21610")
    assert Activation.objects.get(pk=sms_send.activation_id).status == "failed"
    assert is_suppressed(identifier="+14155550100", channel="sms")


def test_bad_signature_is_refused(client, sms_send):
    response = twilio_post(client, callback_params(sms_send, "delivered"), token="wrong-token")
    assert response.status_code == 401
    response = client.post(CALLBACK_PATH, callback_params(sms_send, "delivered"))
    assert response.status_code == 401
    assert SendLedger.objects.get(pk=sms_send.pk).status == "sent"


def test_the_signature_covers_every_parameter(client, sms_send):
    params = callback_params(sms_send, "failed")
    signature = twilio_signature(auth_token=TWILIO_TOKEN, url=TWILIO_CALLBACK, params=list(params.items()))
    response = client.post(CALLBACK_PATH, {**params, "MessageStatus": "delivered"}, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 401


def test_unknown_message_is_acknowledged(client, providers):
    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered", "AccountSid": TWILIO_SID}
    assert twilio_post(client, params).status_code == 204


def test_twilio_not_configured_refuses_callbacks(client, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    assert client.post(CALLBACK_PATH, {"MessageSid": "SM1", "MessageStatus": "delivered"}).status_code == 403


# --- stored messages ----------------------------------------------------------------------------------------
def test_in_app_message_is_delivered_when_the_app_fetches_it(integration_client, providers):
    reachable_by("u-1", consent_in_app=True)
    activation, send = activate_and_send(url="https://c.example/o", data={"screen": "offers"})
    assert (send.channel, send.status) == ("in_app", "sent")
    response = integration_client.get("/v1/channels/in-app/u-1")
    assert response.status_code == 200
    [message] = response.json()["messages"]
    assert (message["title"], message["body"], message["url"]) == ("Pumpkin latte -20%", "Today only", "https://c.example/o")
    assert message["data"] == {"screen": "offers", "activation_id": activation.pk, "offer_id": None}
    assert Activation.objects.get(pk=activation.pk).status == "delivered"
    assert SendLedger.objects.get(pk=send.pk).status == "delivered"
    assert integration_client.get("/v1/channels/in-app/u-2").json() == {"messages": []}
    assert integration_client.get("/v1/channels/web/u-1").json() == {"messages": []}


def test_web_offer(integration_client, providers):
    reachable_by("u-1", consent_web=True)
    activation, _ = activate_and_send()
    [message] = integration_client.get("/v1/channels/web/u-1").json()["messages"]
    assert message["activation_id"] == activation.pk and message["channel"] == "web"


def test_in_store_offer_goes_to_the_store_screens(integration_client, providers):
    reachable_by("u-1", consent_in_store=True, present_store_id="store-7",
                 present_until=timezone.now() + timedelta(minutes=30))
    activation, _ = activate_and_send()
    assert activation.channel == "in_store"
    assert integration_client.get("/v1/channels/in-store/store-8").json() == {"messages": []}
    [message] = integration_client.get("/v1/channels/in-store/store-7").json()["messages"]
    assert (message["user_id"], message["store_id"]) == ("u-1", "store-7")


def test_expired_messages_are_not_served(integration_client, providers):
    reachable_by("u-1", consent_in_app=True)
    activate_and_send()
    InboxMessage.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert integration_client.get("/v1/channels/in-app/u-1").json() == {"messages": []}


def test_message_fetches_need_the_integration_role(marketer_client):
    assert marketer_client.get("/v1/channels/in-app/u-1").status_code == 403


def test_inbox_send_runs_once_even_if_the_task_runs_twice(providers):
    reachable_by("u-1", consent_in_app=True)
    activation = services.activation_create(user_id="u-1", title="Hi")
    send = SendLedger.objects.get(activation=activation)
    run_task(send.pk)
    run_task(send.pk)
    assert InboxMessage.objects.filter(activation=activation).count() == 1
