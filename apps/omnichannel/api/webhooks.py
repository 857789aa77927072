"""Provider callbacks. They authenticate by the provider's own signature, not by our tokens.

* ``POST /v1/webhooks/sendgrid`` — SendGrid Event Webhook: a JSON array of events, signed with ECDSA
  and checked against ``SENDGRID_WEBHOOK_VERIFICATION_KEY`` (without a key: 403 ``not_configured``,
  unless ``SENDGRID_WEBHOOK_ALLOW_UNSIGNED`` in development). Stored raw and answered at once (202); a
  task applies it (idempotent on sg_event_id).
* ``POST /v1/webhooks/twilio/status`` — Twilio message status callbacks (form-encoded), checked with
  ``X-Twilio-Signature``.
"""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services, signatures
from .serializers import ErrorOut


class SendGridEventsView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "webhook"  # per provider address, its own budget (API_RATE_LIMIT_WEBHOOK)

    @extend_schema(
        tags=["webhooks"], request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={202: OpenApiResponse(description="Stored; processed in the background"),
                   400: ErrorOut, 401: ErrorOut,
                   403: OpenApiResponse(ErrorOut, description="`not_configured`: no verification key is set")},
        summary="SendGrid Event Webhook",
        description=(
            "SendGrid's event format: a JSON array of objects with `event`, `email`, integer `timestamp`, "
            "`sg_event_id`, `sg_message_id` and our custom args (`activation_id`, `user_id`, `offer_id`). "
            "`X-Twilio-Email-Event-Webhook-Signature` (base64 DER ECDSA P-256 over timestamp + body) and "
            "`X-Twilio-Email-Event-Webhook-Timestamp` are required (401 when missing, wrong or stale). With no "
            "verification key configured the endpoint refuses everything with 403 `not_configured`."
        ),
    )
    def post(self, request):
        body = request.body  # the exact bytes SendGrid signed; read before anything parses them
        batch = services.sendgrid_webhook_receive(
            body=body,
            signature=request.headers.get(signatures.SENDGRID_SIGNATURE_HEADER),
            timestamp=request.headers.get(signatures.SENDGRID_TIMESTAMP_HEADER),
        )
        return Response({"accepted": batch.event_count, "batch_id": batch.pk}, status=202)


class TwilioStatusView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "webhook"
    parser_classes = [FormParser, MultiPartParser]

    @extend_schema(
        tags=["webhooks"], request=None,
        responses={204: OpenApiResponse(description="Applied"), 401: ErrorOut, 403: ErrorOut},
        summary="Twilio message status callback",
        description="Form fields MessageSid, MessageStatus, ErrorCode, … signed with X-Twilio-Signature.",
    )
    def post(self, request):
        # The signature covers the URL Twilio was given (TWILIO_STATUS_CALLBACK_URL); behind a proxy the
        # URL Django sees differs, so that setting wins when present.
        url = settings.TWILIO_STATUS_CALLBACK_URL or request.build_absolute_uri()
        params = [(name, value) for name, values in request.POST.lists() for value in values]
        services.twilio_status_record(url=url, params=params,
                                      signature=request.headers.get(signatures.TWILIO_SIGNATURE_HEADER))
        return Response(status=204)
