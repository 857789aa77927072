"""DSP REST API on the web process (token auth, Integration role; Admin too).

* ``POST /v1/dsp/win`` — a win notice from the exchange above us: counted once per bid, spend added to
  the platform's hour, the winner's ``nurl``/``burl`` and the losers' ``lurl`` queued.
* ``GET /v1/dsp/status`` — per platform: breaker, QPS bucket, this hour's budget and spend.
* ``GET /v1/dsp/spend?platform=&from=&to=`` — wins, spend and average win price per platform and hour.
The fan-out itself, ``POST /v1/dsp/bid``, is on the bid app (apps.dsp.route).
"""
import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ServiceError
from apps.core.roles import Role, role_permission

from .. import selectors, services
from . import serializers as s

IsIntegration = role_permission(Role.INTEGRATION)

_ERROR = OpenApiResponse(description='`{"error": code, "detail": message, "field": name}` naming the bad field')
_AUTH = {401: OpenApiResponse(description="No or invalid token"),
         403: OpenApiResponse(description="Authenticated but lacking the Integration role")}


class WinView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="Record a DSP win (idempotent per bid)",
        description="The first notice for a bid counts: spend per platform and hour (win price ÷ the "
                    "platform's adjustment factor, per impression) and the notices fire from Celery. "
                    "A repeat answers `duplicate` and counts nothing. 404 for an unknown platform, "
                    "auction or bid; 503 when the win store is down (retry).",
        request=s.WinSerializer,
        responses={200: s.WinResultSerializer, 400: _ERROR, 404: _ERROR, 422: _ERROR, 503: _ERROR, **_AUTH},
    )
    def post(self, request):
        data = s.WinSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.dsp_win_record(**data.validated_data)
        return Response(s.WinResultSerializer(result).data)


class StatusView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(summary="Breaker, QPS bucket and budget per platform",
                   responses={200: s.StatusSerializer(many=True), **_AUTH})
    def get(self, request):
        return Response(s.StatusSerializer(selectors.dsp_status(), many=True).data)


class SpendView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        summary="Spend per platform and hour",
        parameters=[OpenApiParameter("platform", str, required=False),
                    OpenApiParameter("from", dt.datetime, required=False, description="default: 24 h ago"),
                    OpenApiParameter("to", dt.datetime, required=False, description="default: now")],
        responses={200: s.SpendRowSerializer(many=True), 400: _ERROR, **_AUTH},
    )
    def get(self, request):
        query = s.SpendQuerySerializer(data=request.query_params.dict())
        if not query.is_valid():
            name, messages = next(iter(query.errors.items()))
            raise ServiceError(f"{name}: {messages[0]}", field=name)
        params = query.validated_data
        end = params.get("to") or timezone.now()
        start = params.get("from") or end - dt.timedelta(hours=24)
        if start >= end:
            raise ServiceError("from must be before to", field="from")
        rows = selectors.dsp_spend(platform=params.get("platform"), start=start, end=end)
        return Response(s.SpendRowSerializer(rows, many=True).data)
