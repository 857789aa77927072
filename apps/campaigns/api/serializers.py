"""Shapes of the campaigns API. Serializers only check types and shapes; the rules (who may do
what, in which state, with which values) are in ``apps.campaigns.services``."""
from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from apps.campaigns.countries import normalise_country
from apps.core import fields
from apps.core.filters import FilterParams
from apps.campaigns.models import CampaignStatus, CampaignTransition, Channel, CreativeFormat, DeviceType, Offer


class TargetingSerializer(serializers.Serializer):
    """Who a campaign reaches; an empty list means "any"."""

    countries = serializers.ListField(
        child=fields.StrictCharField(max_length=3), source="target_countries", required=False,
        help_text="ISO 3166-1 codes; alpha-2 (US) is accepted and stored as alpha-3 (USA), as OpenRTB sends it",
    )
    device_types = serializers.ListField(
        child=serializers.ChoiceField(choices=DeviceType.choices), source="target_device_types", required=False
    )
    segments = serializers.ListField(
        child=fields.StrictIntegerField(min_value=0), source="target_segments", required=False,
        help_text="Audience segment ids",
    )

    def validate_countries(self, value: list[str]) -> list[str]:
        codes = []
        for code in value:
            normalised = normalise_country(code)
            if normalised is None:
                raise serializers.ValidationError(f"{code!r} is not an ISO 3166-1 country code (e.g. USA or US).")
            codes.append(normalised)
        return codes


class OfferSerializer(serializers.ModelSerializer):
    format = serializers.ChoiceField(choices=CreativeFormat.choices, default=CreativeFormat.BANNER)

    class Meta:
        model = Offer
        fields = [
            "id", "name", "creative_markup", "width", "height", "format", "landing_url", "advertiser_domain",
            "category", "max_bid_cpm", "priority", "observed_ctr", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"observed_ctr": {"min_value": 0.0, "max_value": 1.0}}


class CampaignSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = fields.StrictCharField(max_length=200)
    advertiser = fields.StrictCharField(max_length=200)
    budget = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    currency = fields.StrictRegexField(r"^[A-Za-z]{3}$", default="USD", help_text="ISO 4217 code (stored upper-case)",
                                      error_messages={"invalid": "currency must be a three-letter ISO 4217 code such as USD."})
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices), allow_empty=False)
    start_at = serializers.DateTimeField()
    end_at = serializers.DateTimeField()
    targeting = TargetingSerializer(source="*", required=False)
    max_impressions_per_hour = fields.StrictIntegerField(min_value=1, default=10)
    max_impressions_per_day = fields.StrictIntegerField(min_value=1, default=50)

    status = serializers.ChoiceField(choices=CampaignStatus.choices, read_only=True)
    spent = serializers.DecimalField(max_digits=18, decimal_places=6, read_only=True)
    remaining_budget = serializers.DecimalField(max_digits=18, decimal_places=6, read_only=True)
    approval_rule = serializers.CharField(source="approval_rule.name", read_only=True, allow_null=True, default=None)
    required_approvals = serializers.IntegerField(read_only=True)
    review_round = serializers.IntegerField(read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    submitted_by = serializers.CharField(source="submitted_by.username", read_only=True, allow_null=True, default=None)
    submitted_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="Empty until first submitted")
    offers = OfferSerializer(many=True, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def validate(self, attrs: dict) -> dict:
        start = attrs.get("start_at", getattr(self.instance, "start_at", None))
        end = attrs.get("end_at", getattr(self.instance, "end_at", None))
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"end_at": "end_at must be after start_at."})
        return attrs


class ReasonSerializer(serializers.Serializer):
    reason = fields.StrictCharField(required=False, allow_blank=True, default="", max_length=2000,
                                   help_text="Why (kept in the audit trail)")


class RequiredReasonSerializer(serializers.Serializer):
    reason = fields.StrictCharField(max_length=2000, help_text="Why (required; kept in the audit trail)")


class TransitionSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True, default=None,
                                  help_text="Empty for the scheduler")
    # Plain strings (a campaign status value): one enum per status field would repeat the same choice set.
    from_status = serializers.CharField(read_only=True)
    to_status = serializers.CharField(read_only=True)

    class Meta:
        model = CampaignTransition
        fields = ["id", "action", "from_status", "to_status", "actor", "reason", "created_at"]
        read_only_fields = fields



class CampaignFilters(FilterParams):
    """Query parameters of ``GET /v1/campaigns/`` (an unknown status or channel is a 400 naming it)."""

    status = serializers.ChoiceField(choices=CampaignStatus.choices, required=False, help_text="Only campaigns in this state")
    channel = serializers.ChoiceField(choices=Channel.choices, required=False, help_text="Only campaigns using this channel")
    advertiser = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                       help_text="Exact advertiser name (case-insensitive)")
    search = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                   help_text="Substring of name or advertiser")
