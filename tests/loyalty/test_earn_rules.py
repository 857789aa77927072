"""The earn formula of docs/RULES.md §2.2, exactly, across tiers, promotions, channel bonuses and flags."""
from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.loyalty import rules, selectors, services

# tier, promotion multipliers, channel bonus multipliers (for the earn's channel), referral, digital,
# amount_cents, expected stars, expected earn_rate_applied, float-product-would-be-wrong
CASES = [
    ("green", [], [], False, False, 1000, 10, "1.0", False),
    ("green", [], [], False, False, 1, 1, "1.0", False),           # ceil(1/100) = 1 star
    ("green", [], [], False, False, 1001, 11, "1.0", False),       # ceil(10.01) = 11
    ("gold", [], [], False, False, 1000, 12, "1.2", False),
    ("reserve", [], [], False, False, 1000, 17, "1.7", False),
    ("reserve", [], [], False, False, 150, 4, "1.7", False),       # 2 x 1.7 = 3.4 -> 4
    ("gold", [], [], False, True, 2500, 36, "1.44", False),        # 25 x 1.2 x 1.2 = 36 exactly
    ("gold", ["2"], [], False, False, 2500, 55, "2.2", True),      # float: 55.00000000000001 -> 56
    ("green", ["1.1"], [], True, False, 2500, 55, "2.2", True),    # (1.0 + 0.1) x 2
    ("reserve", ["1.5"], [], False, False, 2500, 55, "2.2", True),
    ("reserve", ["2"], [], False, True, 7500, 243, "3.24", True),  # float: 243.00000000000003 -> 244
    ("green", [], ["1.1"], True, False, 4500, 99, "2.2", True),    # channel bonus + referral
    ("green", [], ["1.5"], True, True, 999, 36, "3.6", False),     # (1.0 + 0.5) x 2 x 1.2
    ("gold", ["2", "1.5"], ["1.25"], False, False, 100, 3, "2.95", False),  # 1.2 + 1 + 0.5 + 0.25
    ("reserve", [], [], True, True, 4500, 184, "4.08", False),     # 45 x 4.08 = 183.6 -> 184
]


def _float_stars(tier, promos, bonuses, referral, digital, amount_cents) -> int:
    rate = {"green": 1.0, "gold": 1.2, "reserve": 1.7}[tier]
    rate += sum(float(m) - 1 for m in promos) + sum(float(m) - 1 for m in bonuses)
    rate *= 2.0 if referral else 1.0
    rate *= 1.2 if digital else 1.0
    return math.ceil(math.ceil(amount_cents / 100) * rate)


@pytest.mark.parametrize("tier,promos,bonuses,referral,digital,amount,stars,rate,float_wrong", CASES)
def test_pure_formula(tier, promos, bonuses, referral, digital, amount, stars, rate, float_wrong):
    applied = rules.earn_rate(tier=tier, promotion_multipliers=[Decimal(m) for m in promos],
                              channel_bonus_multipliers=[Decimal(m) for m in bonuses],
                              is_referral=referral, is_digital=digital)
    assert applied == Decimal(rate)
    assert rules.stars_for(amount_cents=amount, rate=applied) == stars
    # The cases marked float_wrong are the reason for Decimal: binary floats over-count them.
    assert (_float_stars(tier, promos, bonuses, referral, digital, amount) != stars) is float_wrong


@pytest.mark.django_db
@pytest.mark.parametrize("tier,promos,bonuses,referral,digital,amount,stars,rate,float_wrong", CASES)
def test_service_applies_formula(make_account, make_promotion, make_bonus,
                                 tier, promos, bonuses, referral, digital, amount, stars, rate, float_wrong):
    qualifying = rules.TIER_THRESHOLDS[tier]
    make_account("u-case", tier=tier, qualifying=qualifying)
    for i, m in enumerate(promos):
        make_promotion(m, name=f"p{i}")
    for m in bonuses:
        make_bonus("app", m)
    make_bonus("web", "3")  # another channel's bonus never applies to an app purchase
    result = services.loyalty_earn(user_id="u-case", amount_cents=amount, channel="app", transaction_id="t-1",
                                   is_referral=referral, is_digital=digital)
    assert result.stars_earned == stars
    assert result.earn_rate_applied == Decimal(rate)
    assert result.new_balance == stars
    balance = selectors.loyalty_balance(user_id="u-case")
    assert (balance.balance, balance.qualifying_stars, balance.lifetime_stars) == (stars, qualifying + stars, stars)


