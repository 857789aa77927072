"""Shapes of the suppression API. Field rules (identifier format, channel, reason, expiry) are checked
by the services, which name the offending field; these serializers only check types."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.fields import ISO_DATE_OR_DATETIME, StrictCharField

from ..identifiers import MAX_LENGTH as IDENTIFIER_MAX
from ..models import Channel, Reason, SuppressionAudit, SuppressionEntry

MAX_BULK_ROWS = 10_000

_IDENTIFIER_HELP = (
    "Email (lower-cased and trimmed), phone number with country code (stored as E.164, e.g. "
    '"+1 (415) 555-0100" → "+14155550100", "0044 20 7946 0958" → "+442079460958"), or a user id / '
    "device token kept as given."
)
_EXPIRES_HELP = "ISO 8601 date or datetime in the future (a date means 00:00 UTC that day); null or omitted = permanent."


# The service checks channel, reason and expiry (validate_channel, validate_reason, parse_expires_at) with
# messages that name the row of a bulk request; these fields document the same rules in the schema.
class ServiceCheckedChoiceField(serializers.ChoiceField):
    """Documented as its enum; the value goes to the service as sent, which refuses anything else."""

    def to_internal_value(self, data):
        return data


@extend_schema_field({"type": "string", "nullable": True, "pattern": ISO_DATE_OR_DATETIME})
class ExpiryText(StrictCharField):
    pass


class SuppressionEntrySerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    active = serializers.SerializerMethodField()

    class Meta:
        model = SuppressionEntry
        fields = ["id", "identifier", "identifier_kind", "channel", "reason", "source", "created_by",
                  "created_at", "updated_at", "expires_at", "active"]

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None

    def get_active(self, obj) -> bool:
        return obj.is_active()


class SuppressionAuditSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = SuppressionAudit
        fields = ["id", "action", "identifier", "channel", "reason", "source", "expires_at", "previous", "actor",
                  "note", "at"]

    def get_actor(self, obj) -> str | None:
        return obj.actor.get_username() if obj.actor_id else None


class SuppressionAddSerializer(serializers.Serializer):
    """One entry to add. Channel and reason are validated by the service (400 naming the field)."""

    identifier = StrictCharField(help_text=_IDENTIFIER_HELP, trim_whitespace=False, max_length=IDENTIFIER_MAX)
    channel = ServiceCheckedChoiceField(choices=Channel.choices)
    reason = ServiceCheckedChoiceField(choices=Reason.choices)
    expires_at = ExpiryText(required=False, allow_null=True, allow_blank=True, help_text=_EXPIRES_HELP)
    source = StrictCharField(required=False, allow_blank=True, max_length=200,
                                   help_text='Free text, e.g. "sendgrid:unsubscribe" or "support ticket 123" (default "api")')


class BulkAddRowSerializer(SuppressionAddSerializer):
    """Documentation shape of one bulk-add row."""


class BulkAddRequestSerializer(serializers.Serializer):
    entries = serializers.ListField(child=serializers.DictField(), allow_empty=False, min_length=1, max_length=MAX_BULK_ROWS,
                                    help_text=f"Up to {MAX_BULK_ROWS} rows: identifier, channel, reason[, expires_at][, source]")
    source = StrictCharField(required=False, allow_blank=True, max_length=200,
                                   help_text='Default source for rows that have none (default "api:bulk-add")')


class BulkAddRequestDocSerializer(serializers.Serializer):
    entries = BulkAddRowSerializer(many=True, allow_empty=False, min_length=1, max_length=MAX_BULK_ROWS)
    source = StrictCharField(required=False, allow_blank=True, max_length=200)


class BulkRemoveRowSerializer(serializers.Serializer):
    identifier = StrictCharField(help_text=_IDENTIFIER_HELP, max_length=IDENTIFIER_MAX)
    channel = ServiceCheckedChoiceField(choices=Channel.choices, help_text="Removes that entry only")


class BulkRemoveRequestSerializer(serializers.Serializer):
    entries = serializers.ListField(child=serializers.DictField(), allow_empty=False, min_length=1, max_length=MAX_BULK_ROWS)
    note = StrictCharField(max_length=500, help_text="Why these people are un-suppressed (kept in the audit trail)")


class BulkRemoveRequestDocSerializer(serializers.Serializer):
    entries = BulkRemoveRowSerializer(many=True, allow_empty=False, min_length=1, max_length=MAX_BULK_ROWS)
    note = StrictCharField(max_length=500)


class SkippedRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="0-based index into entries")
    reason = serializers.CharField()


class BulkAddResultSerializer(serializers.Serializer):
    added = serializers.IntegerField(help_text="New entries (or expired ones brought back)")
    updated = serializers.IntegerField(help_text="Active entries lengthened (later expiry or made permanent)")
    skipped = SkippedRowSerializer(many=True, help_text="Duplicates in the payload and rows already suppressed")


class BulkRemoveResultSerializer(serializers.Serializer):
    removed = serializers.IntegerField()
    skipped = SkippedRowSerializer(many=True)


class CheckQuerySerializer(serializers.Serializer):
    identifier = serializers.CharField(trim_whitespace=False, max_length=320)
    channel = serializers.ChoiceField(choices=Channel.choices, required=False,
                                      help_text="Omit to check every channel")


class ListFiltersSerializer(serializers.Serializer):
    """Query parameters of the list: unknown values and empty values are 400s naming the parameter."""

    channel = serializers.ChoiceField(choices=Channel.choices, required=False)
    reason = serializers.ChoiceField(choices=Reason.choices, required=False)
    identifier = serializers.CharField(required=False, max_length=320, help_text="Exact match after normalisation")
    search = serializers.CharField(required=False, max_length=320,
                                   help_text="Case-insensitive substring of the identifier")
    # Not allow_null: DRF reads an empty value as null there, and ``?active=`` is no yes or no.
    active = serializers.BooleanField(required=False,
                                      help_text="true = unexpired only, false = expired (not yet purged) only")


class HistoryQuerySerializer(serializers.Serializer):
    identifier = serializers.CharField(max_length=320)


class CheckResultSerializer(serializers.Serializer):
    identifier = serializers.CharField(help_text="Normalised form")
    channel = serializers.CharField(allow_null=True)
    suppressed = serializers.BooleanField()
    entries = SuppressionEntrySerializer(many=True)

