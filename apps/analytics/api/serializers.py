"""Response shapes of the reports API (documentation for drf-spectacular; the data comes from
``apps.analytics.selectors.campaign_report``)."""
from rest_framework import serializers

from apps.core.fields import ISO_DATE_OR_DATETIME
from apps.core.filters import FilterParams


class ReportFilters(FilterParams):
    """Query parameters of a report: a bad or empty value is a 400 naming it (enum and pattern documented)."""

    from_ = serializers.RegexField(
        ISO_DATE_OR_DATETIME, required=False, trim_whitespace=False,
        help_text="ISO 8601 date or date-time (UTC if no offset); default `to` − 24 h (hour) or − 30 days (day)")
    to = serializers.RegexField(
        ISO_DATE_OR_DATETIME, required=False, trim_whitespace=False,
        help_text="ISO 8601 date (end of that day) or date-time, exclusive; default now")
    granularity = serializers.ChoiceField(choices=["hour", "day"], required=False, help_text="default hour")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class ReportFiguresSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Bid requests the platform answered (bid_response request ids + no_bid events)")
    bids = serializers.IntegerField(help_text="The campaign's bid_response events (one per bid)")
    wins = serializers.IntegerField()
    spend = serializers.FloatField(help_text="USD: sum of win_price / 1000 over wins (CPM clearing prices)")
    clicks = serializers.IntegerField()
    ctr = serializers.FloatField(allow_null=True, help_text="clicks / wins; null without wins")
    win_rate = serializers.FloatField(allow_null=True, help_text="wins / bids; null without bids")


class ReportBucketSerializer(ReportFiguresSerializer):
    bucket = serializers.CharField(help_text="Bucket start, UTC, ISO 8601")
    latency_p50_us = serializers.IntegerField(allow_null=True)
    latency_p95_us = serializers.IntegerField(allow_null=True)
    latency_p99_us = serializers.IntegerField(allow_null=True)


class SpendToDateSerializer(serializers.Serializer):
    spent = serializers.CharField(help_text="The campaign's whole spend so far (decimal string, USD): Redis's "
                                            "running total, the owner of the number (Postgres's when Redis has none)")
    recorded = serializers.CharField(help_text="`Campaign.spent` in Postgres (brought up to date every few seconds)")
    pending = serializers.CharField(help_text="Counted in Redis, not yet flushed to Postgres")
    in_sync = serializers.BooleanField(help_text="Postgres holds everything Redis counted")
    reconciled_at = serializers.CharField(allow_null=True, help_text="When spend last moved to Postgres (UTC), null: never")


class CampaignReportSerializer(serializers.Serializer):
    campaign_id = serializers.CharField()
    campaign_name = serializers.CharField()
    from_ = serializers.CharField(help_text="Range start (inclusive), UTC")
    to = serializers.CharField(help_text="Range end (exclusive), UTC")
    granularity = serializers.ChoiceField(choices=["hour", "day"])
    buckets = ReportBucketSerializer(many=True)
    totals = ReportFiguresSerializer()
    spend_to_date = SpendToDateSerializer(help_text="The campaign's spend over its whole life (not only this range): "
                                                    "the same number as the campaign list and the dashboard")

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
