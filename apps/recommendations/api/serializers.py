"""Shapes of the catalogue and recommendations API, for the schema. The rules themselves are checked by
``validation.clean_item`` and the selectors, which name the offending field."""
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.fields import StrictCharField

from ..models import CatalogImport, CatalogItem
from ..selectors import STRATEGY_NAMES
from ..validation import DATETIME_PATTERN, PRICE_PATTERN


class CatalogItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = CatalogItem
        fields = ["item_id", "name", "category", "tags", "attributes", "price", "available", "created_at",
                  "updated_at"]


@extend_schema_field({"oneOf": [{"type": "number", "minimum": 0, "maximum": 9999999999.99},
                               {"type": "string", "pattern": PRICE_PATTERN}], "nullable": True,
                     "description": "At most 2 decimal places: 89.9 or \"89.90\""})
class PriceField(serializers.Field):
    pass


@extend_schema_field({"type": "string", "format": "date-time", "pattern": DATETIME_PATTERN, "nullable": True,
                      "description": "Arrival in the catalogue; kept when omitted on an update"})
class ArrivalField(serializers.Field):
    pass


class CatalogItemInputSerializer(serializers.Serializer):
    """Documentation of the PUT body (``validation.clean_item`` checks it, at least as strictly)."""

    name = serializers.CharField(max_length=255)
    category = serializers.CharField(max_length=128, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=50)
    attributes = serializers.DictField(child=serializers.FloatField(), required=False,
                                       help_text="Numeric attributes, e.g. {\"weight_kg\": 1.2}")
    price = PriceField(required=False)
    available = serializers.BooleanField(required=False, default=True)
    created_at = ArrivalField(required=False)


class CatalogImportSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    refused_rows_url = serializers.SerializerMethodField()

    class Meta:
        model = CatalogImport
        fields = ["id", "filename", "format", "status", "total_rows", "processed_rows", "percent", "created",
                  "updated", "refused", "refused_rows_url", "error", "created_at", "started_at", "finished_at"]

    def get_refused_rows_url(self, obj) -> str:
        return f"/v1/catalog/imports/{obj.pk}/refused.csv"


class ImportUploadSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=CatalogImport.Format.choices,
                                     help_text="jsonl: one item object per line, with item_id; csv: item_id,name"
                                               "[,category,tags,attributes,price,available,created_at], tags "
                                               "separated by |, attributes as a JSON object")
    content = StrictCharField(trim_whitespace=False, help_text="The file's text")
    filename = StrictCharField(max_length=255, required=False, allow_blank=True, help_text="Shown in the admin")


class RecommendationQuerySerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=STRATEGY_NAMES, required=False, default="auto")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=10)


class RecommendedItemSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    score = serializers.FloatField()
    reason = serializers.CharField(help_text='For a marketer: "bought with Trail Shoes", "popular in the last 24 h"')


class RecommendationsSerializer(serializers.Serializer):
    user_id = serializers.CharField()
    strategy = serializers.CharField()
    items = RecommendedItemSerializer(many=True)
