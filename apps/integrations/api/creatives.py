"""``GET /v1/creatives/search`` and ``POST /v1/creatives/import``: the DAM creative library."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import InvalidInput
from apps.core.filters import FilterParams, filter_params
from apps.core.roles import IsMarketer

from .. import services


class CreativeSearchFilters(FilterParams):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Words in the asset's name")
    source = serializers.ChoiceField(choices=["aem", "bynder", "aprimo"], required=False,  # type: ignore[assignment]
                                     help_text="One DAM kind only; default every configured DAM")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, help_text="Per DAM, default 20")


class AssetSerializer(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]
    connection = serializers.CharField()
    connection_id = serializers.IntegerField()
    id = serializers.CharField()
    name = serializers.CharField()
    thumbnail_url = serializers.CharField()
    url = serializers.CharField()
    size_bytes = serializers.IntegerField(allow_null=True)
    mime = serializers.CharField()
    valid_until = serializers.DateTimeField(allow_null=True)
    valid = serializers.BooleanField()
    blocked_reason = serializers.CharField(help_text="Why it may not be served now (expired, withdrawn, unapproved)")


class CreativeSearchView(APIView):
    permission_classes = [IsAuthenticated, IsMarketer]

    @extend_schema(
        tags=["creatives"], summary="Search the configured DAMs (AEM Assets, Bynder, Aprimo)",
        description="Role: Marketer (or Admin). Thumbnail, name, size, MIME type and validity of matching "
                    "assets. With no DAM configured: 200 with `items: []` and `sources: []`. A DAM that fails "
                    "is listed in `sources` with `ok: false` and its error; the others still answer.",
        parameters=[CreativeSearchFilters],
        responses={200: inline_serializer("CreativeSearch", {
            "items": AssetSerializer(many=True),
            "sources": serializers.ListField(child=serializers.DictField())}),
            400: OpenApiResponse(description="`{error, detail, field}`"), 403: OpenApiResponse(description="Not a Marketer")},
    )
    def get(self, request):
        filters = filter_params(request, CreativeSearchFilters)
        return Response(services.creative_search(query=filters.get("q", ""), source=filters.get("source", ""),
                                                 limit=filters.get("limit", 20)))


class CreativeImportSerializer(serializers.Serializer):
    offer_id = serializers.IntegerField(min_value=1)
    connection_id = serializers.IntegerField(min_value=1)
    asset_id = serializers.CharField(max_length=200)


class CreativeImportView(APIView):
    permission_classes = [IsAuthenticated, IsMarketer]

    @extend_schema(
        tags=["creatives"], summary="Import a DAM asset as an offer's creative",
        description="Role: Marketer (or Admin). The asset is read from its DAM; its URL, MIME type and validity "
                    "are stored on the offer (an image becomes the banner markup). Draft or in-review campaigns "
                    "only, like any creative change.",
        request=CreativeImportSerializer,
        responses={200: inline_serializer("CreativeImported", {
            "offer_id": serializers.IntegerField(), "creative_source": serializers.CharField(),
            "creative_asset_id": serializers.CharField(), "creative_asset_url": serializers.CharField(),
            "creative_mime": serializers.CharField(), "creative_valid_until": serializers.DateTimeField(allow_null=True),
            "creative_blocked_reason": serializers.CharField()}),
            400: OpenApiResponse(description="`{error, detail, field}`"), 404: OpenApiResponse(description="No such offer, connection or asset"),
            409: OpenApiResponse(description="The campaign's state forbids changing the creative"),
            503: OpenApiResponse(description="The DAM is unreachable")},
    )
    def post(self, request):
        serializer = CreativeImportSerializer(data=request.data)
        if not serializer.is_valid():
            raise InvalidInput(serializer.errors)
        offer = services.creative_import(actor=request.user, **serializer.validated_data)
        return Response({"offer_id": offer.pk, **{name: getattr(offer, name) for name in (
            "creative_source", "creative_asset_id", "creative_asset_url", "creative_mime", "creative_valid_until",
            "creative_blocked_reason")}})