@given(
    amount=st.integers(min_value=1, max_value=10_000_000),
    tier=st.sampled_from(["green", "gold", "reserve"]),
    promos=st.lists(st.decimals(min_value=1, max_value=10, places=3), max_size=3),
    bonuses=st.lists(st.decimals(min_value=1, max_value=10, places=3), max_size=2),
    referral=st.booleans(),
    digital=st.booleans(),
)
def test_formula_matches_exact_rational_arithmetic(amount, tier, promos, bonuses, referral, digital):
    rate = Fraction(str(rules.TIER_MULTIPLIERS[tier]))
    rate += sum((Fraction(str(m)) - 1 for m in promos), Fraction(0))
    rate += sum((Fraction(str(m)) - 1 for m in bonuses), Fraction(0))
    rate *= 2 if referral else 1
    rate *= Fraction(6, 5) if digital else 1
    expected = math.ceil(math.ceil(Fraction(amount, 100)) * rate)
    applied = rules.earn_rate(tier=tier, promotion_multipliers=promos, channel_bonus_multipliers=bonuses,
                              is_referral=referral, is_digital=digital)
    assert Fraction(str(applied)) == rate
    assert rules.stars_for(amount_cents=amount, rate=applied) == expected


@pytest.mark.django_db
def test_promotion_outside_window_or_switched_off_does_not_apply(make_account, make_promotion):
    make_account("u-p")
    make_promotion("2", name="ended", starts=timedelta(days=-5), ends=timedelta(seconds=-1))
    make_promotion("2", name="future", starts=timedelta(hours=1), ends=timedelta(days=2))
    make_promotion("2", name="off", is_active=False)
    make_promotion("1.5", name="live")
    result = services.loyalty_earn(user_id="u-p", amount_cents=1000, channel="web", transaction_id="t")
    assert result.earn_rate_applied == Decimal("1.5")
    assert result.stars_earned == 15


@pytest.mark.django_db
def test_expired_channel_bonus_does_not_apply(make_account, make_bonus):
    make_account("u-b")
    make_bonus("app", "2", valid_for=timedelta(seconds=-1))
    make_bonus("app", "3", is_active=False)
    result = services.loyalty_earn(user_id="u-b", amount_cents=1000, channel="app", transaction_id="t")
    assert (result.stars_earned, result.earn_rate_applied) == (10, Decimal("1"))


def test_tier_thresholds():
    assert [rules.tier_for_qualifying(q) for q in (0, 499, 500, 2499, 2500, 10**9)] == [
        "green", "green", "gold", "gold", "reserve", "reserve"]


@pytest.mark.django_db
def test_unknown_user_is_enrolled_green(make_promotion):
    result = services.loyalty_earn(user_id="new-member", amount_cents=999, channel="pos", transaction_id="t-1")
    assert (result.tier, result.tier_changed, result.new_tier, result.stars_earned) == ("green", False, None, 10)
    account = selectors.loyalty_account_find(user_id="new-member")
    assert account.enrolment_channel == "pos"
    assert account.preferred_channel == "in_store"  # a POS purchase counts as in-store
    assert account.qualifying_period_end == rules.period_end(account.qualifying_period_start)


@pytest.mark.django_db
def test_upgrade_applies_at_once_and_uses_the_old_rate(make_account):
    make_account("u-up", qualifying=490)
    result = services.loyalty_earn(user_id="u-up", amount_cents=1000, channel="app", transaction_id="t-1")
    assert (result.stars_earned, result.earn_rate_applied) == (10, Decimal("1"))  # Green rate for this purchase
    assert (result.tier, result.tier_changed, result.new_tier) == ("gold", True, "gold")
    nxt = services.loyalty_earn(user_id="u-up", amount_cents=1000, channel="app", transaction_id="t-2")
    assert (nxt.stars_earned, nxt.tier_changed, nxt.new_tier) == (12, False, None)


@pytest.mark.django_db
def test_one_purchase_can_jump_from_green_to_reserve(make_account):
    make_account("u-jump")
    result = services.loyalty_earn(user_id="u-jump", amount_cents=250_000, channel="web", transaction_id="big")
    assert (result.stars_earned, result.tier, result.new_tier) == (2500, "reserve", "reserve")


@pytest.mark.django_db
def test_earn_never_downgrades(make_account):
    # Gold kept from the last period with few qualifying stars in this one: an earn leaves it Gold.
    make_account("u-keep", tier="gold", qualifying=0)
    result = services.loyalty_earn(user_id="u-keep", amount_cents=500, channel="web", transaction_id="t")
    assert (result.tier, result.tier_changed, result.stars_earned) == ("gold", False, 6)
