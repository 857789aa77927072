"""The channel cascade of docs/RULES.md §5, consent and suppression at activation time."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.omnichannel import services
from apps.omnichannel.models import ActivationStatus, SendLedger
from apps.suppression.services import suppression_add

from .helpers import make_offer, reachable_by

pytestmark = pytest.mark.django_db


def activate(user_id="u-1", **kwargs):
    kwargs.setdefault("title", "Hello")
    return services.activation_create(user_id=user_id, **kwargs)


def trail(activation):
    return [(step["channel"], step["outcome"]) for step in activation.cascade]


def test_in_store_wins_while_the_user_is_present(providers):
    reachable_by("u-1", email="a@example.com", fcm_token="tok", consent_in_store=True, preferred_channel="email",
                 present_store_id="s-1", present_until=timezone.now() + timedelta(minutes=10))
    activation = activate()
    assert activation.channel == "in_store"
    send = SendLedger.objects.get(activation=activation)
    assert (send.provider, send.recipient) == ("inbox", "s-1")


def test_presence_expires(providers):
    reachable_by("u-1", consent_in_store=True, present_store_id="s-1",
                 present_until=timezone.now() - timedelta(minutes=1), consent_web=True)
    activation = activate()
    assert activation.channel == "web"
    assert activation.cascade[0] == {"channel": "in_store", "outcome": "skipped", "reason": "user is not present in a store"}


def test_preferred_channel_comes_second(providers):
    reachable_by("u-1", email="a@example.com", fcm_token="tok", phone="+14155550100", preferred_channel="sms")
    activation = activate()
    assert activation.channel == "sms"
    assert trail(activation) == [("in_store", "skipped"), ("sms", "chosen")]
    assert activation.cascade[1]["reason"] == "preferred channel"


def test_push_needs_a_token_then_in_app(providers):
    reachable_by("u-1", fcm_token="fcm-token-1", email="a@example.com")
    assert activate().channel == "push"
    reachable_by("u-2", consent_in_app=True, email="b@example.com")
    activation = activate("u-2")
    assert activation.channel == "in_app"
    assert activation.cascade[1] == {"channel": "push", "outcome": "skipped", "reason": "no push token"}


def test_fcm_first_then_apns(providers, settings):
    reachable_by("u-1", fcm_token="fcm-1", apns_token="abcd1234")
    assert SendLedger.objects.get(activation=activate()).provider == "fcm"
    settings.FCM_ACCESS_TOKEN = ""
    reachable_by("u-2", fcm_token="fcm-2", apns_token="abcd5678")
    send = SendLedger.objects.get(activation=activate("u-2"))
    assert (send.provider, send.recipient) == ("apns", "abcd5678")


def test_sms_then_email_then_web(providers):
    reachable_by("u-1", phone="+14155550100", email="a@example.com")
    assert activate().channel == "sms"
    reachable_by("u-2", email="b@example.com")
    assert activate("u-2").channel == "email"
    reachable_by("u-3", consent_web=True)
    assert activate("u-3").channel == "web"


def test_unconfigured_providers_are_skipped_not_faked(no_providers):
    reachable_by("u-1", fcm_token="tok", phone="+14155550100", email="a@example.com", consent_web=True)
    activation = activate()
    assert activation.channel == "web"
    reasons = {step["channel"]: step["reason"] for step in activation.cascade}
    assert reasons["push"] == "push provider for the user's token (FCM / APNs) is not configured"
    assert reasons["sms"] == "SMS provider (Twilio) is not configured"
    assert reasons["email"] == "email provider (SendGrid) is not configured"


def test_nothing_reachable_is_skipped_with_reasons_and_paid_media_is_left_to_the_dsp(providers):
    reachable_by("u-1")
    activation = activate()
    assert activation.status == ActivationStatus.SKIPPED
    assert activation.channel == ""
    assert trail(activation)[-1] == ("paid_media", "skipped")
    assert "paid_media: paid media retargeting is run by the DSP integration" in activation.reason
    assert not SendLedger.objects.filter(activation=activation).exists()


def test_no_consent_skips_the_channel(providers):
    reachable_by("u-1", email="a@example.com", consent_email=False, consent_web=True)
    activation = activate()
    assert activation.channel == "web"
    assert {s["channel"]: s["reason"] for s in activation.cascade}["email"] == "no consent for email"


def test_a_suppressed_address_moves_the_cascade_on(providers):
    reachable_by("u-1", phone="+14155550100", email="a@example.com")
    suppression_add(identifier="+1 415 555 0100", channel="sms", reason="unsubscribe")
    activation = activate()
    assert activation.channel == "email"
    assert {s["channel"]: s["reason"] for s in activation.cascade}["sms"] == "suppressed on sms (+14155550100)"


def test_a_user_suppressed_on_all_channels_gets_nothing(providers):
    reachable_by("u-1", phone="+14155550100", email="a@example.com", consent_in_app=True, consent_web=True)
    suppression_add(identifier="u-1", channel="all", reason="regulatory")
    activation = activate()
    assert activation.status == ActivationStatus.SKIPPED
    assert not SendLedger.objects.exists()


def test_requested_channels_limit_the_cascade(providers):
    reachable_by("u-1", phone="+14155550100", email="a@example.com")
    activation = activate(channels=["email"])
    assert activation.channel == "email"
    assert {s["channel"]: s["reason"] for s in activation.cascade}["sms"] == "not in the requested channels"


def test_campaign_channels_limit_the_cascade(providers):
    campaign, offer = make_offer(channels=["email"])
    reachable_by("u-1", phone="+14155550100", email="a@example.com")
    activation = activate(offer_id=offer.pk, title="")
    assert (activation.channel, activation.campaign_id, activation.title) == ("email", campaign.pk, offer.name)
    assert activation.url == "https://coffee.example.com/latte"


def test_one_registry_serves_the_cascade_and_the_send_path():
    """Every channel has a route and every provider a route can pick is one the send path can call."""
    from apps.omnichannel import providers
    from apps.omnichannel.models import Channel, Provider

    assert set(providers.CHANNELS) == set(Channel.values)
    assert set(providers.PROVIDERS) == set(Provider.values)
    for route in providers.CHANNELS.values():
        for spec in route.providers:
            assert providers.PROVIDERS[spec.name].send is spec.send
