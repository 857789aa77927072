"""The activation cascade uses a decision when no offer (and no title) is given."""
from __future__ import annotations

import pytest

from apps.omnichannel.models import Activation
from apps.rl.models import Decision
from tests.omnichannel.helpers import make_offer, reachable_by

pytestmark = pytest.mark.django_db(transaction=True)


def test_activation_without_an_offer_gets_one_from_a_decision_on_the_chosen_channel(integration_client):
    campaign, offer = make_offer(channels=("in_app", "email"))
    type(campaign).objects.filter(pk=campaign.pk).update(status="live")  # the campaigns slice owns the lifecycle
    reachable_by("u-act", consent_in_app=True)
    answer = integration_client.post("/v1/channels/activate", {"user_id": "u-act"}, format="json")
    assert answer.status_code in (200, 201, 202), answer.content
    activation = Activation.objects.get(user_id="u-act")
    decision = Decision.objects.get(decision_id=activation.data["decision_id"])
    assert (activation.channel, activation.offer_id, activation.title) == ("in_app", offer.pk, offer.name)
    assert (decision.channel, decision.offer_id, decision.status, decision.campaign_id) == (
        "in_app", str(offer.pk), "open", str(campaign.pk))
    [message] = integration_client.get("/v1/channels/in-app/u-act").json()["messages"]
    assert message["title"] == offer.name


def test_a_campaign_without_offers_cannot_be_decided(integration_client):
    campaign, offer = make_offer(channels=("in_app",))
    offer.delete()
    reachable_by("u-none", consent_in_app=True)
    answer = integration_client.post("/v1/channels/activate", {"user_id": "u-none", "campaign_id": campaign.pk},
                                     format="json")
    assert answer.status_code == 400 and answer.json()["field"] == "campaign_id"
    assert not Activation.objects.filter(user_id="u-none").exists() and not Decision.objects.exists()


def test_a_titled_message_without_an_offer_stays_a_plain_message(integration_client):
    reachable_by("u-plain", consent_in_app=True)
    answer = integration_client.post("/v1/channels/activate", {"user_id": "u-plain", "title": "Hello"}, format="json")
    assert answer.status_code in (200, 201, 202), answer.content
    assert Activation.objects.get(user_id="u-plain").offer_id is None and not Decision.objects.exists()


def test_no_live_offer_on_the_channel_asks_for_a_title(integration_client):
    reachable_by("u-empty", consent_in_app=True)
    answer = integration_client.post("/v1/channels/activate", {"user_id": "u-empty"}, format="json")
    assert answer.status_code == 400 and answer.json()["field"] == "title"
    assert "no live offer runs on channel 'in_app'" in answer.json()["detail"]
    assert not Activation.objects.filter(user_id="u-empty").exists() and not Decision.objects.exists()
