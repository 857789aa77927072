"""The ingest event format, shared by ``POST /v1/channels/ingest`` and the NATS consumers.

Unknown fields are ignored (kept in the stored payload). ``ingest_event_process`` validates with it and
raises ``InvalidIngestEvent`` (a ServiceError carrying every field's errors); the HTTP view and the
NATS consumer render that as the DRF validation envelope (``detail``, ``field`` and ``fields``).
"""
from __future__ import annotations

import re
from datetime import datetime
from datetime import timezone as dt_timezone

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.fields import StrictBooleanField, StrictCharField, StrictEmailField, StrictIntegerField
from apps.core.identifiers import user_id_problem

from .models import EventType, Source

_ID_RE = re.compile(r"^[^\s\x00-\x1f]+$")


def is_plain_id(value: str) -> bool:
    """Ids are non-empty printable strings without whitespace (they double as suppression identifiers)."""
    return bool(_ID_RE.match(value))


def validate_plain_id(value: str, *, what: str = "id") -> str:
    """The serializers' form of :func:`is_plain_id` (an empty value is left to ``allow_blank``)."""
    value = value.strip()
    if value and not is_plain_id(value):
        raise serializers.ValidationError(f"{what} must not contain spaces or control characters.")
    return value


@extend_schema_field({"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
                      "example": "2026-11-26T10:00:00Z"})
class EventTimestampField(serializers.Field):
    """ISO 8601 (with or without offset; naive means UTC) or unix time in seconds or milliseconds."""

    default_error_messages = {
        "invalid": "timestamp must be an ISO 8601 date-time or unix seconds, got {value!r}.",
    }

    def to_internal_value(self, data) -> datetime:
        if isinstance(data, bool):
            self.fail("invalid", value=data)
        if isinstance(data, (int, float)):
            seconds = data / 1000 if data > 1e11 else data  # milliseconds from JS clients
            try:
                return datetime.fromtimestamp(seconds, tz=dt_timezone.utc)
            except (OverflowError, OSError, ValueError):
                self.fail("invalid", value=data)
        if isinstance(data, str):
            try:
                parsed = parse_datetime(data.strip())
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=dt_timezone.utc)
        self.fail("invalid", value=data)

    def to_representation(self, value):
        return value.isoformat()


class IngestItemInput(serializers.Serializer):
    item_id = StrictCharField(max_length=128)
    quantity = StrictIntegerField(min_value=1, max_value=100_000, default=1)
    price_cents = StrictIntegerField(min_value=0, required=False)

    def validate_item_id(self, value):
        return validate_plain_id(value, what="item_id")


class IngestEventInput(serializers.Serializer):
    event_id = StrictCharField(max_length=128, help_text="Unique per event among the caller's events of this "
                                                         "source; a replay is accepted once")
    source = serializers.ChoiceField(choices=Source.choices)
    event_type = serializers.ChoiceField(choices=EventType.choices)
    user_id = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    device_id = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    timestamp = EventTimestampField(required=False, help_text="When it happened; default: when received")
    store_id = StrictCharField(max_length=64, required=False, allow_blank=True, default="")
    order_id = StrictCharField(max_length=128, required=False, allow_blank=True, default="",
                                     help_text="Order or basket id (alias: basket_id)")
    basket_id = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    amount_cents = StrictIntegerField(min_value=0, required=False, allow_null=True, default=None,
                                            help_text="Purchase amount in cents (required for purchase)")
    item_id = StrictCharField(max_length=128, required=False, allow_blank=True, default="")
    items = IngestItemInput(many=True, required=False, default=list)
    is_referral = StrictBooleanField(required=False, default=False)
    is_digital = StrictBooleanField(required=False, allow_null=True, default=None,
                                          help_text="Default: true for mobile_app and web purchases")
    email = StrictEmailField(max_length=320, required=False, allow_blank=True, default="")
    phone = StrictCharField(max_length=32, required=False, allow_blank=True, default="")
    fcm_token = StrictCharField(max_length=512, required=False, allow_blank=True, default="")
    apns_token = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
    properties = serializers.DictField(required=False, default=dict, help_text="Anything else (query, page, rating…)")

    def validate_event_id(self, value):
        return validate_plain_id(value, what="event_id")

    def validate_user_id(self, value):
        # The platform's one rule (apps.core.identifiers); an empty value is left to allow_blank.
        value = value.strip()
        if value and (problem := user_id_problem(value)):
            raise serializers.ValidationError(f"user_id {problem}.")
        return value

    def validate_device_id(self, value):
        return validate_plain_id(value, what="device_id")

    def validate_items(self, value):
        if len(value) > 500:
            raise serializers.ValidationError("at most 500 items per event.")
        return value

    def validate(self, attrs):
        attrs["order_id"] = attrs.get("order_id") or attrs.get("basket_id") or ""
        attrs.pop("basket_id", None)
        return attrs
