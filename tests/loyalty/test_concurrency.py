"""Concurrency against the real Postgres: threads with their own connections hit one account at once."""
from __future__ import annotations

import pytest

from apps.core.exceptions import ServiceError
from apps.loyalty import selectors, services
from apps.loyalty.models import LedgerEntry, LoyaltyAccount
from tests.support.threads import run_together

THREADS = 12


def run_at_once(fn, args_list):
    """Call ``fn(*args)`` for every args tuple from its own thread, released together by a barrier.
    Returns each call's result or refusal (a ``ServiceError``), in order; anything else fails the test."""
    return run_together([lambda args=args: fn(*args) for args in args_list], expected=(ServiceError,))


def assert_ledger_matches(user_id: str) -> int:
    balance = LoyaltyAccount.objects.get(user_id=user_id).balance
    assert balance >= 0
    assert balance == selectors.loyalty_ledger_sum(user_id=user_id)
    return balance


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeems_never_overdraw():
    services.loyalty_earn(user_id="u-c", amount_cents=26_000, channel="web", transaction_id="fund")  # 260 stars
    results = run_at_once(
        lambda i: services.loyalty_redeem(user_id="u-c", redemption_tier="discount", idempotency_key=f"k-{i}"),
        [(i,) for i in range(THREADS)],
    )
    successes = [r for r in results if isinstance(r, services.RedeemResult)]
    refusals = [r for r in results if isinstance(r, ServiceError)]
    assert len(successes) == 4 and len(refusals) == THREADS - 4  # 260 // 60
    assert all(r.message == "Insufficient stars: need 60, have 20" for r in refusals)
    assert sorted(r.new_balance for r in successes) == [20, 80, 140, 200]
    assert assert_ledger_matches("u-c") == 20
    account = LoyaltyAccount.objects.get(user_id="u-c")
    assert account.total_redemptions == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_earns_with_distinct_ids_all_land():
    results = run_at_once(
        lambda i: services.loyalty_earn(user_id="u-e", amount_cents=1000, channel="app", transaction_id=f"t-{i}"),
        [(i,) for i in range(THREADS)],
    )
    assert all(isinstance(r, services.EarnResult) and r.stars_earned == 10 for r in results), results
    assert sorted(r.new_balance for r in results) == list(range(10, 10 * THREADS + 1, 10))
    assert assert_ledger_matches("u-e") == 10 * THREADS
    account = LoyaltyAccount.objects.get(user_id="u-e")  # one account although all were first earns
    assert (account.qualifying_stars, account.lifetime_stars) == (10 * THREADS, 10 * THREADS)
    assert LoyaltyAccount.objects.filter(user_id="u-e").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_replays_of_one_transaction_credit_once():
    results = run_at_once(
        lambda i: services.loyalty_earn(user_id="u-once", amount_cents=5000, channel="app", transaction_id="same"),
        [(i,) for i in range(THREADS)],
    )
    assert all(isinstance(r, services.EarnResult) for r in results), results
    assert sum(not r.replayed for r in results) == 1
    assert {(r.stars_earned, r.new_balance) for r in results} == {(50, 50)}
    assert assert_ledger_matches("u-once") == 50
    assert LedgerEntry.objects.filter(account__user_id="u-once").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeems_with_one_idempotency_key_spend_once():
    services.loyalty_earn(user_id="u-k", amount_cents=10_000, channel="web", transaction_id="fund")
    results = run_at_once(
        lambda i: services.loyalty_redeem(user_id="u-k", redemption_tier="customization", idempotency_key="one-key"),
        [(i,) for i in range(THREADS)],
    )
    assert all(isinstance(r, services.RedeemResult) for r in results), results
    assert sum(not r.replayed for r in results) == 1
    assert {r.new_balance for r in results} == {75}
    assert assert_ledger_matches("u-k") == 75


@pytest.mark.django_db(transaction=True)
def test_mixed_earns_and_redeems_keep_the_ledger_equal_to_the_balance():
    services.loyalty_earn(user_id="u-mix", amount_cents=10_000, channel="web", transaction_id="fund")
    calls = [("earn", i) if i % 2 else ("redeem", i) for i in range(THREADS)]

    def act(kind, i):
        if kind == "earn":
            return services.loyalty_earn(user_id="u-mix", amount_cents=3000, channel="web", transaction_id=f"t-{i}")
        return services.loyalty_redeem(user_id="u-mix", redemption_tier="discount", idempotency_key=f"k-{i}")

    results = run_at_once(act, calls)
    earned = sum(r.stars_earned for r in results if isinstance(r, services.EarnResult))
    spent = sum(r.stars_spent for r in results if isinstance(r, services.RedeemResult))
    assert earned == 30 * (THREADS // 2)
    assert assert_ledger_matches("u-mix") == 100 + earned - spent
