from __future__ import annotations

from rest_framework import serializers

from apps.core.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictDateTimeField,
    StrictEmailField,
    StrictIntegerField,
    StrictRegexField,
    StrictURLField,
)
from apps.core.filters import FilterParams
from apps.core.identifiers import USER_ID_MAX_LENGTH, USER_ID_PATTERN
from apps.recommendations.selectors import STRATEGY_NAMES as RECOMMENDATION_STRATEGIES

from ..models import Activation, ActivationTransition, Channel, Contact, InboxMessage, SendLedger


class ContactIn(serializers.Serializer):
    """Any subset of the contact's fields; an empty string clears a value."""

    email = StrictEmailField(max_length=320, required=False, allow_blank=True)
    phone = StrictCharField(max_length=32, required=False, allow_blank=True)
    fcm_token = StrictCharField(max_length=512, required=False, allow_blank=True)
    apns_token = StrictCharField(max_length=200, required=False, allow_blank=True)
    consent_email = StrictBooleanField(required=False)
    consent_sms = StrictBooleanField(required=False)
    consent_push = StrictBooleanField(required=False)
    consent_in_app = StrictBooleanField(required=False)
    consent_web = StrictBooleanField(required=False)
    consent_in_store = StrictBooleanField(required=False)
    preferred_channel = serializers.ChoiceField(choices=Channel.choices, required=False, allow_blank=True)
    present_store_id = StrictCharField(max_length=64, required=False, allow_blank=True)
    present_until = StrictDateTimeField(required=False, allow_null=True)


class ContactOut(serializers.ModelSerializer):
    present = serializers.SerializerMethodField()

    class Meta:
        model = Contact
        fields = ["user_id", "email", "phone", "fcm_token", "apns_token", "consent_email", "consent_sms",
                  "consent_push", "consent_in_app", "consent_web", "consent_in_store", "preferred_channel",
                  "present_store_id", "present_until", "present", "created_at", "updated_at"]

    def get_present(self, contact: Contact) -> bool:
        from django.utils import timezone

        return bool(contact.present_store_id and contact.present_until and contact.present_until > timezone.now())


class ActivateIn(serializers.Serializer):
    user_id = StrictRegexField(USER_ID_PATTERN, max_length=USER_ID_MAX_LENGTH, help_text="No spaces or control characters",
                               error_messages={"invalid": "user_id must not contain spaces or control characters."})
    title = StrictCharField(max_length=200, required=False, allow_blank=True, default="",
                                  help_text="Subject / notification title; default: the offer's name. With neither "
                                            "offer_id nor title, a decision (/v1/decisions) chooses the offer")
    body = StrictCharField(max_length=5000, required=False, allow_blank=True, default="")
    url = StrictURLField(max_length=500, required=False, allow_blank=True, default="",
                               help_text="Where the message leads; default: the offer's landing page")
    data = serializers.DictField(required=False, default=dict, help_text="Extra key/values for the app")
    campaign_id = StrictIntegerField(required=False, allow_null=True, default=None)
    offer_id = StrictIntegerField(required=False, allow_null=True, default=None)
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices), required=False,
                                     allow_empty=False, min_length=1, help_text="Limit the cascade to these channels")
    recommend = serializers.ChoiceField(
        choices=RECOMMENDATION_STRATEGIES, required=False, allow_blank=True, default="",
        help_text="Instead of a fixed offer, send the best catalogue item for this user by this "
                  "recommendation strategy (title: the item's name, body: its reason, data.item_id)")


class SendOut(serializers.ModelSerializer):
    class Meta:
        model = SendLedger
        fields = ["id", "channel", "provider", "recipient", "status", "attempts", "provider_message_id",
                  "error_code", "error", "created_at", "sent_at", "delivered_at"]


class TransitionOut(serializers.ModelSerializer):
    class Meta:
        model = ActivationTransition
        fields = ["from_status", "to_status", "reason", "source", "at"]


