"""/v1/decisions: thin views over apps.rl.services and selectors (token auth, role-gated)."""
from __future__ import annotations

import uuid

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import NotFound
from apps.rl import selectors, services
from apps.rl.api import serializers as s
from apps.rl.roles import CanDecide, CanReadDecisions

ERROR = OpenApiResponse(description='`{"error": code, "detail": message, "field": name}`')


def _decision_uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"No decision {raw}.", field="decision_id") from None


class DecisionView(APIView):
    permission_classes = [CanDecide]

    @extend_schema(
        tags=["decisions"],
        summary="Choose an offer for a user",
        description=(
            "OfferFit (rank, Personalizer v1.0 shape) answers when configured and within 50 ms; when it is off, "
            "slow or failing, Thompson sampling over Beta(1,1) posteriors per (offer, channel × loyalty tier) "
            "answers instead — never an error. The answer carries the propensity the choice was made with; every "
            "decision is logged (context, candidates, choice, propensity) for off-policy evaluation. 201."
        ),
        request=s.DecisionRequestSerializer,
        responses={201: s.DecisionResponseSerializer, 400: ERROR, 422: ERROR},
        examples=[OpenApiExample("Email offer", request_only=True, value={
            "user_id": "u-123", "channel": "email", "context": {"daypart": "morning"},
            "candidates": ["41", "42", "43"]})],
    )
    def post(self, request: Request) -> Response:
        body = s.DecisionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.rl_decide(**body.validated_data)
        return Response(result.as_json(), status=status.HTTP_201_CREATED)


class DecisionDetailView(APIView):
    permission_classes = [CanReadDecisions]

    @extend_schema(tags=["decisions"], summary="One decision and its outcome",
                   responses={200: s.DecisionSerializer, 404: ERROR})
    def get(self, request: Request, decision_id: str) -> Response:
        decision = selectors.decision_get(decision_id=_decision_uuid(decision_id))
        return Response(s.DecisionSerializer(decision).data)


class RewardView(APIView):
    permission_classes = [CanDecide]

    @extend_schema(
        tags=["decisions"],
        summary="Report the reward of a decision",
        description=(
            "The first reward closes the decision: a success for its posterior when `value > 0`, a failure "
            "otherwise; the raw value is kept. A repeated reward, or one after the wait time, changes nothing "
            "and answers `applied: false`."
        ),
        request=s.RewardRequestSerializer,
        responses={200: s.RewardResponseSerializer, 400: ERROR, 404: ERROR},
    )
    def post(self, request: Request, decision_id: str) -> Response:
        body = s.RewardRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.rl_reward(decision_id=_decision_uuid(decision_id), value=body.validated_data["value"])
        return Response(result.as_json())
