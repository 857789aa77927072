"""``/v1/channels/*``: ingest, contacts, activation, stored messages and email analytics.

Apps, POS terminals and partners call ingest / activate / contacts / message fetches with the token
of a service user in the ``Integration`` group; Marketers read activations and email analytics;
Admin may do everything.
"""
from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api import query_value
from apps.core.filters import filter_params
from apps.core.idempotency import KEY_HEADER, idempotent_call
from apps.core.pagination import PageNumberPagination
from apps.core.roles import Role, role_permission
from apps.recommendations import selectors as recommendation_selectors

from .. import selectors, services
from ..ingest_schema import IngestEventInput
from ..models import Channel, Transport
from . import serializers as s

INTEGRATION = Role.INTEGRATION
IsIntegration = role_permission(INTEGRATION)
CanReadActivations = role_permission(INTEGRATION, Role.MARKETER)
CanReadAnalytics = role_permission(Role.MARKETER)

ERRORS = {400: OpenApiResponse(s.ErrorOut, description="Invalid input, naming the field"),
          403: OpenApiResponse(s.ErrorOut, description="Missing role")}


class IngestView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        tags=["omnichannel"], request=IngestEventInput,
        responses={
            201: OpenApiResponse(s.IngestOut, description="A new event: recorded and acted on"),
            200: OpenApiResponse(s.IngestOut, description="A replay (same caller, source, event_id and body): "
                                                          "the first answer with `duplicate: true`; nothing changes"),
            409: OpenApiResponse(s.ErrorOut, description="`idempotency_conflict`: this caller already sent another "
                                                         "event (a different body) with this event_id and source"),
            **ERRORS,
        },
        summary="Ingest one customer event",
        description=(
            "Body: `event_id` (unique per caller and source), `source` (mobile_app, pos, kiosk, web, "
            "call_center, partner_api, iot), "
            "`event_type` (purchase, product_view, cart_add, cart_abandon, app_open, page_view, search, "
            "wishlist_add, store_visit, loyalty_swipe, check_in, feedback), `user_id` and/or `device_id`, "
            "`timestamp` (ISO 8601 or unix seconds), optional `store_id`, `order_id`, `amount_cents` "
            "(required for purchase), `item_id` / `items[]`, `email`, `phone`, `fcm_token`, `apns_token`, "
            "`properties`. An event is identified by (source, caller, event_id), the caller being the token's "
            "user: 201 when new; the same body again answers 200 with the first result and `duplicate: true`; "
            "another body under the same event_id is a 409. Another caller's ids never collide with yours. The "
            "same processor serves NATS subjects `ingest.{source}.>` (there the caller is the subject)."
        ),
    )
    def post(self, request):
        outcome = services.ingest_event_process(data=request.data, transport=Transport.HTTP,
                                                caller=services.ingest_caller(user=request.user))
        return Response(outcome.body, status=outcome.status)


class ContactView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(tags=["omnichannel"], responses={200: s.ContactOut, 404: s.ErrorOut},
                   summary="A user's contact record")
    def get(self, request, user_id: str):
        contact = selectors.contact_get(user_id=user_id)
        if contact is None:
            return Response({"error": "not_found", "detail": f"no contact record for user {user_id!r}"}, status=404)
        return Response(s.ContactOut(contact).data)

    @extend_schema(tags=["omnichannel"], request=s.ContactIn, responses={200: s.ContactOut, **ERRORS},
                   summary="Create or update a user's contact record (only the fields given change)")
    def put(self, request, user_id: str):
        data = s.ContactIn(data=request.data)
        data.is_valid(raise_exception=True)
        contact = services.contact_upsert(user_id=user_id, fields=dict(data.validated_data))
        return Response(s.ContactOut(contact).data)


