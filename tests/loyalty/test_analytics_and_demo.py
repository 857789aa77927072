"""Loyalty analytics events land in ClickHouse through the real pipeline; the demo seed is idempotent."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.analytics import testing as analytics_testing
from apps.core import clickhouse
from apps.core.profiles import profile_read
from apps.loyalty import demo, selectors, services
from apps.loyalty.models import LedgerEntry, LoyaltyAccount, Promotion


@pytest.mark.django_db
def test_earn_redeem_tier_change_and_expiry_events_reach_clickhouse(redis_client, django_capture_on_commit_callbacks):
    analytics_testing.clickhouse_schema()
    user = f"u-an-{uuid.uuid4().hex[:10]}"
    with django_capture_on_commit_callbacks(execute=True):
        services.loyalty_earn(user_id=user, amount_cents=49_950, channel="app", transaction_id="t1")  # 500: Gold
        services.loyalty_redeem(user_id=user, redemption_tier="merchandise", idempotency_key="k1")
        services.loyalty_adjust(user_id=user, stars=-100, reason="test")
    analytics_testing.flush_and_consume()
    rows = clickhouse.execute(
        "SELECT event_type, stars, tier, amount, channel FROM analytics_events WHERE user_id = %(u)s ORDER BY timestamp, event_type",
        {"u": user},
    )
    assert sorted(rows) == sorted([
        ("loyalty_earn", 500, "gold", 499.5, "app"),
        ("loyalty_tier_change", None, "gold", None, ""),
        ("loyalty_redeem", 400, "gold", 15.0, ""),
        ("loyalty_adjust", -100, "gold", None, ""),
    ])


@pytest.mark.django_db
def test_demo_seed_is_idempotent_and_writes_profiles(redis_client):
    demo.seed()
    ledger_rows = LedgerEntry.objects.count()
    balances = dict(LoyaltyAccount.objects.values_list("user_id", "balance"))
    demo.seed()
    assert LedgerEntry.objects.count() == ledger_rows
    assert dict(LoyaltyAccount.objects.values_list("user_id", "balance")) == balances
    assert {selectors.loyalty_balance(user_id=u).tier for u in demo.MEMBERS} == {"green", "gold", "reserve"}
    for user_id in demo.MEMBERS:
        assert selectors.loyalty_ledger_sum(user_id=user_id) == balances[user_id]
        profile = profile_read(user_id=user_id)
        assert profile["loyalty"] == selectors.loyalty_feature_vector(user_id=user_id)
    promotion = Promotion.objects.get(name=demo.PROMOTION_NAME)
    assert promotion.starts_at <= timezone.now() < promotion.ends_at <= timezone.now() + timedelta(days=31)
