"""Loyalty analytics events land in ClickHouse through the real pipeline; the demo seed is idempotent."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.analytics import testing as analytics_testing
from apps.analytics.emitter import stable_event_id
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


def _events(user: str) -> list[tuple]:
    """(event_type, event_id, stars) of the user's events, as reports see them (FINAL: one row per id)."""
    return sorted(clickhouse.execute(
        "SELECT event_type, event_id, stars FROM analytics_events FINAL WHERE user_id = %(u)s", {"u": user}))


@pytest.mark.django_db
def test_a_write_whose_after_commit_was_lost_emits_its_events_on_the_retry(redis_client,
                                                                            django_capture_on_commit_callbacks):
    """Postgres restarting: the COMMIT reached the database, the answer did not, Django ran no on_commit
    callback (here: captured and dropped). The client's retry is a replay, which emits the events then."""
    analytics_testing.clickhouse_schema()
    user = f"u-lost-{uuid.uuid4().hex[:10]}"
    with django_capture_on_commit_callbacks(execute=False) as dropped:
        services.loyalty_earn(user_id=user, amount_cents=49_950, channel="app", transaction_id="t1")  # Gold
        services.loyalty_redeem(user_id=user, redemption_tier="merchandise", idempotency_key="k1")
        services.loyalty_adjust(user_id=user, stars=-100, reason="test", idempotency_key="a1")
    assert dropped  # the three writes' after-commit work (profile, events, metrics), never run
    analytics_testing.flush_and_consume()
    assert _events(user) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert services.loyalty_earn(user_id=user, amount_cents=49_950, channel="app", transaction_id="t1").replayed
        assert services.loyalty_redeem(user_id=user, redemption_tier="merchandise", idempotency_key="k1").replayed
        assert services.loyalty_adjust(user_id=user, stars=-100, reason="test", idempotency_key="a1").replayed
    analytics_testing.flush_and_consume()
    entries = {e.kind: e.pk for e in LedgerEntry.objects.filter(account__user_id=user)}
    assert _events(user) == sorted([
        ("loyalty_earn", stable_event_id("loyalty.ledger", entries["earn"], "loyalty_earn"), 500),
        ("loyalty_tier_change", stable_event_id("loyalty.ledger", entries["earn"], "loyalty_tier_change"), None),
        ("loyalty_redeem", stable_event_id("loyalty.ledger", entries["redeem"], "loyalty_redeem"), 400),
        ("loyalty_adjust", stable_event_id("loyalty.ledger", entries["adjust"], "loyalty_adjust"), -100),
    ])


@pytest.mark.django_db
def test_a_replay_after_a_delivered_answer_adds_no_event(redis_client, django_capture_on_commit_callbacks):
    analytics_testing.clickhouse_schema()
    user = f"u-twice-{uuid.uuid4().hex[:10]}"
    for _ in range(3):  # the first call and two retries of it, each emitting
        with django_capture_on_commit_callbacks(execute=True):
            services.loyalty_earn(user_id=user, amount_cents=5_000, channel="app", transaction_id="t1")  # 50
            services.loyalty_redeem(user_id=user, redemption_tier="customization", idempotency_key="k1")  # 25
        analytics_testing.flush_and_consume()
    entries = {e.kind: e.pk for e in LedgerEntry.objects.filter(account__user_id=user)}
    # each event reached ClickHouse three times with one id and one timestamp: reports (FINAL) see one
    raw = clickhouse.execute("SELECT event_type, count(), uniqExact(event_id), uniqExact(timestamp) "
                             "FROM analytics_events WHERE user_id = %(u)s GROUP BY event_type ORDER BY event_type",
                             {"u": user})
    assert [row[2:] for row in raw] == [(1, 1), (1, 1)]
    assert _events(user) == [
        ("loyalty_earn", stable_event_id("loyalty.ledger", entries["earn"], "loyalty_earn"), 50),
        ("loyalty_redeem", stable_event_id("loyalty.ledger", entries["redeem"], "loyalty_redeem"), 25),
    ]


@pytest.mark.django_db
def test_a_reward_signal_whose_after_commit_was_lost_is_emitted_once_by_its_retries(redis_client,
                                                                                     django_capture_on_commit_callbacks):
    """The bid model's trainer joins reward signals from ClickHouse (apps.training): a signal whose first
    answer was lost must reach it on the client's retry, and retries must not count it twice."""
    analytics_testing.clickhouse_schema()
    user = f"u-sig-{uuid.uuid4().hex[:10]}"
    with django_capture_on_commit_callbacks(execute=False) as dropped:
        first = services.loyalty_reward_signal(user_id=user, offer_id="o-1", signal_type="redeemed", idempotency_key="s1")
    assert dropped and not first.replayed
    analytics_testing.flush_and_consume()
    assert _events(user) == []
    for _ in range(2):  # two retries of it, each answered from the stored answer and emitting
        with django_capture_on_commit_callbacks(execute=True):
            again = services.loyalty_reward_signal(user_id=user, offer_id="o-1", signal_type="redeemed",
                                                   idempotency_key="s1")
        assert again.replayed and again.signal_id == first.signal_id
        analytics_testing.flush_and_consume()
    signal_event = stable_event_id("loyalty.reward_signal", uuid.UUID(first.signal_id))
    raw = clickhouse.execute("SELECT count(), uniqExact(event_id), uniqExact(timestamp), any(amount) FROM "
                             "analytics_events WHERE user_id = %(u)s AND event_type = 'reward_signal'", {"u": user})
    assert raw[0][1:] == (1, 1, 2.0) and raw[0][0] == 2
    assert _events(user) == [("reward_signal", signal_event, None)]


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
