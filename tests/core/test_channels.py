"""The one channel vocabulary (apps.core.channels): every slice's choices are a subset of it."""
from __future__ import annotations

import pytest

from apps.bidding import services as bidding_services
from apps.campaigns.models import ApprovalRule, Campaign
from apps.core import channels
from apps.core.channels import (
    BIDDABLE_CHANNELS,
    CampaignChannel,
    Channel,
    DeliveryChannel,
    LoyaltyChannel,
    SuppressionChannel,
)
from apps.loyalty.models import LoyaltyAccount
from apps.omnichannel.models import Activation, Contact, InboxMessage, SendLedger
from apps.suppression.models import SuppressionAudit, SuppressionEntry

SUBSETS = [CampaignChannel, DeliveryChannel, SuppressionChannel, LoyaltyChannel]


def test_the_stored_values_of_each_subset_are_fixed():
    # Changing one of these changes what the database holds: it needs a data migration, not an edit.
    assert CampaignChannel.values == [
        "display", "email", "sms", "whatsapp", "push", "in_app", "web", "in_store", "paid_media",
    ]
    assert DeliveryChannel.values == ["in_store", "push", "in_app", "sms", "email", "web", "paid_media"]
    assert SuppressionChannel.values == ["email", "sms", "push", "in_app", "all"]
    assert LoyaltyChannel.values == ["in_store", "app", "web", "drive_through"]
    assert BIDDABLE_CHANNELS == frozenset({"display"})


@pytest.mark.parametrize("subset", SUBSETS, ids=lambda s: s.__name__)
def test_a_subset_has_the_vocabularys_names_values_and_labels(subset):
    for member in subset:
        assert Channel[member.name].value == member.value
        assert Channel[member.name].label == member.label
        assert member == Channel[member.name]  # the same str: comparable across slices


def test_biddable_channels_are_campaign_channels():
    assert BIDDABLE_CHANNELS <= set(CampaignChannel.values)
    assert bidding_services.BIDDABLE_CHANNELS is channels.BIDDABLE_CHANNELS


def test_every_vocabulary_value_is_used_by_some_subset():
    used = set(BIDDABLE_CHANNELS).union(*(subset.values for subset in SUBSETS))
    assert used == set(Channel.values)


@pytest.mark.parametrize(
    ("field", "subset"),
    [
        (Campaign._meta.get_field("channels").base_field, CampaignChannel),
        (ApprovalRule._meta.get_field("channels").base_field, CampaignChannel),
        (Activation._meta.get_field("channel"), DeliveryChannel),
        (Contact._meta.get_field("preferred_channel"), DeliveryChannel),
        (InboxMessage._meta.get_field("channel"), DeliveryChannel),
        (SendLedger._meta.get_field("channel"), DeliveryChannel),
        (SuppressionEntry._meta.get_field("channel"), SuppressionChannel),
        (SuppressionAudit._meta.get_field("channel"), SuppressionChannel),
        (LoyaltyAccount._meta.get_field("preferred_channel"), LoyaltyChannel),
    ],
    ids=lambda v: getattr(v, "__name__", None) or f"{v.model.__name__}.{v.name}",
)
def test_model_fields_take_their_choices_from_a_subset(field, subset):
    assert field.choices == subset.choices
    assert field.max_length >= max(len(value) for value in subset.values)
