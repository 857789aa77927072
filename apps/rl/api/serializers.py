"""Request and response shapes of /v1/decisions (the response serializers document the schema)."""
import orjson
from rest_framework import serializers

from apps.core import fields
from apps.core.channels import Channel
from apps.core.identifiers import USER_ID_PATTERN
from apps.rl.models import Decision, DecisionSource, DecisionStatus
from apps.rl.services.decisions import ID_MAX, MAX_CANDIDATES, TIERS

CONTEXT_MAX_BYTES = 8192
CHANNELS = [c for c in Channel.values if c != Channel.ALL]


class DecisionRequestSerializer(serializers.Serializer):
    def get_fields(self):
        declared = super().get_fields()
        declared["context"] = serializers.DictField(
            required=False, default=dict,
            help_text=f"Free-form context features, logged with the decision; `tier` ({', '.join(TIERS)}) "
                      "overrides the member's loyalty tier; at most "
                      f"{CONTEXT_MAX_BYTES:,} bytes as JSON, integers within 64 bits")
        return declared

    def validate_context(self, value):
        """The context is logged as JSON (Postgres and ClickHouse): it must encode, and stay small."""
        try:
            encoded = orjson.dumps(value)
        except orjson.JSONEncodeError as exc:
            raise serializers.ValidationError(f"cannot be logged as JSON: {exc}") from exc
        if len(encoded) > CONTEXT_MAX_BYTES:
            raise serializers.ValidationError(
                f"is {len(encoded):,} bytes as JSON; at most {CONTEXT_MAX_BYTES:,} are logged with a decision")
        return value

    user_id = fields.StrictRegexField(USER_ID_PATTERN, max_length=128, help_text="1-128 characters, no whitespace")
    channel = serializers.ChoiceField(choices=CHANNELS)
    # ``context`` and ``source`` are also attributes of a DRF field/serializer: declared in get_fields
    candidates = serializers.ListField(
        child=fields.StrictCharField(max_length=ID_MAX), required=False, min_length=1, max_length=MAX_CANDIDATES,
        help_text=f"Offer ids to choose among (1..{MAX_CANDIDATES}); default: the live offers for the channel")


class DecisionResponseSerializer(serializers.Serializer):
    def get_fields(self):
        declared = super().get_fields()
        declared["source"] = serializers.ChoiceField(choices=DecisionSource.choices)
        return declared

    decision_id = serializers.UUIDField()
    offer_id = serializers.CharField()
    campaign_id = serializers.CharField(allow_null=True, help_text="null when the candidates were given")
    propensity = serializers.FloatField(help_text="Probability the policy chose this offer (logged for evaluation)")
    segment = serializers.CharField(help_text="channel:tier, the posterior's context")
    tier = serializers.CharField()
    candidates = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(help_text="A decision with no reward by then closes as a failure")
    fallback_reason = serializers.CharField(help_text="Why Thompson answered: off, timeout, error, breaker_open, "
                                                      "bad_answer; empty when OfferFit did")
    probabilities = serializers.DictField(child=serializers.FloatField())


class RewardRequestSerializer(serializers.Serializer):
    value = fields.StrictFloatField(help_text="> 0 is a success for the posterior, ≤ 0 a failure; the raw value is kept")


class RewardResponseSerializer(serializers.Serializer):
    decision_id = serializers.UUIDField()
    applied = serializers.BooleanField(help_text="False when the decision was already closed or its wait time passed")
    status = serializers.ChoiceField(choices=DecisionStatus.choices)
    reward_value = serializers.FloatField(allow_null=True, help_text="The value that closed the decision")
    reason = serializers.CharField(help_text="already_closed or wait_time_passed when not applied")


class DecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Decision
        fields = ["decision_id", "user_id", "channel", "tier", "segment", "offer_id", "campaign_id", "propensity",
                  "source", "fallback_reason", "candidates", "probabilities", "context", "status", "reward_value",
                  "reward_source", "created_at", "expires_at", "closed_at"]
