"""REST API ``/v1/campaigns/``: campaigns, their offers, and the lifecycle transitions as POST actions.

Views only translate HTTP to service calls; the services make the same checks for the admin."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.campaigns import selectors, services
from apps.campaigns.models import EditSource
from apps.core.exceptions import ServiceError
from apps.core.filters import filter_params
from apps.core.idempotency import KEY_HEADER
from apps.core.roles import IsApprover, IsMarketer, IsStaffRole

from .serializers import (
    CampaignFilters,
    CampaignSerializer,
    CommentInputSerializer,
    CommentSerializer,
    HistoryEntrySerializer,
    OfferSerializer,
    ReasonSerializer,
    RequiredReasonSerializer,
)

# Service field names → the names this API uses, so a 400 names the field the client sent.
API_FIELD_NAMES = {
    "target_countries": "targeting.countries",
    "target_device_types": "targeting.device_types",
    "target_segments": "targeting.segments",
}

# Documented per operation; apps.core.openapi adds the error envelope, 401, 403, 429, the 404 of a
# path id and of an invalid page, and the 400 of a body or a filter.
BAD_INPUT = OpenApiResponse(description="Bad input: `{error, detail, field}` or `{error, detail, fields}` naming the field")
NO_CAMPAIGN = OpenApiResponse(description="No such campaign")
NO_OFFER = OpenApiResponse(description="No such campaign, or no such offer in it")
WRONG_STATE = OpenApiResponse(description="Not allowed in the campaign's current state (`field` names what)")
VOTE_REFUSED = OpenApiResponse(description="Wrong role, or a self-approval (`self_approval`)")
VOTE_CONFLICT = OpenApiResponse(description="Not in review (`field: status`), or already voted this round (`already_voted`)")
READ = {404: NO_CAMPAIGN}
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_KEY = OpenApiParameter(
    KEY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Optional, a unique key per campaign (e.g. a UUID): a retry with the same key and body returns "
                "the campaign the first request created (header `Idempotent-Replayed: true`) instead of "
                "creating another; the same key with a different body is a 409. Keys are per user, kept 7 days.",
)
IDEMPOTENCY_CONFLICT = OpenApiResponse(description="The Idempotency-Key was used with a different body (`idempotency_conflict`)")
WRITE = {400: BAD_INPUT, 404: NO_CAMPAIGN, 409: WRONG_STATE}


def _service(fn, **kwargs):
    """Call a service; rename the field of a refusal to the API's name for it."""
    try:
        return fn(**kwargs)
    except ServiceError as exc:
        if exc.field in API_FIELD_NAMES:
            exc.field = API_FIELD_NAMES[exc.field]
        raise


def _transition_schema(summary: str, *, reason_required: bool = False, role: str = "Marketer", vote: bool = False):
    errors = {**WRITE, 403: VOTE_REFUSED, 409: VOTE_CONFLICT} if vote else WRITE
    return extend_schema(
        tags=["campaigns"],
        summary=summary,
        description=f"Role: {role}. Same rules as the admin buttons; every call writes an audit row.",
        request=RequiredReasonSerializer if reason_required else ReasonSerializer,
        responses={200: CampaignSerializer, **errors},
    )


# Realistic request bodies for the docs (Swagger UI otherwise invents values from the types: negative bids).
CAMPAIGN_EXAMPLE = OpenApiExample(
    "Spring sale", request_only=True, summary="A display campaign in the US and Canada",
    value={"name": "Spring sale 2027", "advertiser": "Example Shop", "budget": "5000.00", "currency": "USD",
           "channels": ["display"], "start_at": "2027-03-01T09:00:00Z", "end_at": "2027-03-31T23:59:00Z",
           "target_countries": ["USA", "CAN"], "target_device_types": ["mobile", "desktop"], "target_segments": [],
           "max_impressions_per_hour": 3, "max_impressions_per_day": 10},
)
OFFER_EXAMPLE = OpenApiExample(
    "Medium rectangle", request_only=True, summary="A 300×250 banner bidding at most 2.50 per 1,000 impressions",
    value={"name": "Spring sale 300x250",
           "creative_markup": '<a href="https://shop.example.com/spring"><img src="https://shop.example.com/s.png" '
                              'width="300" height="250" alt="Spring sale"></a>',
           "width": 300, "height": 250, "format": "banner", "landing_url": "https://shop.example.com/spring",
           "advertiser_domain": "shop.example.com", "category": "IAB22", "max_bid_cpm": "2.5000", "priority": 5},
)


