"""GET /v1/loyalty/balance/{user_id}, GET /v1/loyalty/ledger/{user_id} and the OpenAPI document."""
from __future__ import annotations

import pytest

from apps.loyalty import services


@pytest.mark.django_db
def test_balance(integration_client, make_promotion):
    make_promotion("1.5")
    services.loyalty_earn(user_id="u-bal", amount_cents=40_000, channel="app", transaction_id="t")  # 600: Gold
    services.loyalty_redeem(user_id="u-bal", redemption_tier="discount", idempotency_key="k")
    response = integration_client.get("/v1/loyalty/balance/u-bal")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("user_id", "tier", "balance", "qualifying_stars", "lifetime_stars", "tier_progress",
                                 "effective_earn_rate", "total_redemptions", "next_tier", "stars_to_next_tier")} == {
        "user_id": "u-bal", "tier": "gold", "balance": 540, "qualifying_stars": 600, "lifetime_stars": 600,
        "tier_progress": 0.24, "effective_earn_rate": "1.7", "total_redemptions": 1, "next_tier": "reserve",
        "stars_to_next_tier": 1900}
    assert body["preferred_channel"] == "app" and body["last_redeem_at"] is not None


@pytest.mark.django_db
def test_balance_of_unknown_user_is_404(marketer_client):
    response = marketer_client.get("/v1/loyalty/balance/nobody")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.django_db
def test_ledger_is_paginated_newest_first(marketer_client):
    for i in range(7):
        services.loyalty_earn(user_id="u-led", amount_cents=100 * (i + 1), channel="web", transaction_id=f"t-{i}")
    services.loyalty_redeem(user_id="u-led", redemption_tier="customization", idempotency_key="k")
    page1 = marketer_client.get("/v1/loyalty/ledger/u-led?page_size=3").json()
    assert page1["count"] == 8
    assert [e["kind"] for e in page1["results"]] == ["redeem", "earn", "earn"]
    assert [e["stars"] for e in page1["results"]] == [-25, 7, 6]
    assert page1["results"][0]["idempotency_key"] == "k" and page1["results"][1]["transaction_id"] == "t-6"
    assert "page=2" in page1["next"]
    page3 = marketer_client.get("/v1/loyalty/ledger/u-led?page_size=3&page=3").json()
    assert [e["stars"] for e in page3["results"]] == [2, 1] and page3["next"] is None
    redeems = marketer_client.get("/v1/loyalty/ledger/u-led?kind=redeem").json()
    assert redeems["count"] == 1


@pytest.mark.django_db
def test_ledger_bad_kind_and_unknown_user(marketer_client):
    services.loyalty_earn(user_id="u-l2", amount_cents=100, channel="web", transaction_id="t")
    bad = marketer_client.get("/v1/loyalty/ledger/u-l2?kind=gift")
    assert bad.status_code == 400 and bad.json()["field"] == "kind"
    assert marketer_client.get("/v1/loyalty/ledger/nobody").status_code == 404


@pytest.mark.django_db
def test_reads_need_a_role(api_client, db):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    services.loyalty_earn(user_id="u-x", amount_cents=100, channel="web", transaction_id="t")
    assert api_client.get("/v1/loyalty/balance/u-x").status_code == 401
    nobody = get_user_model().objects.create_user(username="plain")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=nobody).key}")
    assert api_client.get("/v1/loyalty/balance/u-x").status_code == 403
    assert api_client.get("/v1/loyalty/ledger/u-x").status_code == 403


@pytest.mark.django_db
def test_openapi_documents_every_loyalty_endpoint(marketer_client):
    schema = marketer_client.get("/v1/schema/?format=json").json()
    paths = schema["paths"]
    assert set(paths) >= {"/v1/loyalty/earn", "/v1/loyalty/redeem", "/v1/loyalty/reward-signal",
                          "/v1/loyalty/balance/{user_id}", "/v1/loyalty/ledger/{user_id}"}
    redeem = paths["/v1/loyalty/redeem"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" and p["required"] for p in redeem["parameters"])
    assert set(redeem["responses"]) >= {"200", "400", "403", "409", "422"}
    assert "202" in paths["/v1/loyalty/reward-signal"]["post"]["responses"]
