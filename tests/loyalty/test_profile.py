"""The loyalty feature vector (docs/RULES.md §2.7) and the Redis bidding profile it is written to."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.core import redis as redis_store
from apps.core.profiles import PROFILE_CHANNEL, PROFILE_TTL_SECONDS, profile_key, profile_read
from apps.loyalty import rules, selectors, services
from apps.loyalty.models import LoyaltyAccount

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=dt_timezone.utc)


def vector(**overrides) -> list[float]:
    args = dict(tier="green", balance=0, qualifying_stars=0, effective_rate=Decimal("1.0"), last_redeem_at=None,
                birthday=None, preferred_channel="", lifetime_stars=0, now=NOW)
    return rules.feature_vector(**{**args, **overrides})


def test_vector_of_a_new_member():
    assert vector() == [0.0, 0.0, 0.0, 0.5, 0.0, 0.0, -1.0, 0.0]


def test_vector_elements():
    v = vector(tier="gold", balance=1250, qualifying_stars=1000, effective_rate=Decimal("2.2"),
               last_redeem_at=NOW - timedelta(days=15), birthday=date(1990, 6, 10), preferred_channel="web",
               lifetime_stars=12_500)
    assert v == [0.5, 0.25, 0.4, 1.1, round(1 / 1.5, 6), 1.0, 0.66, 0.25]


def test_vector_caps_and_reserve_progress():
    v = vector(tier="reserve", balance=9000, qualifying_stars=100, lifetime_stars=80_000, preferred_channel="drive_through")
    assert v[0] == 1.0 and v[1] == 1.0 and v[2] == 1.0 and v[6] == 1.0 and v[7] == 1.0


@pytest.mark.parametrize("channel,value", [("in_store", 0.0), ("app", 0.33), ("web", 0.66), ("drive_through", 1.0), ("", -1.0)])
def test_preferred_channel_values(channel, value):
    assert vector(preferred_channel=channel)[6] == value


@pytest.mark.parametrize("tier,qualifying,progress", [("green", 0, 0.0), ("green", 250, 0.5), ("green", 499, 0.998),
                                                      ("gold", 1250, 0.5), ("gold", 0, 0.0), ("reserve", 0, 1.0)])
def test_tier_progress(tier, qualifying, progress):
    assert rules.tier_progress(tier=tier, qualifying_stars=qualifying) == progress


@pytest.mark.parametrize("tier,birthday,today,eligible", [
    ("green", date(1990, 6, 15), date(2026, 6, 15), True),
    ("green", date(1990, 6, 14), date(2026, 6, 15), False),
    ("gold", date(1990, 6, 9), date(2026, 6, 15), True),     # day 7 of the 7-day window
    ("gold", date(1990, 6, 8), date(2026, 6, 15), False),
    ("gold", date(1990, 6, 16), date(2026, 6, 15), False),   # not yet
    ("reserve", date(1985, 12, 20), date(2026, 1, 5), True),  # window runs over New Year
    ("reserve", date(1985, 12, 1), date(2026, 1, 5), False),
    ("green", date(1992, 2, 29), date(2027, 2, 28), True),   # Feb 29 falls on Feb 28 in other years
    ("green", None, date(2026, 6, 15), False),
])
def test_birthday_window(tier, birthday, today, eligible):
    assert rules.birthday_eligible(birthday=birthday, tier=tier, today=today) is eligible


def test_redeem_recency():
    assert rules.redeem_recency(last_redeem_at=None, now=NOW) == 0.0
    assert rules.redeem_recency(last_redeem_at=NOW, now=NOW) == 1.0
    assert rules.redeem_recency(last_redeem_at=NOW - timedelta(days=30), now=NOW) == 0.5
    assert rules.redeem_recency(last_redeem_at=NOW - timedelta(hours=36), now=NOW) == pytest.approx(1 / 1.05)


def test_unknown_user_has_a_zero_vector(db):
    assert selectors.loyalty_feature_vector(user_id="never-seen") == [0.0] * 8


@pytest.mark.django_db
def test_profile_after_earn_and_after_redeem(redis_client, make_promotion, django_capture_on_commit_callbacks):
    make_promotion("1.5")
    with django_capture_on_commit_callbacks(execute=True):
        services.loyalty_earn(user_id="u-prof", amount_cents=40_000, channel="app", transaction_id="t-1")  # 400 x 1.5
    LoyaltyAccount.objects.filter(user_id="u-prof").update(birthday=timezone.now().date())
    profile = profile_read(user_id="u-prof")
    # Gold (600 qualifying), balance 600, progress 600/2500, rate (1.2 + 0.5)/2, never redeemed,
    # birthday not yet known at the earn, preferred channel app (first earn), lifetime 600.
    assert profile["loyalty_tier"] == "gold"
    assert profile["loyalty"] == [0.5, 0.12, 0.24, 0.85, 0.0, 0.0, 0.33, 0.012]
    assert 0 < redis_client.ttl(profile_key("u-prof")) <= PROFILE_TTL_SECONDS

    with django_capture_on_commit_callbacks(execute=True):
        services.loyalty_redeem(user_id="u-prof", redemption_tier="exclusive_service", idempotency_key="k")
    profile = profile_read(user_id="u-prof")
    # Balance 100; redeemed just now (recency 1.0); birthday today and Gold; qualifying unchanged.
    assert profile["loyalty"][:3] == [0.5, 0.02, 0.24]
    assert profile["loyalty"][4] == pytest.approx(1.0, abs=1e-4)
    assert profile["loyalty"][5:] == [1.0, 0.33, 0.012]
    assert profile["loyalty"] == pytest.approx(selectors.loyalty_feature_vector(user_id="u-prof"), abs=1e-4)


@pytest.mark.django_db
def test_profile_change_is_announced_for_l1_invalidation(redis_client, django_capture_on_commit_callbacks):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_store.channel(PROFILE_CHANNEL, redis_client))
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.loyalty_earn(user_id="u-ann", amount_cents=100, channel="web", transaction_id="t")
        announced = []
        deadline = timezone.now() + timedelta(seconds=3)
        while "u-ann" not in announced and timezone.now() < deadline:
            message = pubsub.get_message(timeout=0.2)
            if message:
                announced.append(message["data"].decode())
        assert "u-ann" in announced
    finally:
        pubsub.close()


@pytest.mark.django_db
def test_refused_redeem_writes_no_profile_and_a_replayed_earn_writes_it_again(redis_client,
                                                                              django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.loyalty_earn(user_id="u-none", amount_cents=100, channel="web", transaction_id="t")
    redis_client.delete(profile_key("u-none"))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(services.ServiceError):
            services.loyalty_redeem(user_id="u-none", redemption_tier="merchandise", idempotency_key="k")
    assert callbacks == [] and profile_read(user_id="u-none") is None
    # A replay does the first call's after-commit work again: when that call's answer was lost with its
    # COMMIT (Postgres restarting), Django never ran it, and the retry is the only chance.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        replay = services.loyalty_earn(user_id="u-none", amount_cents=100, channel="web", transaction_id="t")
    assert replay.replayed and replay.new_balance == 1 and len(callbacks) == 1
    assert profile_read(user_id="u-none")["loyalty_tier"] == "green"


@pytest.mark.django_db
def test_redis_down_does_not_fail_a_committed_earn(settings, django_capture_on_commit_callbacks):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with django_capture_on_commit_callbacks(execute=True):
        result = services.loyalty_earn(user_id="u-noredis", amount_cents=100, channel="web", transaction_id="t")
    assert result.new_balance == 1
    assert selectors.loyalty_balance(user_id="u-noredis").balance == 1


@pytest.mark.django_db
def test_keep_alive_rewrites_expiring_profiles_without_evicting_l1(redis_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.loyalty_earn(user_id="u-keep", amount_cents=60_000, channel="app", transaction_id="t-1")  # Gold
        services.loyalty_earn(user_id="u-other", amount_cents=100, channel="web", transaction_id="t-1")
    redis_client.expire(profile_key("u-keep"), 5)       # about to expire
    redis_client.delete(profile_key("u-other"))         # already expired
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(redis_store.channel(PROFILE_CHANNEL, redis_client))
    try:
        assert services.loyalty_profiles_keep_alive(batch_size=1) == 2
        assert pubsub.get_message(timeout=0.3) is None  # nothing announced: L1 copies stay valid
    finally:
        pubsub.close()
    assert redis_client.ttl(profile_key("u-keep")) > PROFILE_TTL_SECONDS - 60
    assert profile_read(user_id="u-keep")["loyalty_tier"] == "gold"
    assert profile_read(user_id="u-other")["loyalty"] == selectors.loyalty_feature_vector(user_id="u-other")
