"""``GET /v1/reports/campaigns/{id}``: campaign performance per hour or day, from ClickHouse."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.analytics import selectors
from apps.campaigns import selectors as campaign_selectors
from apps.core import clickhouse as ch
from apps.core import outages
from apps.core.exceptions import Unavailable
from apps.core.filters import filter_params
from apps.core.roles import IsMarketer

from .serializers import CampaignReportSerializer, ReportFilters


class CampaignReportView(APIView):
    permission_classes = [IsAuthenticated, IsMarketer]

    @extend_schema(
        tags=["reports"],
        summary="Campaign performance per hour or day",
        description=(
            "Role: Marketer (or Admin). Figures per UTC bucket over `[from, to)` computed from the "
            "deduplicated raw events in ClickHouse: requests, bids, wins, spend (USD, CPM semantics), "
            "clicks, CTR = clicks / wins, win rate = wins / bids, and p50/p95/p99 bid latency in µs. "
            "Empty buckets are included with zeros. `spend_to_date` is the campaign's whole spend (Redis's "
            "running total, the owner) beside Postgres's copy and when that was last reconciled."
        ),
        parameters=[ReportFilters],
        responses={
            200: CampaignReportSerializer,
            400: OpenApiResponse(description="`{error, detail, field}` naming `from`, `to` or `granularity`"),
            401: OpenApiResponse(description="No or bad token"),
            403: OpenApiResponse(description="Not a Marketer or Admin"),
            404: OpenApiResponse(description="No such campaign"),
            503: OpenApiResponse(description="ClickHouse unavailable"),
        },
    )
    def get(self, request, campaign_id: int):
        filters = filter_params(request, ReportFilters)
        start, end, granularity = selectors.report_range(
            start=filters.get("from"), end=filters.get("to"), granularity=filters.get("granularity"))
        campaign = campaign_selectors.campaign_get(campaign_id=campaign_id)
        try:
            report = selectors.campaign_report(campaign_id=campaign.pk, start=start, end=end, granularity=granularity)
        except ch.ClickHouseError as exc:
            # A connection that fails is named like every store outage (apps.core.outages); any other error of
            # the store gets the analytics message.
            raise outages.as_unavailable(exc) or Unavailable("Analytics store unavailable, try again shortly.") from None
        report["campaign_name"] = campaign.name
        report["spend_to_date"] = selectors.spend_to_date(campaign=campaign)
        return Response(report)


@extend_schema_view(get=extend_schema(exclude=True))
class CampaignReportSlashView(CampaignReportView):
    """The same report with a trailing slash (documented once, without it)."""