class ActivationOut(serializers.ModelSerializer):
    activation_id = serializers.IntegerField(source="pk")

    class Meta:
        model = Activation
        fields = ["activation_id", "user_id", "campaign_id", "offer_id", "trigger", "channel", "status", "reason",
                  "title", "body", "url", "data", "cascade", "created_at", "sent_at", "delivered_at"]


class ActivationDetailOut(ActivationOut):
    sends = SendOut(many=True)
    transitions = TransitionOut(many=True)

    class Meta(ActivationOut.Meta):
        fields = ActivationOut.Meta.fields + ["sends", "transitions"]


class InboxMessageOut(serializers.ModelSerializer):
    message_id = serializers.IntegerField(source="pk")

    class Meta:
        model = InboxMessage
        fields = ["message_id", "activation_id", "user_id", "channel", "store_id", "title", "body", "url", "data",
                  "created_at", "expires_at"]


class SurfaceItemOut(serializers.Serializer):
    item_id = serializers.CharField()
    name = serializers.CharField()
    price = serializers.CharField(allow_null=True)
    score = serializers.FloatField()
    reason = serializers.CharField()


class InboxOut(serializers.Serializer):
    messages = InboxMessageOut(many=True)
    recommendations = SurfaceItemOut(many=True, required=False,
                                     help_text="With ?recommendations=N: the user's top N catalogue items")


class EmailAnalyticsFilters(FilterParams):
    campaign_id = serializers.IntegerField(required=False, min_value=1, max_value=2_147_483_647,
                                           help_text="Only this campaign's activations")


class _EmailCounters(serializers.Serializer):
    """SendGrid counters and rates: of one activation, or summed over many."""

    total_sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    opens = serializers.IntegerField()
    unique_opens = serializers.IntegerField()
    clicks = serializers.IntegerField()
    unique_clicks = serializers.IntegerField()
    bounces = serializers.IntegerField()
    spam_reports = serializers.IntegerField()
    unsubscribes = serializers.IntegerField()
    dropped = serializers.IntegerField()
    deferred = serializers.IntegerField()
    open_rate = serializers.FloatField()
    click_rate = serializers.FloatField()
    bounce_rate = serializers.FloatField()


class _EmailActivation(serializers.Serializer):
    activation_id = serializers.IntegerField()
    campaign_id = serializers.IntegerField(allow_null=True)
    offer_id = serializers.IntegerField(allow_null=True)
    user_id = serializers.CharField()
    status = serializers.CharField()


class EmailAnalyticsOut(_EmailActivation, _EmailCounters):
    """One email activation and its counters."""


class EmailAnalyticsTotalsOut(_EmailCounters):
    """The counters summed over every matching activation, and how many there are."""

    activations = serializers.IntegerField()


class EmailAnalyticsPageOut(serializers.Serializer):
    """One page of per-activation rows, with the totals over every matching activation."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = EmailAnalyticsOut(many=True)
    totals = EmailAnalyticsTotalsOut()


class IngestOut(serializers.Serializer):
    """What ingest answers (and replays, with duplicate=true, when the caller sends the same event again)."""

    event_id = serializers.CharField()
    accepted = serializers.BooleanField()
    duplicate = serializers.BooleanField()
    source = serializers.CharField()
    event_type = serializers.CharField()
    user_id = serializers.CharField(allow_null=True)
    device_id = serializers.CharField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    activation = serializers.DictField(help_text="triggered, reason, activation_id, status, channel")
    loyalty = serializers.DictField(help_text="relevant, stars_earned, new_balance, tier, tier_changed")
    interactions = serializers.IntegerField(help_text="Interactions recorded for recommendations")


class SourceOut(serializers.Serializer):
    source = serializers.CharField()
    enabled = serializers.BooleanField()
    disabled_by_env = serializers.BooleanField()
    note = serializers.CharField()


class ErrorOut(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
