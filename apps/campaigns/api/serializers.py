"""Shapes of the campaigns API. Serializers only check types and shapes; the rules (who may do
what, in which state, with which values) are in ``apps.campaigns.services``."""
from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from apps.campaigns import validation
from apps.campaigns.models import (
    CampaignStatus,
    Channel,
    CreativeFormat,
    DeviceType,
    EditAction,
    EditSource,
    Offer,
)
from apps.core import fields
from apps.core.countries import ALPHA2_TO_ALPHA3, ALPHA3, normalise_country
from apps.core.exceptions import ServiceError
from apps.core.filters import FilterParams

# What the API accepts as a country: an ISO 3166-1 code, alpha-3 (as OpenRTB sends it) or alpha-2; stored
# as alpha-3. The schema lists them (enum), so a client knows before it sends.
COUNTRY_CODES = sorted(ALPHA2_TO_ALPHA3) + sorted(ALPHA3)


class CountryCodeField(serializers.ChoiceField):
    """An ISO 3166-1 code, normalised by ``apps.core.countries.normalise_country`` (the same rule the
    service and the admin apply: case and surrounding spaces do not matter, alpha-2 becomes alpha-3)."""

    def __init__(self, **kwargs):
        super().__init__(choices=COUNTRY_CODES, **kwargs)

    def to_internal_value(self, data):
        code = normalise_country(data) if isinstance(data, str) else None
        if code is None:
            self.fail("invalid_choice", input=data)
        return code
# The service's limits (apps.campaigns.validation._clean_offer), stated here so the schema shows them.
CREATIVE_MAX_CHARS = 100_000
CREATIVE_MAX_PIXELS = 10_000
# Bare domain (the service lower-cases it) and IAB category (the service upper-cases it).
DOMAIN_PATTERN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
IAB_CATEGORY_PATTERN = r"^[Ii][Aa][Bb]\d{1,2}(?:-\d{1,3})?$"
INT_MAX = 2_147_483_647  # the service's (and Postgres integer's) upper bound


class TargetingSerializer(serializers.Serializer):
    """Who a campaign reaches; an empty list means "any"."""

    countries = serializers.ListField(
        child=CountryCodeField(), source="target_countries", required=False,
        help_text="ISO 3166-1 codes; alpha-2 (US) is accepted and stored as alpha-3 (USA), as OpenRTB sends it",
    )
    device_types = serializers.ListField(
        child=serializers.ChoiceField(choices=DeviceType.choices), source="target_device_types", required=False
    )
    segments = serializers.ListField(
        child=fields.StrictIntegerField(min_value=0, max_value=INT_MAX), source="target_segments", required=False,
        help_text="Audience segment ids",
    )


class OfferSerializer(serializers.ModelSerializer):
    """Every field declared with the limits the service enforces, so the schema states them all."""

    name = fields.StrictCharField(max_length=200)
    creative_markup = fields.StrictCharField(max_length=CREATIVE_MAX_CHARS, trim_whitespace=False,
                                             help_text="HTML (banner), VAST XML (video) or native JSON returned as adm")
    width = fields.StrictIntegerField(min_value=1, max_value=CREATIVE_MAX_PIXELS)
    height = fields.StrictIntegerField(min_value=1, max_value=CREATIVE_MAX_PIXELS)
    format = serializers.ChoiceField(choices=CreativeFormat.choices, default=CreativeFormat.BANNER)
    landing_url = fields.StrictURLField(max_length=500, help_text="An http(s) URL")
    advertiser_domain = fields.StrictRegexField(DOMAIN_PATTERN, max_length=200,
                                                help_text="Bare domain (example.com), sent as adomain; checked against badv")
    category = fields.StrictRegexField(IAB_CATEGORY_PATTERN, max_length=20,
                                       help_text="IAB content category, e.g. IAB1-1; checked against bcat")
    max_bid_cpm = fields.StrictDecimalField(max_digits=10, decimal_places=4, min_value=Decimal("0.0001"),
                                            help_text="The most paid per 1,000 impressions (CPM), in the campaign's currency: 2.5 = at most 0.0025 per impression")
    priority = fields.StrictIntegerField(min_value=0, max_value=32767, default=5,
                                         help_text="Higher goes first when candidates are capped")
    observed_ctr = fields.StrictFloatField(min_value=0.0, max_value=1.0, default=0.0,
                                           help_text="Click-through rate observed so far (a model feature)")

    class Meta:
        model = Offer
        fields = [
            "id", "name", "creative_markup", "width", "height", "format", "landing_url", "advertiser_domain",
            "category", "max_bid_cpm", "priority", "observed_ctr", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]


class CampaignSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = fields.StrictCharField(max_length=200)
    advertiser = fields.StrictCharField(max_length=200)
    budget = fields.StrictDecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"),
                                       help_text="The most the whole campaign may spend, in its currency (e.g. 5000.00)")
    currency = fields.StrictRegexField(r"^[A-Za-z]{3}$", default="USD", help_text="ISO 4217 code (stored upper-case)",
                                      error_messages={"invalid": "currency must be a three-letter ISO 4217 code such as USD."})
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices), allow_empty=False, min_length=1)
    start_at = fields.StrictDateTimeField()
    end_at = fields.StrictDateTimeField(help_text="After start_at, and not in the past")
    targeting = TargetingSerializer(source="*", required=False)
    max_impressions_per_hour = fields.StrictIntegerField(min_value=1, max_value=INT_MAX, default=10)
    max_impressions_per_day = fields.StrictIntegerField(min_value=1, max_value=INT_MAX, default=50,
                                                        help_text="At least max_impressions_per_hour")

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
        if start is not None and end is not None:
            try:
                validation.schedule_check(start_at=start, end_at=end)
            except ServiceError as exc:
                raise serializers.ValidationError({exc.field: exc.message}) from None
        return attrs


class ReasonSerializer(serializers.Serializer):
    reason = fields.StrictCharField(required=False, allow_blank=True, default="", max_length=2000,
                                   help_text="Why (kept in the audit trail)")


class RequiredReasonSerializer(serializers.Serializer):
    reason = fields.StrictCharField(max_length=2000, help_text="Why (required; kept in the audit trail)")


class CommentSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    author = serializers.CharField(source="author.username", read_only=True)
    body = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class CommentInputSerializer(serializers.Serializer):
    body = fields.StrictCharField(max_length=4000, help_text="The message (plain text, at most 4,000 characters)")


class FieldChangeSerializer(serializers.Serializer):
    """One field's change. Values as the API writes them: decimals as strings, times as ISO 8601 UTC;
    null for the side that did not exist (an added or removed offer)."""

    old = serializers.JSONField(allow_null=True, help_text="The value before the edit")
    new = serializers.JSONField(allow_null=True, help_text="The value after the edit")


class HistoryEntrySerializer(serializers.Serializer):
    """One entry of a campaign's history: a lifecycle transition or vote (``kind: transition``), or an
    edit of the campaign or of an offer with its old and new values (``kind: edit``)."""

    kind = serializers.ChoiceField(choices=["transition", "edit"], source="h_kind")
    id = serializers.IntegerField(source="h_id", help_text="Id of the transition or of the edit (unique per kind)")
    action = serializers.CharField(
        source="h_action",
        help_text="Transitions: submit, approve, vote_approve, votes_voided, ...; edits: "
                  + ", ".join(EditAction.values),
    )
    created_at = serializers.DateTimeField(source="h_created_at")
    actor = serializers.CharField(source="h_actor", allow_null=True, help_text="Username; empty for the scheduler or a task")
    from_status = serializers.CharField(source="h_from_status", allow_null=True, help_text="Transitions only")
    to_status = serializers.CharField(source="h_to_status", allow_null=True, help_text="Transitions only")
    reason = serializers.CharField(source="h_reason", allow_blank=True, help_text="Transitions only (why)")
    offer_id = serializers.IntegerField(source="h_offer_id", allow_null=True,
                                        help_text="Edits of an offer: which (kept after the offer is removed)")
    source = serializers.ChoiceField(choices=EditSource.choices, source="h_source", allow_null=True,
                                     help_text="Edits only: where the edit came from")
    changes = serializers.DictField(child=FieldChangeSerializer(), source="h_changes", allow_null=True,
                                    help_text="Edits only: `{field: {old, new}}` for every changed field")


class CampaignFilters(FilterParams):
    """Query parameters of ``GET /v1/campaigns/`` (an unknown status or channel is a 400 naming it)."""

    status = serializers.ChoiceField(choices=CampaignStatus.choices, required=False, help_text="Only campaigns in this state")
    channel = serializers.ChoiceField(choices=Channel.choices, required=False, help_text="Only campaigns using this channel")
    advertiser = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                       help_text="Exact advertiser name (case-insensitive)")
    search = serializers.CharField(required=False, allow_blank=True, max_length=200,
                                   help_text="Substring of name or advertiser")
