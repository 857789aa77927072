"""/v1/loyalty/*: thin views over apps.loyalty.services and selectors (token auth, role-gated)."""
from __future__ import annotations

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.filters import filter_params
from apps.core.idempotency import KEY_HEADER
from apps.core.pagination import PageNumberPagination
from apps.loyalty import rules, selectors, services
from apps.loyalty.api import serializers as s
from apps.loyalty.roles import CanReadLoyalty, CanWriteLoyalty

REPLAYED_HEADER = "Idempotent-Replayed"
ERROR = OpenApiResponse(description='`{"error": code, "detail": message, "field": name}`')


def _decimal_text(value: Decimal) -> str:
    """``Decimal("1.4400")`` → ``"1.44"``, ``Decimal("2.0")`` → ``"2"`` (never exponent notation)."""
    return format(value.normalize(), "f")


def _replayed(response: Response, replayed: bool) -> Response:
    if replayed:
        response[REPLAYED_HEADER] = "true"
    return response


IDEMPOTENCY_KEY_REQUIRED = OpenApiParameter(
    KEY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
    description="A unique key per redemption (e.g. a UUID). A retry with the same key and body returns the "
                "first answer without spending again; the same key with a different body is a 409.",
)
IDEMPOTENCY_KEY_OPTIONAL = OpenApiParameter(
    KEY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description="Optional: a retry with the same key stores the signal once.",
)


class EarnView(APIView):
    permission_classes = [CanWriteLoyalty]

    @extend_schema(
        tags=["loyalty"],
        summary="Earn stars for a purchase",
        description=(
            "`stars = ceil(ceil(amount_cents/100) x rate)`, `rate = (tier multiplier + Σ(active promotion − 1) "
            "+ Σ(channel bonus − 1)) x 2.0 if referral x 1.2 if digital`, computed in Decimal. Unknown users are "
            "enrolled (Green). Idempotent on `(user_id, transaction_id)`: a replay returns the first answer "
            f"with header `{REPLAYED_HEADER}: true`; the same id with a different body is a 409."
        ),
        request=s.EarnRequestSerializer,
        responses={200: s.EarnResponseSerializer, 400: ERROR, 409: ERROR},
        examples=[OpenApiExample("Purchase in the app", request_only=True, value={
            "user_id": "u-123", "amount_cents": 1250, "channel": "app", "transaction_id": "pos-778812",
            "is_referral": False, "is_digital": True})],
    )
    def post(self, request: Request) -> Response:
        body = s.EarnRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.loyalty_earn(**body.validated_data)
        return _replayed(Response({
            "user_id": result.user_id,
            "stars_earned": result.stars_earned,
            "new_balance": result.new_balance,
            "earn_rate_applied": _decimal_text(result.earn_rate_applied),
            "tier": result.tier,
            "tier_changed": result.tier_changed,
            "new_tier": result.new_tier,
            "transaction_id": result.transaction_id,
        }), result.replayed)


class RedeemView(APIView):
    permission_classes = [CanWriteLoyalty]

    @extend_schema(
        tags=["loyalty"],
        summary="Redeem stars for a reward",
        description=(
            "Checks the tier (403 `Requires Gold tier, you are Green`), then the balance (422 "
            "`Insufficient stars: need 200, have 150`), then deducts atomically. Rewards: "
            + ", ".join(f"`{r.key}` {r.stars} stars (${r.value}{', Gold+' if r.min_tier != 'green' else ''})"
                        for r in rules.REDEMPTIONS.values())
            + f". Requires an `{KEY_HEADER}` header; a replay returns the first answer (or the first refusal)."
        ),
        parameters=[IDEMPOTENCY_KEY_REQUIRED],
        request=s.RedeemRequestSerializer,
        responses={200: s.RedeemResponseSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 422: ERROR},
    )
    def post(self, request: Request) -> Response:
        body = s.RedeemRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.loyalty_redeem(**body.validated_data, idempotency_key=request.headers.get(KEY_HEADER))
        data = result.as_json()
        return _replayed(Response(data), result.replayed)


class BalanceView(APIView):
    permission_classes = [CanReadLoyalty]

    @extend_schema(tags=["loyalty"], summary="A member's balance and tier standing",
                   responses={200: s.BalanceResponseSerializer, 404: ERROR})
    def get(self, request: Request, user_id: str) -> Response:
        b = selectors.loyalty_balance(user_id=user_id)
        return Response(s.BalanceResponseSerializer({
            **b.__dict__, "effective_earn_rate": _decimal_text(b.effective_earn_rate),
        }).data)


class RewardSignalView(APIView):
    permission_classes = [CanWriteLoyalty]

    @extend_schema(
        tags=["loyalty"],
        summary="Record a reward signal for model training",
        description="Stores the signal with the server-side reward (clicked +1.0, redeemed +2.0, ignored −0.1) "
                    "and publishes it on NATS `loyalty.reward-signals` (JetStream stream `LOYALTY`). 202.",
        parameters=[IDEMPOTENCY_KEY_OPTIONAL],
        request=s.RewardSignalRequestSerializer,
        responses={202: s.RewardSignalResponseSerializer, 400: ERROR, 409: ERROR},
    )
    def post(self, request: Request) -> Response:
        body = s.RewardSignalRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.loyalty_reward_signal(**body.validated_data, idempotency_key=request.headers.get(KEY_HEADER))
        return _replayed(Response(result.as_json(), status=status.HTTP_202_ACCEPTED), result.replayed)


class LedgerPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class LedgerView(generics.ListAPIView):
    permission_classes = [CanReadLoyalty]
    serializer_class = s.LedgerEntrySerializer
    pagination_class = LedgerPagination

    @extend_schema(
        tags=["loyalty"], summary="A member's ledger, newest first (paginated)",
        parameters=[s.LedgerFilters],
        responses={200: s.LedgerEntrySerializer(many=True), 404: OpenApiResponse(description="No such member")},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = filter_params(self.request, s.LedgerFilters)
        return selectors.loyalty_ledger(user_id=self.kwargs["user_id"], kind=filters.get("kind"))
