"""POST /v1/loyalty/earn: idempotency on transaction_id, validation that names the field, roles."""
from __future__ import annotations

import pytest

from apps.core.exceptions import Conflict, ServiceError
from apps.loyalty import selectors, services
from apps.loyalty.models import LedgerEntry

URL = "/v1/loyalty/earn"
BODY = {"user_id": "u-1", "amount_cents": 2500, "channel": "app", "transaction_id": "pos-1",
        "is_referral": False, "is_digital": True}


@pytest.mark.django_db
def test_earn_answers_with_the_rules_fields(integration_client):
    response = integration_client.post(URL, BODY, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"user_id": "u-1", "stars_earned": 30, "new_balance": 30, "earn_rate_applied": "1.2",
                               "tier": "green", "tier_changed": False, "new_tier": None, "transaction_id": "pos-1"}
    assert "Idempotent-Replayed" not in response


@pytest.mark.django_db
def test_replay_returns_the_first_answer_and_credits_nothing(integration_client):
    first = integration_client.post(URL, BODY, format="json").json()
    services.loyalty_earn(user_id="u-1", amount_cents=1000, channel="app", transaction_id="pos-2")
    replay = integration_client.post(URL, BODY, format="json")
    assert replay.status_code == 200
    assert replay.json() == first  # new_balance as it was then, not now
    assert replay["Idempotent-Replayed"] == "true"
    assert selectors.loyalty_balance(user_id="u-1").balance == 40
    assert LedgerEntry.objects.filter(account__user_id="u-1", kind="earn").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"amount_cents": 2600}, {"channel": "web"}, {"is_referral": True}, {"is_digital": False}])
def test_same_transaction_id_with_another_body_is_409(integration_client, change):
    integration_client.post(URL, BODY, format="json")
    response = integration_client.post(URL, {**BODY, **change}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "transaction_id"
    assert next(iter(change)) in response.json()["detail"]
    assert selectors.loyalty_balance(user_id="u-1").balance == 30


@pytest.mark.django_db
def test_transaction_ids_are_per_user(integration_client):
    integration_client.post(URL, BODY, format="json")
    other = integration_client.post(URL, {**BODY, "user_id": "u-2"}, format="json")
    assert other.status_code == 200 and other.json()["stars_earned"] == 30


@pytest.mark.django_db
@pytest.mark.parametrize("field,value", [
    ("amount_cents", -100), ("amount_cents", 0), ("amount_cents", 10_000_001), ("amount_cents", "lots"),
    ("amount_cents", 12.5), ("amount_cents", None), ("channel", "Not A Channel!"), ("channel", ""),
    ("user_id", ""), ("user_id", "x" * 129), ("transaction_id", ""), ("is_digital", "perhaps"),
])
def test_bad_input_is_400_naming_the_field(integration_client, field, value):
    response = integration_client.post(URL, {**BODY, field: value}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["fields"] and body["detail"].startswith(field)
    assert not LedgerEntry.objects.exists() and selectors.loyalty_account_find(user_id="u-1") is None


@pytest.mark.django_db
@pytest.mark.parametrize("missing", ["user_id", "amount_cents", "channel", "transaction_id"])
def test_missing_field_is_400(integration_client, missing):
    body = {k: v for k, v in BODY.items() if k != missing}
    response = integration_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert missing in response.json()["fields"]


@pytest.mark.django_db
@pytest.mark.parametrize("kwargs,field", [
    ({"amount_cents": True}, "amount_cents"), ({"amount_cents": 10.0}, "amount_cents"), ({"amount_cents": -5}, "amount_cents"),
    ({"channel": None}, "channel"), ({"transaction_id": "  "}, "transaction_id"), ({"user_id": 42}, "user_id"),
    ({"is_referral": "yes"}, "is_referral"),
])
def test_service_validates_direct_callers(kwargs, field):
    call = {"user_id": "u-1", "amount_cents": 100, "channel": "app", "transaction_id": "t", **kwargs}
    with pytest.raises(ServiceError) as exc:
        services.loyalty_earn(**call)
    assert exc.value.field == field and exc.value.status_code == 400
    assert not LedgerEntry.objects.exists()


@pytest.mark.django_db
def test_service_conflict_is_raised_for_direct_callers():
    services.loyalty_earn(user_id="u-1", amount_cents=100, channel="app", transaction_id="t")
    with pytest.raises(Conflict):
        services.loyalty_earn(user_id="u-1", amount_cents=200, channel="app", transaction_id="t")


@pytest.mark.django_db
def test_earn_requires_a_token_and_the_integration_role(api_client, marketer_client):
    assert api_client.post(URL, BODY, format="json").status_code == 401
    assert marketer_client.post(URL, BODY, format="json").status_code == 403
    assert not LedgerEntry.objects.exists()
