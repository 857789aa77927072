"""Catalogue and recommendations REST API (token auth).

Roles: recommendations are read by every role (apps and partners call them with an Integration
token, staff preview them); the catalogue is written by Marketer or Integration (product feeds) and
read by every role. The services enforce the same rules.
"""
from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import query_value
from apps.core.exceptions import NotFound, ServiceError
from apps.core.roles import Role, role_permission

from .. import selectors, services
from ..models import CatalogImport
from . import serializers as s

AnyRole = role_permission(*Role.ALL)
CatalogWriter = role_permission(*services.catalog.WRITER_ROLES)

_ERROR = OpenApiResponse(description='`{"error": code, "detail": message, "field": name}` naming the bad field')
_AUTH = {401: OpenApiResponse(description="No or invalid token"),
         403: OpenApiResponse(description="Authenticated but lacking the role")}


class CatalogItemView(APIView):
    def get_permissions(self):
        return [CatalogWriter()] if self.request.method == "PUT" else [AnyRole()]

    @extend_schema(summary="One catalogue item", responses={200: s.CatalogItemSerializer, 404: _ERROR, **_AUTH})
    def get(self, request, item_id: str):
        item = selectors.catalog_item_get(item_id=item_id)
        if item is None:
            raise NotFound(f"no catalogue item {item_id!r}", field="item_id")
        return Response(s.CatalogItemSerializer(item).data)

    @extend_schema(
        summary="Create or replace a catalogue item",
        description="Fields left out take their defaults (no category, no tags, available); `created_at` "
                    "is kept on an update when omitted. Unknown fields are refused. 201 when created, 200 "
                    "when replaced. Every change is audited with the old and new values.",
        request=s.CatalogItemInputSerializer,
        responses={201: s.CatalogItemSerializer, 200: s.CatalogItemSerializer, 400: _ERROR, **_AUTH},
    )
    def put(self, request, item_id: str):
        if not isinstance(request.data, dict):
            raise ServiceError("the body must be a JSON object")
        item, created = services.catalog_item_put(item_id=item_id, data=dict(request.data), actor=request.user)
        return Response(s.CatalogItemSerializer(item).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class CatalogImportCreateView(APIView):
    permission_classes = [CatalogWriter]

    @extend_schema(
        summary="Bulk import catalogue items (JSON lines or CSV)",
        description="The API speaks JSON: send the file's text as `content` with its `format`. It is "
                    "checked (a readable CSV header, at least one row) and queued; small files (up to "
                    f"{settings.RECS_IMPORT_INLINE_MAX_ROWS} rows) are imported before the answer. Poll the "
                    "import for progress; refused rows, with the line and the reason, download from "
                    "`refused_rows_url`. Files larger than a request body may be, upload in the admin.",
        request=s.ImportUploadSerializer,
        responses={202: s.CatalogImportSerializer, 400: _ERROR, **_AUTH},
    )
    def post(self, request):
        data = s.ImportUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fmt = data.validated_data["format"]
        filename = data.validated_data.get("filename") or f"upload.{fmt}"
        imp = services.catalog_import_create(filename=filename, data=data.validated_data["content"].encode(),
                                             actor=request.user, file_format=fmt)
        if imp.total_rows <= settings.RECS_IMPORT_INLINE_MAX_ROWS:
            imp = services.catalog_import_run(import_id=imp.pk)
        else:
            from ..tasks import run_catalog_import

            transaction.on_commit(lambda: run_catalog_import.delay(imp.pk))
        return Response(s.CatalogImportSerializer(imp).data, status=status.HTTP_202_ACCEPTED)


def _import(import_id: int) -> CatalogImport:
    imp = CatalogImport.objects.filter(pk=import_id).first()
    if imp is None:
        raise NotFound(f"no catalogue import {import_id}")
    return imp


class CatalogImportView(APIView):
    permission_classes = [CatalogWriter]

    @extend_schema(summary="A catalogue import's progress",
                   responses={200: s.CatalogImportSerializer, 404: _ERROR, **_AUTH})
    def get(self, request, import_id: int):
        return Response(s.CatalogImportSerializer(_import(import_id)).data)


class CatalogImportRefusedView(APIView):
    permission_classes = [CatalogWriter]

    @extend_schema(summary="A catalogue import's refused rows as CSV (line,reason)",
                   responses={(200, "text/csv"): OpenApiResponse(description="line,reason"), 404: _ERROR, **_AUTH})
    def get(self, request, import_id: int):
        imp = _import(import_id)
        response = HttpResponse(services.catalog_import_refused_csv(imp=imp), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="catalog-import-{imp.pk}-refused.csv"'
        return response


class RecommendationsView(APIView):
    permission_classes = [AnyRole]

    @extend_schema(
        summary="Recommendations for one user",
        description="Strategies: `cf` (item-item collaborative filtering: EASE on catalogues up to "
                    "RECS_EASE_MAX_ITEMS items, RP3beta beyond), `content_based` (TF-IDF over category, "
                    "tags and attributes), `frequently_bought_together` (pair counts within one basket), "
                    "`trending` (decayed interaction counts over the last RECS_TRENDING_WINDOW_HOURS, fed "
                    "within a minute), `new_arrivals` (newest catalogue items), and `auto` (default: `cf`, "
                    "the winner of the offline evaluation, completed with the cold-start answer). Items "
                    "the user already interacted with and unavailable items never appear. An unknown "
                    "user gets the cold-start answer (trending, then popular overall), not a 404.",
        parameters=[OpenApiParameter("strategy", str, enum=list(selectors.STRATEGY_NAMES), required=False),
                    OpenApiParameter("limit", int, required=False,
                                     description=f"1–{settings.RECS_MAX_LIMIT}, default {settings.RECS_DEFAULT_LIMIT}")],
        responses={200: s.RecommendationsSerializer, 400: _ERROR, **_AUTH,
                   503: OpenApiResponse(description="The models are not built yet (Retry-After)")},
    )
    def get(self, request, user_id: str):
        unknown = sorted(set(request.query_params) - {"strategy", "limit"})
        if unknown:
            raise ServiceError(f"{unknown[0]}: unknown query parameter (use strategy and limit)", field=unknown[0])
        result = selectors.recommendations_for_user(user_id=user_id, strategy=query_value(request, "strategy"),
                                                    limit=query_value(request, "limit"))
        return Response({"user_id": result.user_id, "strategy": result.strategy,
                         "items": [{"item_id": i.item_id, "score": round(i.score, 6), "reason": i.reason}
                                   for i in result.items]})
