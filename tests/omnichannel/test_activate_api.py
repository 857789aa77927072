"""POST /v1/channels/activate and GET /v1/channels/activations/{id}."""
from __future__ import annotations

import pytest

from apps.omnichannel.models import Activation, SendLedger

from .helpers import make_offer, reachable_by

pytestmark = pytest.mark.django_db

URL = "/v1/channels/activate"


def test_roles(plain_client, marketer_client, providers):
    body = {"user_id": "u-1", "title": "Hi"}
    assert plain_client.post(URL, body, format="json").status_code == 403
    assert marketer_client.post(URL, body, format="json").status_code == 403
    assert Activation.objects.count() == 0


def test_activation_is_queued_and_sent_after_commit(integration_client, providers, django_capture_on_commit_callbacks):
    _, offer = make_offer()
    reachable_by("u-1", email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = integration_client.post(URL, {"user_id": "u-1", "offer_id": offer.pk, "body": "Today only"},
                                           format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["channel"], body["title"]) == ("queued", "email", "Pumpkin latte -20%")
    assert providers.sendgrid.requests == []  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()
    assert len(providers.sendgrid.requests) == 1
    activation = Activation.objects.get(pk=body["activation_id"])
    assert activation.status == "sent"
    detail = integration_client.get(f"/v1/channels/activations/{activation.pk}").json()
    assert [(t["from_status"], t["to_status"]) for t in detail["transitions"]] == [("", "queued"), ("queued", "sent")]
    assert detail["sends"][0]["status"] == "sent" and detail["sends"][0]["attempts"] == 1


def test_bad_input_names_the_field(integration_client, providers):
    response = integration_client.post(URL, {"user_id": "u-1"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "title"
    response = integration_client.post(URL, {"user_id": "u-1", "title": "x", "channels": ["fax"]}, format="json")
    assert response.status_code == 400 and "channels" in response.json()["fields"]
    response = integration_client.post(URL, {"user_id": "u-1", "offer_id": 999999}, format="json")
    assert response.status_code == 404 and response.json()["field"] == "offer_id"
    response = integration_client.post(URL, {"user_id": "has space", "title": "x"}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "user_id"
    assert Activation.objects.count() == 0


def test_unknown_or_mismatched_offer_and_campaign_are_refused_naming_the_field(integration_client, providers):
    """The offer and campaign are read through the campaigns slice's selectors (``offer_get_or_none``)."""
    campaign, offer = make_offer()
    other, _ = make_offer()
    answers = [integration_client.post(URL, {"user_id": "u-1", **body}, format="json") for body in (
        {"offer_id": 999999},
        {"campaign_id": 999999, "title": "Hi"},
        {"offer_id": offer.pk, "campaign_id": other.pk},
    )]
    assert [(answer.status_code, answer.json()) for answer in answers] == [
        (404, {"error": "not_found", "detail": "offer 999999 does not exist", "field": "offer_id"}),
        (404, {"error": "not_found", "detail": "campaign 999999 does not exist", "field": "campaign_id"}),
        (400, {"error": "invalid", "detail": f"offer {offer.pk} does not belong to campaign {other.pk}",
               "field": "offer_id"}),
    ]
    assert Activation.objects.count() == 0
    reachable_by("u-1", email="ann@example.com")
    response = integration_client.post(URL, {"user_id": "u-1", "offer_id": offer.pk, "campaign_id": campaign.pk},
                                       format="json")
    assert response.status_code == 201 and Activation.objects.get().campaign_id == campaign.pk


def test_skipped_when_no_channel_reaches_the_user(integration_client, no_providers):
    reachable_by("u-1", email="ann@example.com")
    response = integration_client.post(URL, {"user_id": "u-1", "title": "Hi"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "skipped" and body["channel"] == ""
    assert "email: email provider (SendGrid) is not configured" in body["reason"]
    assert not SendLedger.objects.exists()


def test_idempotency_key_makes_a_repeat_return_the_first_answer(integration_client, providers,
                                                                django_capture_on_commit_callbacks):
    reachable_by("u-1", email="ann@example.com")
    body = {"user_id": "u-1", "title": "Hi"}
    with django_capture_on_commit_callbacks(execute=True):
        first = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    with django_capture_on_commit_callbacks(execute=True):
        again = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Activation.objects.count() == 1
    assert len(providers.sendgrid.requests) == 1
    conflict = integration_client.post(URL, {**body, "title": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert conflict.status_code == 409 and conflict.json()["field"] == "Idempotency-Key"
    other_key = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert other_key.status_code == 201 and Activation.objects.count() == 2


def test_marketers_read_activations(marketer_client, integration_client, providers):
    reachable_by("u-1", email="ann@example.com")
    activation_id = integration_client.post(URL, {"user_id": "u-1", "title": "Hi"}, format="json").json()["activation_id"]
    response = marketer_client.get(f"/v1/channels/activations/{activation_id}")
    assert response.status_code == 200 and response.json()["channel"] == "email"
    assert marketer_client.get("/v1/channels/activations/999999").status_code == 404


def test_contacts_api(integration_client, marketer_client):
    url = "/v1/channels/contacts/u-7"
    assert integration_client.get(url).status_code == 404
    response = integration_client.put(url, {"email": "Bob@Example.com", "phone": "+44 20 7946 0958",
                                            "consent_email": True, "preferred_channel": "email"}, format="json")
    assert response.status_code == 200, response.content
    assert integration_client.get(url).json() == response.json()
    body = response.json()
    assert (body["email"], body["phone"], body["consent_email"], body["consent_sms"]) == (
        "bob@example.com", "+442079460958", True, False)
    response = integration_client.put(url, {"phone": ""}, format="json")
    assert response.json()["phone"] == "" and response.json()["email"] == "bob@example.com"
    bad = integration_client.put(url, {"phone": "12"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "phone"
    bad = integration_client.put(url, {"preferred_channel": "fax"}, format="json")
    assert bad.status_code == 400
    assert marketer_client.get(url).status_code == 403
