"""Suppression REST API (token auth).

Roles: any staff role (Marketer, Approver, Admin) may list, check and read history; Marketer or
Admin may add (suppressing only ever stops messages); only Admin may remove, because un-suppressing
someone who opted out is the costly mistake. The services enforce the same rules.
"""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ServiceError
from apps.core.roles import IsAdminRole, IsStaffRole, Role, role_permission

from .. import selectors, services
from . import serializers as s

IsWriter = role_permission(Role.MARKETER)

_ERROR = OpenApiResponse(description='`{"error": code, "detail": message, "field": name}` naming the bad field')
_AUTH = {401: OpenApiResponse(description="No or invalid token"),
         403: OpenApiResponse(description="Authenticated but lacking the role")}


def _query(serializer_class, request) -> dict:
    """Validate query parameters; the first bad one is a 400 naming it (``field``)."""
    query = serializer_class(data=request.query_params.dict())  # a plain dict: "?x=" is validated, not dropped
    if not query.is_valid():
        name, messages = next(iter(query.errors.items()))
        raise ServiceError(f"{name}: {messages[0]}", field=name)
    return query.validated_data


def _skipped(rows) -> list[dict]:
    return [{"row": row, "reason": reason} for row, reason in rows]


class SuppressionListCreateView(GenericAPIView):
    serializer_class = s.SuppressionEntrySerializer

    def get_permissions(self):
        return [IsWriter()] if self.request.method == "POST" else [IsStaffRole()]

    @extend_schema(
        summary="List suppression entries",
        parameters=[s.ListFiltersSerializer],
        responses={200: s.SuppressionEntrySerializer(many=True), 400: _ERROR, **_AUTH},
    )
    def get(self, request):
        params = _query(s.ListFiltersSerializer, request)
        qs = selectors.suppression_list(
            channel=params.get("channel"),
            reason=params.get("reason"),
            identifier=params.get("identifier"),
            search=params.get("search"),
            active=params.get("active"),
        )
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Suppress one identifier on one channel (idempotent)",
        description="Adding an identifier that is already suppressed keeps one entry: a later expiry "
                    "(or none = permanent) lengthens it, an earlier one is ignored. 201 when an entry "
                    "was created, 200 when an existing one was kept or lengthened.",
        request=s.SuppressionAddSerializer,
        responses={201: s.SuppressionEntrySerializer, 200: s.SuppressionEntrySerializer, 400: _ERROR, **_AUTH},
    )
    def post(self, request):
        data = s.SuppressionAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = {**data.validated_data, "source": data.validated_data.get("source") or "api"}
        entry, outcome = services.suppression_add_with_outcome(created_by=request.user, **fields)
        code = status.HTTP_201_CREATED if outcome == "added" else status.HTTP_200_OK
        return Response(s.SuppressionEntrySerializer(entry).data, status=code)


class BulkAddView(APIView):
    permission_classes = [IsWriter]

    @extend_schema(
        summary="Suppress many identifiers",
        description="All or nothing for malformed rows: one bad identifier, channel, reason or expiry "
                    "refuses the whole request with a 400 naming `entries[i].<field>`. Otherwise every "
                    "row is written except duplicates within the payload and rows already covered by an "
                    "active entry, which are listed in `skipped` with the reason.",
        request=s.BulkAddRequestDocSerializer,
        responses={200: s.BulkAddResultSerializer, 400: _ERROR, **_AUTH},
    )
    def post(self, request):
        data = s.BulkAddRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.suppression_bulk_add(
            entries=data.validated_data["entries"], created_by=request.user,
            source=data.validated_data.get("source") or "api:bulk-add", on_invalid="raise",
        )
        return Response({"added": result.added, "updated": result.updated, "skipped": _skipped(result.skipped)})


class BulkRemoveView(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(
        summary="Un-suppress many identifiers (Admin)",
        description="Removes the entry for each (identifier, channel); `note` says why and is kept in "
                    "the audit trail with who and when. Malformed rows refuse the whole request; rows "
                    "with no entry are listed in `skipped` as `not suppressed`.",
        request=s.BulkRemoveRequestDocSerializer,
        responses={200: s.BulkRemoveResultSerializer, 400: _ERROR, **_AUTH},
    )
    def post(self, request):
        data = s.BulkRemoveRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not data.validated_data["note"].strip():
            raise ServiceError("note is required: say why these entries are removed", field="note")
        result = services.suppression_bulk_remove(
            entries=data.validated_data["entries"], removed_by=request.user,
            note=data.validated_data["note"], on_invalid="raise",
        )
        return Response({"removed": result.removed, "skipped": _skipped(result.skipped)})


class CheckView(APIView):
    permission_classes = [IsStaffRole]

    @extend_schema(
        summary="Is this identifier suppressed?",
        description="`suppressed` is what send paths use: true for an unexpired entry on the channel or "
                    "on `all` (any channel when `channel` is omitted). `entries` are those entries.",
        parameters=[s.CheckQuerySerializer],
        responses={200: s.CheckResultSerializer, 400: _ERROR, **_AUTH},
    )
    def get(self, request):
        query = _query(s.CheckQuerySerializer, request)
        identifier = query["identifier"]
        channel = query.get("channel")
        # The same rule as selectors.is_suppressed: unexpired entries on the channel or on "all".
        entries = list(selectors.suppression_entries_for(identifier=identifier, channel=channel))
        return Response({
            "identifier": services.normalise_identifier(identifier),
            "channel": channel and services.validate_channel(channel),
            "suppressed": bool(entries),
            "entries": s.SuppressionEntrySerializer(entries, many=True).data,
        })


class HistoryView(GenericAPIView):
    permission_classes = [IsStaffRole]
    serializer_class = s.SuppressionAuditSerializer

    @extend_schema(
        summary="Audit trail of one identifier",
        description="Every add, extension, removal (with who and why) and purge, newest first.",
        parameters=[s.HistoryQuerySerializer],
        responses={200: s.SuppressionAuditSerializer(many=True), 400: _ERROR, **_AUTH},
    )
    def get(self, request):
        identifier = _query(s.HistoryQuerySerializer, request)["identifier"]
        page = self.paginate_queryset(selectors.suppression_history(identifier=identifier))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