@extend_schema_view(
    list=extend_schema(tags=["campaigns"], summary="List campaigns", parameters=[CampaignFilters],
                       responses={200: CampaignSerializer(many=True)}),
    retrieve=extend_schema(tags=["campaigns"], summary="Read a campaign (with its offers)", responses={200: CampaignSerializer, **READ}),
    create=extend_schema(tags=["campaigns"], summary="Create a draft campaign (Marketer)",
                         parameters=[IDEMPOTENCY_KEY], examples=[CAMPAIGN_EXAMPLE],
                         responses={201: CampaignSerializer, 400: BAD_INPUT, 409: IDEMPOTENCY_CONFLICT}),
    update=extend_schema(tags=["campaigns"], summary="Replace a campaign's editable fields (Marketer)", responses={200: CampaignSerializer, **WRITE}),
    partial_update=extend_schema(tags=["campaigns"], summary="Change some fields (Marketer)",
                                 description="Which fields may change depends on the state; an edit while in review voids the votes so far.",
                                 responses={200: CampaignSerializer, **WRITE}),
)
class CampaignViewSet(viewsets.GenericViewSet):
    serializer_class = CampaignSerializer
    lookup_value_regex = r"\d+"

    MARKETER_ACTIONS = {"create", "update", "partial_update", "submit", "revise", "schedule", "go_live", "pause",
                        "resume", "complete", "archive"}
    APPROVER_ACTIONS = {"approve", "reject", "request_changes", "awaiting_decision"}

    def get_permissions(self):
        if self.action in self.MARKETER_ACTIONS:
            return [IsMarketer()]
        if self.action in self.APPROVER_ACTIONS:
            return [IsApprover()]
        return [IsStaffRole()]

    def get_queryset(self):
        filters = filter_params(self.request, CampaignFilters)
        return selectors.campaign_list(**filters).select_related("created_by", "submitted_by")

    def get_object(self):
        return selectors.campaign_get(campaign_id=self.kwargs["pk"])

    def _respond(self, campaign, status_code=status.HTTP_200_OK) -> Response:
        campaign = selectors.campaign_get(campaign_id=campaign.pk)
        return Response(CampaignSerializer(campaign).data, status=status_code)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CampaignSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(CampaignSerializer(self.get_object()).data)

    def create(self, request):
        serializer = CampaignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get(KEY_HEADER)
        if key is None:
            campaign = _service(services.campaign_create, actor=request.user, **serializer.validated_data)
            return self._respond(campaign, status.HTTP_201_CREATED)
        campaign, replayed = _service(services.campaign_create_once, actor=request.user, idempotency_key=key,
                                      **serializer.validated_data)
        response = self._respond(campaign, status.HTTP_201_CREATED)
        if replayed:
            response[REPLAYED_HEADER] = "true"
        return response

    def update(self, request, pk=None):
        return self._update(request, partial=False)

    def partial_update(self, request, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool) -> Response:
        campaign = self.get_object()
        serializer = CampaignSerializer(campaign, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        campaign = _service(services.campaign_update, campaign_id=campaign.pk, actor=request.user,
                            source=EditSource.API, **serializer.validated_data)
        return self._respond(campaign)

    def _transition(self, request, pk, service, *, reason_required: bool = False, **extra) -> Response:
        body = (RequiredReasonSerializer if reason_required else ReasonSerializer)(data=request.data)
        body.is_valid(raise_exception=True)
        campaign = _service(service, campaign_id=int(pk), actor=request.user, reason=body.validated_data["reason"], **extra)
        return self._respond(campaign)

    @_transition_schema("Submit for approval (draft → in review)")
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        return self._transition(request, pk, services.campaign_submit)

    @_transition_schema("Approve (a vote; in review → approved once enough approvals are in)", role="Approver, not the submitter", vote=True)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._transition(request, pk, services.campaign_approve)

    @_transition_schema("Reject (in review → rejected); reason required", reason_required=True, role="Approver, not the submitter", vote=True)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._transition(request, pk, services.campaign_reject, reason_required=True)

    @_transition_schema("Request changes (in review → draft); reason required", reason_required=True, role="Approver", vote=True)
    @action(detail=True, methods=["post"], url_path="request-changes")
    def request_changes(self, request, pk=None):
        return self._transition(request, pk, services.campaign_request_changes, reason_required=True)

    @_transition_schema("Revise (rejected → draft)")
    @action(detail=True, methods=["post"])
    def revise(self, request, pk=None):
        return self._transition(request, pk, services.campaign_revise)

    @_transition_schema("Schedule (approved → scheduled); start must be in the future")
    @action(detail=True, methods=["post"])
    def schedule(self, request, pk=None):
        return self._transition(request, pk, services.campaign_schedule)

    @_transition_schema("Go live now (approved → live); start must have come")
    @action(detail=True, methods=["post"], url_path="go-live")
    def go_live(self, request, pk=None):
        return self._transition(request, pk, services.campaign_go_live)

    @_transition_schema("Pause (live → paused)")
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._transition(request, pk, services.campaign_pause)

    @_transition_schema("Resume (paused → live)")
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._transition(request, pk, services.campaign_resume)

    @_transition_schema("Complete early (live → completed); reason required", reason_required=True)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        return self._transition(request, pk, services.campaign_complete, reason_required=True)

    @_transition_schema("Archive (completed → archived)")
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        return self._transition(request, pk, services.campaign_archive)

    @extend_schema(tags=["campaigns"], summary="Campaigns awaiting my decision (Approver)",
                   description="In review, not submitted or created by me, and no vote from me in this round.",
                   responses={200: CampaignSerializer(many=True)})
    @action(detail=False, methods=["get"], url_path="awaiting-decision")
    def awaiting_decision(self, request):
        qs = selectors.campaign_list_awaiting_decision(user=request.user).select_related(
            "approval_rule", "created_by", "submitted_by").prefetch_related("offers")
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(CampaignSerializer(page, many=True).data)

    @extend_schema(methods=["GET"], tags=["campaigns"], summary="The campaign's comment thread, oldest first",
                   responses={200: CommentSerializer(many=True), **READ})
    @extend_schema(methods=["POST"], tags=["campaigns"], summary="Post a comment (Marketer or Approver)",
                   request=CommentInputSerializer,
                   examples=[OpenApiExample("Question", request_only=True,
                                            value={"body": "Can you use the new logo on the 300x250?"})],
                   responses={201: CommentSerializer, 400: BAD_INPUT, **READ})
    @action(detail=True, methods=["get", "post"])
    def comments(self, request, pk=None):
        campaign = self.get_object()
        if request.method == "POST":
            body = CommentInputSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            comment = _service(services.campaign_comment_add, campaign_id=campaign.pk, actor=request.user,
                               body=body.validated_data["body"])
            return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(selectors.campaign_comments(campaign_id=campaign.pk))
        return self.get_paginated_response(CommentSerializer(page, many=True).data)

    @extend_schema(tags=["campaigns"], summary="Audit trail: every transition, vote and edit, newest first",
                   description="Transitions and votes (`kind: transition`: who, from, to, why) and edits of the "
                               "campaign and its offers (`kind: edit`: who, from where, and `changes` with each "
                               "field's old and new value), merged newest first and paginated.",
                   responses={200: HistoryEntrySerializer(many=True), **READ})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        campaign = self.get_object()
        page = self.paginate_queryset(selectors.campaign_history_entries(campaign_id=campaign.pk))
        return self.get_paginated_response(HistoryEntrySerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(tags=["campaigns"], summary="List a campaign's offers", responses={200: OfferSerializer(many=True), **READ}),
    retrieve=extend_schema(tags=["campaigns"], summary="Read an offer", responses={200: OfferSerializer, 404: NO_OFFER}),
    create=extend_schema(tags=["campaigns"], summary="Add an offer (Marketer; draft or in review)",
                         examples=[OFFER_EXAMPLE], responses={201: OfferSerializer, **WRITE}),
    update=extend_schema(tags=["campaigns"], summary="Replace an offer (Marketer)", responses={200: OfferSerializer, **WRITE, 404: NO_OFFER}),
    partial_update=extend_schema(tags=["campaigns"], summary="Change an offer (Marketer)",
                                 description="After approval only name, max_bid_cpm, priority and observed_ctr may change.",
                                 responses={200: OfferSerializer, **WRITE, 404: NO_OFFER}),
    destroy=extend_schema(tags=["campaigns"], summary="Remove an offer (Marketer; draft or in review)",
                          responses={204: None, 404: NO_OFFER, 409: WRONG_STATE}),
)
class OfferViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = OfferSerializer
    lookup_value_regex = r"\d+"

    def get_permissions(self):
        if self.action in {"create", "update", "partial_update", "destroy"}:
            return [IsMarketer()]
        return [IsStaffRole()]

    def _campaign(self):
        return selectors.campaign_get(campaign_id=self.kwargs["campaign_pk"])

    def get_queryset(self):
        return selectors.offer_list(campaign_id=self._campaign().pk)

    def get_object(self):
        return selectors.offer_get(campaign_id=self._campaign().pk, offer_id=self.kwargs["pk"])

    def retrieve(self, request, campaign_pk=None, pk=None):
        return Response(OfferSerializer(self.get_object()).data)

    def create(self, request, campaign_pk=None):
        campaign = self._campaign()
        serializer = OfferSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        offer = _service(services.offer_create, campaign_id=campaign.pk, actor=request.user, source=EditSource.API,
                         **serializer.validated_data)
        return Response(OfferSerializer(offer).data, status=status.HTTP_201_CREATED)

    def update(self, request, campaign_pk=None, pk=None):
        return self._update(request, partial=False)

    def partial_update(self, request, campaign_pk=None, pk=None):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool) -> Response:
        offer = self.get_object()
        serializer = OfferSerializer(offer, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        offer = _service(services.offer_update, offer_id=offer.pk, actor=request.user, source=EditSource.API,
                         **serializer.validated_data)
        return Response(OfferSerializer(offer).data)

    def destroy(self, request, campaign_pk=None, pk=None):
        offer = self.get_object()
        _service(services.offer_delete, offer_id=offer.pk, actor=request.user, source=EditSource.API)
        return Response(status=status.HTTP_204_NO_CONTENT)