class ActivateView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(
        tags=["omnichannel"], request=s.ActivateIn,
        parameters=[OpenApiParameter(KEY_HEADER, str, OpenApiParameter.HEADER, required=False,
                                     description="Repeat a request safely: the same key returns the first answer")],
        responses={201: s.ActivationOut, **ERRORS, 404: OpenApiResponse(s.ErrorOut, description="Unknown campaign or offer"),
                   409: s.ErrorOut},
        summary="Activate an offer for a user on the best channel",
        description=(
            "Cascade: in-store if present → preferred channel → push (token) → in-app → SMS (phone) → email "
            "(email) → web personalisation → paid media (DSP, skipped here). Consent and suppression are "
            "checked; the send is queued and checked again right before it goes out. `status` is queued, "
            "or skipped with the reasons in `cascade` when no channel can reach the user."
        ),
    )
    def post(self, request):
        data = s.ActivateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)

        def run() -> dict:
            activation = services.activation_create(actor=request.user, **values)
            return s.ActivationOut(activation).data

        key = request.headers.get(KEY_HEADER)
        if key is None:
            with transaction.atomic():
                body = run()
            return Response(body, status=status.HTTP_201_CREATED)
        outcome = idempotent_call(scope=f"omnichannel.activate:{request.user.pk}", key=key,
                                  payload=request.data, run=run, success_status=201)
        response = Response(outcome.body, status=outcome.status)
        if outcome.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class ActivationDetailView(APIView):
    permission_classes = [CanReadActivations]

    @extend_schema(tags=["omnichannel"], responses={200: s.ActivationDetailOut, 404: s.ErrorOut},
                   summary="An activation with its sends and status history")
    def get(self, request, activation_id: int):
        return Response(s.ActivationDetailOut(selectors.activation_get(activation_id=activation_id)).data)


def _inbox_response(channel: str, request=None, **where):
    """The surface's messages; with ``?recommendations=N`` (in-app and web) also the user's top N
    catalogue items by ``?strategy=`` (default auto), from apps.recommendations."""
    extra = {}
    if request is not None and ("recommendations" in request.query_params or "strategy" in request.query_params):
        count, strategy = (query_value(request, "recommendations"), query_value(request, "strategy"))
        if count != "0":
            extra["recommendations"] = recommendation_selectors.recommendations_for_surface(
                user_id=where["user_id"], count=count, strategy=strategy)
    messages = services.inbox_fetch(channel=channel, **where)
    return Response({"messages": s.InboxMessageOut(messages, many=True).data, **extra})


_SURFACE_PARAMS = [
    OpenApiParameter("recommendations", int, required=False,
                     description="Also answer the user's top N recommended catalogue items (1–100; 0 = none)"),
    OpenApiParameter("strategy", str, required=False, description="Their recommendation strategy (default auto)"),
]


class InAppMessagesView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(tags=["omnichannel"], responses={200: s.InboxOut, **ERRORS}, parameters=_SURFACE_PARAMS,
                   summary="In-app messages for the app to show (fetching delivers them)")
    def get(self, request, user_id: str):
        return _inbox_response(Channel.IN_APP, request, user_id=user_id)


class WebOffersView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(tags=["omnichannel"], responses={200: s.InboxOut, **ERRORS}, parameters=_SURFACE_PARAMS,
                   summary="Personalised offers for the web site to render (fetching delivers them)")
    def get(self, request, user_id: str):
        return _inbox_response(Channel.WEB, request, user_id=user_id)


class InStoreOffersView(APIView):
    permission_classes = [IsIntegration]

    @extend_schema(tags=["omnichannel"], responses={200: s.InboxOut},
                   summary="Offers for a store's kiosks and signage, for the users present there")
    def get(self, request, store_id: str):
        return _inbox_response(Channel.IN_STORE, store_id=store_id)


class SourcesView(APIView):
    permission_classes = [CanReadActivations]

    @extend_schema(tags=["omnichannel"], responses={200: s.SourceOut(many=True)},
                   summary="Ingest sources and whether they are accepted")
    def get(self, request):
        return Response(selectors.ingest_sources())


class EmailAnalyticsListView(APIView):
    permission_classes = [CanReadAnalytics]

    @extend_schema(
        tags=["omnichannel"], operation_id="channels_email_analytics_list",
        responses={200: s.EmailAnalyticsPageOut, 400: s.ErrorOut,
                   404: OpenApiResponse(s.ErrorOut, description="Invalid page")},
        parameters=[s.EmailAnalyticsFilters,
                    OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="1-based page number")],
        summary="Email analytics of every email activation (paginated), newest first",
    )
    def get(self, request):
        campaign_id = filter_params(request, s.EmailAnalyticsFilters).get("campaign_id")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(
            selectors.email_analytics_queryset(campaign_id=campaign_id), request, view=self)
        response = paginator.get_paginated_response(selectors.email_analytics_rows(page))
        response.data["totals"] = selectors.email_analytics_totals(campaign_id=campaign_id)
        return response


class EmailAnalyticsDetailView(APIView):
    permission_classes = [CanReadAnalytics]

    @extend_schema(tags=["omnichannel"], responses={200: s.EmailAnalyticsOut, 404: s.ErrorOut},
                   summary="Email analytics of one activation")
    def get(self, request, activation_id: int):
        return Response(selectors.email_analytics_for_activation(activation_id=activation_id))
