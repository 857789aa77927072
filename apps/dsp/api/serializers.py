from decimal import Decimal

from rest_framework import serializers


class WinSerializer(serializers.Serializer):
    platform = serializers.CharField(max_length=64)
    auction_id = serializers.CharField(max_length=512)
    bid_id = serializers.CharField(max_length=512)
    imp_id = serializers.CharField(max_length=512)
    win_price = serializers.DecimalField(max_digits=14, decimal_places=6, min_value=Decimal("0.000001"),
                                         help_text="Clearing price, CPM, in the auction's currency")


class WinResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["counted", "duplicate"])
    platform = serializers.CharField()
    bid_id = serializers.CharField()
    hour = serializers.DateTimeField()
    wins = serializers.IntegerField(help_text="Wins of the platform in this hour")
    spend = serializers.DecimalField(max_digits=18, decimal_places=6)
    over_budget = serializers.BooleanField()
    notices = serializers.IntegerField(help_text="nurl/burl/lurl calls queued")


class SpendQuerySerializer(serializers.Serializer):
    platform = serializers.CharField(required=False, max_length=64)
    locals()["from"] = serializers.DateTimeField(required=False, help_text="Start (inclusive); default 24 h ago")
    to = serializers.DateTimeField(required=False, help_text="End (exclusive); default now")


class SpendRowSerializer(serializers.Serializer):
    platform = serializers.CharField()
    hour = serializers.DateTimeField()
    wins = serializers.IntegerField()
    spend = serializers.DecimalField(max_digits=18, decimal_places=6)
    currency = serializers.CharField()
    average_win_price = serializers.DecimalField(max_digits=18, decimal_places=6, allow_null=True)
    hourly_budget = serializers.DecimalField(max_digits=12, decimal_places=2)


class BucketSerializer(serializers.Serializer):
    qps_cap = serializers.IntegerField()
    per_worker_rate = serializers.FloatField(allow_null=True)
    workers = serializers.IntegerField()


class BudgetSerializer(serializers.Serializer):
    hourly_budget = serializers.DecimalField(max_digits=12, decimal_places=2)
    hour = serializers.DateTimeField()
    wins = serializers.IntegerField()
    spend = serializers.DecimalField(max_digits=18, decimal_places=6)
    remaining = serializers.DecimalField(max_digits=18, decimal_places=6, allow_null=True)
    over_budget = serializers.BooleanField()


class StatusSerializer(serializers.Serializer):
    platform = serializers.CharField()
    kind = serializers.CharField()
    enabled = serializers.BooleanField()
    breaker = serializers.CharField(help_text="closed | open | half_open")
    bucket = BucketSerializer()
    budget = BudgetSerializer()
