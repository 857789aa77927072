"""POST /v1/loyalty/redeem: the catalogue of docs/RULES.md §2.4, tier and balance checks, Idempotency-Key."""
from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core.exceptions import Conflict, ServiceError
from apps.loyalty import rules, selectors, services
from apps.loyalty.models import LedgerEntry

URL = "/v1/loyalty/redeem"


def fund(user_id: str, stars: int) -> None:
    """Give a member exactly ``stars`` through a real earn (Green, no promotions: 1 star per dollar)."""
    services.loyalty_earn(user_id=user_id, amount_cents=stars * 100, channel="web", transaction_id=f"fund-{stars}")


CATALOGUE = [("customization", 25, "0.80", "green"), ("discount", 60, "2.00", "green"), ("basic_item", 100, "3.50", "green"),
             ("premium_item", 200, "6.50", "green"), ("premium_food", 300, "8.00", "green"),
             ("merchandise", 400, "15.00", "green"), ("exclusive_service", 500, "25.00", "gold")]


def test_catalogue_is_the_rules_table():
    assert [(r.key, r.stars, str(r.value), r.min_tier) for r in rules.REDEMPTIONS.values()] == CATALOGUE


@pytest.mark.django_db
@pytest.mark.parametrize("key,stars,value,min_tier", CATALOGUE)
def test_each_reward_deducts_its_stars(integration_client, key, stars, value, min_tier):
    fund("u-r", 600)  # 600 qualifying stars: Gold, so every reward is allowed
    response = integration_client.post(URL, {"user_id": "u-r", "redemption_tier": key}, format="json",
                                       HTTP_IDEMPOTENCY_KEY=f"k-{key}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["stars_spent"], body["value"], body["new_balance"], body["total_redemptions"]) == (stars, value, 600 - stars, 1)
    balance = selectors.loyalty_balance(user_id="u-r")
    # Qualifying and lifetime stars are not reduced by a redemption.
    assert (balance.balance, balance.qualifying_stars, balance.lifetime_stars) == (600 - stars, 600, 600)
    entry = LedgerEntry.objects.get(account__user_id="u-r", kind="redeem")
    assert (entry.stars, entry.balance_after, entry.idempotency_key, entry.redemption_tier) == (-stars, 600 - stars, f"k-{key}", key)


@pytest.mark.django_db
def test_exclusive_service_requires_gold(integration_client):
    fund("u-green", 499)
    response = integration_client.post(URL, {"user_id": "u-green", "redemption_tier": "exclusive_service"},
                                       format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 403
    assert response.json() == {"error": "tier_too_low", "detail": "Requires Gold tier, you are Green", "field": "redemption_tier"}
    assert selectors.loyalty_balance(user_id="u-green").balance == 499
    assert not LedgerEntry.objects.filter(kind="redeem").exists()


@pytest.mark.django_db
def test_reserve_may_redeem_gold_only_reward(make_account):
    make_account("u-res", tier="reserve", qualifying=2500)
    services.loyalty_adjust(user_id="u-res", stars=500, reason="test funding")
    result = services.loyalty_redeem(user_id="u-res", redemption_tier="exclusive_service", idempotency_key="k")
    assert (result.new_balance, result.value, result.tier) == (0, Decimal("25.00"), "reserve")


@pytest.mark.django_db
def test_tier_is_checked_before_balance(make_account):
    make_account("u-poor")
    with pytest.raises(ServiceError) as exc:
        services.loyalty_redeem(user_id="u-poor", redemption_tier="exclusive_service", idempotency_key="k")
    assert exc.value.message == "Requires Gold tier, you are Green"


@pytest.mark.django_db
def test_insufficient_stars(integration_client):
    fund("u-150", 150)
    response = integration_client.post(URL, {"user_id": "u-150", "redemption_tier": "premium_item"}, format="json",
                                       HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 422
    assert response.json() == {"error": "insufficient_stars", "detail": "Insufficient stars: need 200, have 150",
                               "field": "redemption_tier"}
    assert selectors.loyalty_balance(user_id="u-150").balance == 150
    assert selectors.loyalty_balance(user_id="u-150").total_redemptions == 0


@pytest.mark.django_db
def test_exact_balance_can_be_spent_to_zero(make_account):
    fund("u-25", 25)
    result = services.loyalty_redeem(user_id="u-25", redemption_tier="customization", idempotency_key="k")
    assert result.new_balance == 0
    with pytest.raises(ServiceError, match="Insufficient stars: need 25, have 0"):
        services.loyalty_redeem(user_id="u-25", redemption_tier="customization", idempotency_key="k2")


@pytest.mark.django_db
def test_replay_returns_the_first_answer_and_spends_once(integration_client):
    fund("u-rep", 100)
    body = {"user_id": "u-rep", "redemption_tier": "customization"}
    first = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    replay = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert replay.status_code == 200 and replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert selectors.loyalty_balance(user_id="u-rep").balance == 75
    assert LedgerEntry.objects.filter(kind="redeem").count() == 1


@pytest.mark.django_db
def test_replay_of_a_refusal_is_the_same_refusal(integration_client):
    fund("u-ref", 100)
    body = {"user_id": "u-ref", "redemption_tier": "premium_item"}
    first = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    fund("u-ref", 200)  # enough now, but the key already has its answer
    replay = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == replay.status_code == 422
    assert replay.json() == first.json() == {"error": "insufficient_stars", "detail": "Insufficient stars: need 200, have 100",
                                             "field": "redemption_tier"}
    assert selectors.loyalty_balance(user_id="u-ref").balance == 300


@pytest.mark.django_db
def test_same_key_different_body_is_409(integration_client):
    fund("u-409", 500)
    integration_client.post(URL, {"user_id": "u-409", "redemption_tier": "customization"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="k")
    response = integration_client.post(URL, {"user_id": "u-409", "redemption_tier": "discount"}, format="json",
                                       HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409
    assert response.json()["field"] == "Idempotency-Key"
    assert selectors.loyalty_balance(user_id="u-409").balance == 475
    with pytest.raises(Conflict):
        services.loyalty_redeem(user_id="someone-else", redemption_tier="customization", idempotency_key="k")


@pytest.mark.django_db
@pytest.mark.parametrize("body,headers,field", [
    ({"user_id": "u-v", "redemption_tier": "yacht"}, {"HTTP_IDEMPOTENCY_KEY": "k"}, "redemption_tier"),
    ({"user_id": "u-v"}, {"HTTP_IDEMPOTENCY_KEY": "k"}, "redemption_tier"),
    ({"redemption_tier": "discount"}, {"HTTP_IDEMPOTENCY_KEY": "k"}, "user_id"),
    ({"user_id": "u-v", "redemption_tier": "discount"}, {}, "Idempotency-Key"),
    ({"user_id": "u-v", "redemption_tier": "discount"}, {"HTTP_IDEMPOTENCY_KEY": "x" * 256}, "Idempotency-Key"),
])
def test_bad_input_is_400_naming_the_field(integration_client, body, headers, field):
    fund("u-v", 100)
    response = integration_client.post(URL, body, format="json", **headers)
    assert response.status_code == 400, response.content
    data = response.json()
    assert data.get("field") == field or field in data.get("fields", {})
    assert selectors.loyalty_balance(user_id="u-v").balance == 100


@pytest.mark.django_db
def test_unknown_member_is_404(integration_client):
    response = integration_client.post(URL, {"user_id": "nobody", "redemption_tier": "discount"}, format="json",
                                       HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 404 and response.json()["field"] == "user_id"
    assert selectors.loyalty_account_find(user_id="nobody") is None


@pytest.mark.django_db
def test_service_rejects_unknown_tier_for_direct_callers():
    with pytest.raises(ServiceError) as exc:
        services.loyalty_redeem(user_id="u", redemption_tier="yacht", idempotency_key="k")
    assert exc.value.field == "redemption_tier" and "customization" in exc.value.message


@pytest.mark.django_db
def test_redeem_requires_the_integration_role(marketer_client):
    fund("u-m", 100)
    response = marketer_client.post(URL, {"user_id": "u-m", "redemption_tier": "discount"}, format="json",
                                    HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 403
    assert selectors.loyalty_balance(user_id="u-m").balance == 100
