"""``GET /v1/reports/campaigns/{id}.xlsx``: the campaign report as an Excel workbook."""
from __future__ import annotations

import io

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from apps.analytics.api.serializers import ReportFilters
from apps.core.filters import filter_params
from apps.core.roles import IsMarketer

from ..reports import XLSX_CONTENT_TYPE, campaign_report_xlsx, report_filename
from ..selectors import campaign_report_for_export


class CampaignReportXlsxView(APIView):
    permission_classes = [IsAuthenticated, IsMarketer]

    @extend_schema(
        tags=["reports"],
        summary="Campaign performance as an Excel workbook",
        description=(
            "Role: Marketer (or Admin). The same figures as `GET /v1/reports/campaigns/{id}` in a `.xlsx`: a "
            "Summary sheet (campaign, period, totals, a native chart of wins and clicks) and an Hourly or Daily "
            "sheet with every bucket, number formats and a frozen header."
        ),
        parameters=[ReportFilters],
        responses={
            (200, XLSX_CONTENT_TYPE): OpenApiResponse(response=OpenApiTypes.BINARY, description="The workbook"),
            400: OpenApiResponse(description="`{error, detail, field}` naming `from`, `to` or `granularity`"),
            401: OpenApiResponse(description="No or bad token"),
            403: OpenApiResponse(description="Not a Marketer or Admin"),
            404: OpenApiResponse(description="No such campaign"),
            503: OpenApiResponse(description="ClickHouse unavailable"),
        },
    )
    def get(self, request, campaign_id: int):
        filters = filter_params(request, ReportFilters)
        report = campaign_report_for_export(campaign_id=campaign_id, start=filters.get("from"), end=filters.get("to"),
                                            granularity=filters.get("granularity"))
        buffer = io.BytesIO()
        campaign_report_xlsx(report, buffer)
        response = HttpResponse(buffer.getvalue(), content_type=XLSX_CONTENT_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{report_filename(report)}"'
        return response
