"""Beat work: qualifying-period rollover (the only downgrade) and Green-tier expiry, with ledger rows."""
from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone

from apps.core.profiles import profile_read
from apps.loyalty import rules, selectors, services, tasks
from apps.loyalty.models import LedgerEntry, LoyaltyAccount


def test_add_months_clamps_the_day():
    leap = datetime(2024, 2, 29, 10, 30, tzinfo=dt_timezone.utc)
    assert rules.period_end(leap) == datetime(2025, 2, 28, 10, 30, tzinfo=dt_timezone.utc)
    assert rules.add_months(datetime(2026, 1, 31, tzinfo=dt_timezone.utc), 1) == datetime(2026, 2, 28, tzinfo=dt_timezone.utc)
    assert rules.add_months(datetime(2026, 11, 30, tzinfo=dt_timezone.utc), 3) == datetime(2027, 2, 28, tzinfo=dt_timezone.utc)


def test_beat_schedule_declares_the_loyalty_tasks():
    from config.celery import app

    schedule = app.conf.beat_schedule
    for name in ("loyalty-rollover-periods", "loyalty-expire-inactive", "loyalty-republish-reward-signals",
                 "loyalty-purge-idempotency-records"):
        assert schedule[name]["task"] in app.tasks
        assert schedule[name]["options"]["expires"] > 0


def ended(make_account, user_id, *, tier, qualifying, periods_ago=1, balance_stars=0):
    start = timezone.now() - timedelta(days=366 * periods_ago + 1)
    account = make_account(user_id, tier=tier, qualifying=qualifying, qualifying_period_start=start)
    if balance_stars:
        services.loyalty_adjust(user_id=user_id, stars=balance_stars, reason="opening balance")
    return account


@pytest.mark.django_db
@pytest.mark.parametrize("tier,qualifying,new_tier", [
    ("reserve", 2600, "reserve"), ("reserve", 1000, "gold"), ("reserve", 10, "green"),
    ("gold", 700, "gold"), ("gold", 499, "green"), ("green", 800, "gold"),
])
def test_rollover_sets_the_tier_the_ended_period_earned(make_account, redis_client, django_capture_on_commit_callbacks,
                                                        tier, qualifying, new_tier):
    account = ended(make_account, "u-roll", tier=tier, qualifying=qualifying, balance_stars=321)
    old_end = account.qualifying_period_end
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.rollover_periods() == 1
    account.refresh_from_db()
    assert (account.tier, account.qualifying_stars, account.balance) == (new_tier, 0, 321)
    assert account.qualifying_period_start == old_end and account.qualifying_period_end == rules.period_end(old_end)
    entry = LedgerEntry.objects.get(account=account, kind="rollover")
    assert (entry.stars, entry.balance_after, entry.tier_after, entry.details["tier_before"]) == (0, 321, new_tier, tier)
    assert profile_read(user_id="u-roll")["loyalty_tier"] == new_tier
    assert selectors.loyalty_ledger_sum(user_id="u-roll") == account.balance
    assert tasks.rollover_periods() == 0  # nothing due any more


@pytest.mark.django_db
def test_rollover_over_several_missed_periods_ends_green(make_account):
    account = ended(make_account, "u-away", tier="reserve", qualifying=3000, periods_ago=2)
    services.loyalty_rollover_due()
    account.refresh_from_db()
    assert account.tier == "green"  # the second missed period had no stars
    assert account.qualifying_period_end > timezone.now()
    assert len(LedgerEntry.objects.get(account=account, kind="rollover").details["periods"]) == 2


@pytest.mark.django_db
def test_earn_after_the_period_ended_counts_toward_the_new_period(make_account):
    ended(make_account, "u-late", tier="gold", qualifying=100)
    result = services.loyalty_earn(user_id="u-late", amount_cents=1000, channel="web", transaction_id="t")
    # The ended period (100 stars) is rolled first: Green, Green rate, 10 stars in the new period.
    assert (result.tier, result.stars_earned, result.earn_rate_applied) == ("green", 10, 1)
    account = LoyaltyAccount.objects.get(user_id="u-late")
    assert account.qualifying_stars == 10 and account.qualifying_period_end > timezone.now()
    assert list(LedgerEntry.objects.filter(account=account).order_by("id").values_list("kind", flat=True)) == ["rollover", "earn"]


@pytest.mark.django_db
def test_current_periods_are_left_alone(make_account):
    make_account("u-now", tier="gold", qualifying=10)
    assert services.loyalty_rollover_due() == 0
    assert LoyaltyAccount.objects.get(user_id="u-now").tier == "gold"


@pytest.mark.django_db
def test_green_stars_expire_after_180_days_without_activity(make_account, redis_client, django_capture_on_commit_callbacks):
    make_account("u-idle")
    services.loyalty_earn(user_id="u-idle", amount_cents=4000, channel="web", transaction_id="t")
    LoyaltyAccount.objects.filter(user_id="u-idle").update(last_activity_at=timezone.now() - timedelta(days=181))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.expire_inactive() == 1
    account = LoyaltyAccount.objects.get(user_id="u-idle")
    assert (account.balance, account.qualifying_stars, account.lifetime_stars) == (0, 40, 40)
    entry = LedgerEntry.objects.get(account=account, kind="expire")
    assert (entry.stars, entry.balance_after) == (-40, 0)
    assert selectors.loyalty_ledger_sum(user_id="u-idle") == 0
    assert profile_read(user_id="u-idle")["loyalty"][1] == 0.0
    assert tasks.expire_inactive() == 0  # nothing left to expire


@pytest.mark.django_db
def test_expiry_spares_recent_activity_and_higher_tiers(make_account):
    for user_id, tier, idle_days in (("u-179", "green", 179), ("u-gold", "gold", 400), ("u-res", "reserve", 400)):
        make_account(user_id, tier=tier, qualifying=rules.TIER_THRESHOLDS[tier])
        services.loyalty_adjust(user_id=user_id, stars=50, reason="opening balance")
        LoyaltyAccount.objects.filter(user_id=user_id).update(last_activity_at=timezone.now() - timedelta(days=idle_days))
    assert services.loyalty_expire_inactive() == 0
    assert set(LoyaltyAccount.objects.values_list("balance", flat=True)) == {50}
    assert not LedgerEntry.objects.filter(kind="expire").exists()


@pytest.mark.django_db
def test_earning_or_redeeming_resets_the_inactivity_clock(make_account):
    make_account("u-act")
    services.loyalty_earn(user_id="u-act", amount_cents=10_000, channel="web", transaction_id="t")
    LoyaltyAccount.objects.filter(user_id="u-act").update(last_activity_at=timezone.now() - timedelta(days=200))
    services.loyalty_redeem(user_id="u-act", redemption_tier="customization", idempotency_key="k")
    assert services.loyalty_expire_inactive() == 0
    assert LoyaltyAccount.objects.get(user_id="u-act").balance == 75


@pytest.mark.django_db
def test_ledger_rows_cannot_be_changed_or_deleted(make_account):
    from django.db import DatabaseError, transaction

    services.loyalty_earn(user_id="u-ro", amount_cents=100, channel="web", transaction_id="t")
    entry = LedgerEntry.objects.get()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(stars=1000)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    assert LedgerEntry.objects.get().stars == 1


@pytest.mark.django_db
def test_database_refuses_a_negative_balance(make_account):
    from django.db import IntegrityError, transaction
    from django.db.models import F

    make_account("u-neg")
    with pytest.raises(IntegrityError), transaction.atomic():
        LoyaltyAccount.objects.filter(user_id="u-neg").update(balance=F("balance") - 1)
