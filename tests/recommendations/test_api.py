"""GET /v1/recommendations/{user_id} and PUT /v1/catalog/items/{item_id}: roles, the five strategies and
auto on a small shop, exclusions, availability, cold start, and 400s that name the parameter."""
import pytest
from rest_framework.test import APIClient

from apps.recommendations import services
from apps.recommendations.models import CatalogAudit, CatalogItem, ModelBuild
from apps.recommendations.selectors import STRATEGY_NAMES

from .conftest import interact

pytestmark = pytest.mark.django_db

RECS = "/v1/recommendations/"
ITEM = "/v1/catalog/items/"


def recs(client, user_id, **query):
    response = client.get(RECS + user_id, query)
    assert response.status_code == 200, response.content
    return response.json()


def ids(body):
    return [item["item_id"] for item in body["items"]]


# --- auth -------------------------------------------------------------------------------------------
def test_every_endpoint_needs_a_token_and_a_role(nobody_client, integration_client, marketer_client):
    assert APIClient().get(RECS + "u1").status_code == 401
    assert APIClient().put(ITEM + "x", {"name": "X"}, format="json").status_code == 401
    assert nobody_client.get(RECS + "u1").status_code == 403
    assert nobody_client.put(ITEM + "x", {"name": "X"}, format="json").status_code == 403
    assert nobody_client.get(ITEM + "x").status_code == 403
    assert CatalogItem.objects.count() == 0
    assert integration_client.get(RECS + "u1", {"strategy": "trending"}).status_code == 200
    assert integration_client.put(ITEM + "x", {"name": "X"}, format="json").status_code == 201
    assert marketer_client.put(ITEM + "y", {"name": "Y"}, format="json").status_code == 201


# --- catalogue --------------------------------------------------------------------------------------
def test_put_creates_then_replaces_and_audits_what_changed(marketer_client, marketer):
    body = {"name": "Trail Shoes", "category": "running", "tags": ["trail", "trail", " waterproof "],
            "attributes": {"weight_kg": 0.8}, "price": "89.90", "created_at": "2026-01-31T09:00:00Z"}
    response = marketer_client.put(ITEM + "sku-1", body, format="json")
    assert response.status_code == 201, response.content
    got = response.json()
    assert {k: got[k] for k in ("item_id", "name", "category", "tags", "attributes", "price", "available",
                                "created_at")} == {
        "item_id": "sku-1", "name": "Trail Shoes", "category": "running", "tags": ["trail", "waterproof"],
        "attributes": {"weight_kg": 0.8}, "price": "89.90", "available": True, "created_at": "2026-01-31T09:00:00Z"}
    response = marketer_client.put(ITEM + "sku-1", {"name": "Trail Shoes", "price": 79.9, "available": False},
                                   format="json")
    assert response.status_code == 200
    item = CatalogItem.objects.get(item_id="sku-1")
    assert (str(item.price), item.available, item.category, item.tags) == ("79.90", False, "", [])
    assert item.created_at.isoformat() == "2026-01-31T09:00:00+00:00"  # kept when not given
    audit = list(CatalogAudit.objects.order_by("id").values_list("action", "actor", "source"))
    assert audit == [("created", marketer.pk, "api"), ("updated", marketer.pk, "api")]
    changes = CatalogAudit.objects.get(action="updated").changes
    assert changes["price"] == ["89.90", "79.90"] and changes["available"] == [True, False]
    assert set(changes) == {"price", "available", "category", "tags", "attributes"}
    assert marketer_client.get(ITEM + "sku-1").json()["available"] is False


@pytest.mark.parametrize("body, field, detail", [
    ({}, "name", "name: required"),
    ({"name": "X", "price": -1}, "price", "price: must be between 0 and 9999999999.99"),
    ({"name": "X", "price": 1.234}, "price", "price: at most 2 decimal places"),
    ({"name": "X", "price": "1.234"}, "price", "price: a number or a decimal string"),
    ({"name": "X", "availble": False}, "availble", "unknown field(s): availble"),
    ({"name": "X", "tags": "a"}, "tags", "tags: must be a list of strings"),
    ({"name": "X", "tags": [1]}, "tags", "tags: must be a list of strings"),
    ({"name": "X", "tags": ["a", ""]}, "tags", "tags: a tag must not be empty"),
    ({"name": "X", "category": None}, "category", "category: must be a string"),
    ({"name": "X" * 255 + " "}, "name", "name: at most 255 characters"),
    ({"name": "X", "price": ""}, "price", "price: a number or a decimal string"),
    ({"name": "X", "price": "1e5"}, "price", "price: a number or a decimal string"),
    ({"name": "X", "price": True}, "price", "price: must be a number"),
    ({"name": "X", "price": None}, None, None),
    ({"name": "X", "available": "true"}, "available", "available: must be true or false"),
    ({"name": "X", "created_at": ""}, "created_at", "created_at: must be an ISO 8601 date-time"),
    ({"name": "X", "created_at": "2026-01-31 09:00:00Z"}, "created_at", "created_at: must be an ISO 8601 date-time"),
    ({"name": "X", "created_at": "0000-00-00T00:00:00Z"}, "created_at", "created_at: must be an ISO 8601 date-time"),
    ({"name": "X", "created_at": "2026-01-31T09:00:00"}, "created_at", "created_at: must be an ISO 8601 date-time"),
    ({"name": "X", "attributes": {"w": "heavy"}}, "attributes.w", "attributes.w: must be a finite number"),
    ({"name": "X", "available": "maybe"}, "available", "available: must be true or false"),
    ({"name": "X", "created_at": "yesterday"}, "created_at", "created_at: must be an ISO 8601 date-time"),
    ({"name": "X", "item_id": "other"}, "item_id", "item_id: the body's item_id differs from the one in the path"),
])
def test_put_names_the_bad_field(marketer_client, body, field, detail):
    response = marketer_client.put(ITEM + "sku-9", body, format="json")
    if field is None:
        assert response.status_code == 201
        return
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(detail)
    assert not CatalogItem.objects.exists()


# --- the strategies ---------------------------------------------------------------------------------
def test_before_the_first_build_model_strategies_answer_503_and_cold_start_is_empty(marketer_client, shop):
    response = marketer_client.get(RECS + "u9", {"strategy": "cf"})
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    assert response["Retry-After"] == "60"
    assert recs(marketer_client, "stranger") == {"user_id": "stranger", "strategy": "auto", "items": []}
    assert ids(recs(marketer_client, "u9", strategy="new_arrivals")) == ["lamp", "tent", "bottle", "socks"]


def test_frequently_bought_together_is_normalised_pair_counts(marketer_client, shop):
    services.recommendations_rebuild()
    body = recs(marketer_client, "u9", strategy="frequently_bought_together")
    # baskets holding shoes 3, socks 2, bottle 2; shoes+socks 2, shoes+bottle 1; u9's purchase weighs 5
    assert body == {"user_id": "u9", "strategy": "frequently_bought_together", "items": [
        {"item_id": "socks", "score": pytest.approx(5 * 2 / 6 ** 0.5, abs=1e-5), "reason": "bought with Trail Shoes"},
        {"item_id": "bottle", "score": pytest.approx(5 * 1 / 6 ** 0.5, abs=1e-5), "reason": "bought with Trail Shoes"},
    ]}


def test_cf_content_based_and_their_reasons(marketer_client, shop):
    services.recommendations_rebuild()
    cf = recs(marketer_client, "u9", strategy="cf")
    assert ids(cf)[0] == "socks" and "shoes" not in ids(cf)
    assert cf["items"][0]["reason"] == "popular with people who chose Trail Shoes"
    content = recs(marketer_client, "u9", strategy="content_based")
    assert ids(content)[:2] == ["socks", "bottle"]  # same category; shares the "trail" tag
    assert content["items"][0]["reason"] == "in running, like items you chose"
    assert content["items"][1]["reason"] == "tagged trail, like items you chose"
    assert all(0 < item["score"] <= 1 for item in content["items"])


def test_trending_is_decayed_weight_and_cold_start_for_an_unknown_user(marketer_client, shop):
    services.trending_refresh()
    services.recommendations_rebuild()
    # all within the hour: purchase weight 5, view 1 → shoes 15, bottle 11, socks 10, tent 5
    body = recs(marketer_client, "stranger")
    assert body["strategy"] == "auto" and ids(body) == ["shoes", "bottle", "socks", "tent"]
    assert body["items"][0]["reason"] == "popular in the last 24 h (3 interactions)"
    assert body["items"][0]["score"] == pytest.approx(15, rel=1e-3)
    assert ids(recs(marketer_client, "u9", strategy="trending")) == ["bottle", "socks", "tent"]
    # the lamp has no interaction: not trending, but "auto" for a user with history fills up with cf / popular
    assert "shoes" not in ids(recs(marketer_client, "u9", limit=10))


def test_new_interactions_reach_trending_at_the_next_refresh_which_runs_within_a_minute(marketer_client, shop):
    from apps.recommendations.schedules import BEAT_SCHEDULE

    assert BEAT_SCHEDULE["recommendations-refresh-trending"]["schedule"] < 60
    services.trending_refresh()
    assert ids(recs(marketer_client, "stranger", strategy="trending"))[0] == "shoes"
    for n in range(5):
        interact(f"fan{n}", ["lamp"], order_id=f"lamp-{n}")
    services.trending_refresh()
    assert ids(recs(marketer_client, "stranger", strategy="trending"))[0] == "lamp"


def test_exclusions_and_unavailable_items(marketer_client, marketer, shop):
    services.trending_refresh()
    services.recommendations_rebuild()
    for strategy in STRATEGY_NAMES:
        assert "shoes" not in ids(recs(marketer_client, "u9", strategy=strategy)), strategy
    interact("u9", ["socks"], event_type="cart_add")  # fresh history is excluded before any rebuild
    assert "socks" not in ids(recs(marketer_client, "u9", strategy="frequently_bought_together"))
    services.catalog_items_set_available(item_ids=["bottle"], available=False, actor=marketer)
    for strategy in STRATEGY_NAMES:
        assert "bottle" not in ids(recs(marketer_client, "u9", strategy=strategy)), strategy
        assert "bottle" not in ids(recs(marketer_client, "stranger", strategy=strategy)), strategy


def test_items_unknown_to_the_catalogue_count_but_are_never_recommended(marketer_client, shop):
    for n in range(3):
        interact(f"g{n}", ["shoes", "ghost"], order_id=f"g-{n}")
    services.trending_refresh()
    build = services.recommendations_rebuild()
    assert build.items == 6 and build.status == ModelBuild.Status.SERVED
    for strategy in ("auto", "cf", "content_based", "frequently_bought_together", "trending"):
        assert "ghost" not in ids(recs(marketer_client, "u9", strategy=strategy, limit=100)), strategy
        assert "ghost" not in ids(recs(marketer_client, "stranger", strategy=strategy, limit=100)), strategy


def test_limit_caps_the_answer(marketer_client, shop):
    services.trending_refresh()
    assert len(recs(marketer_client, "stranger", strategy="trending", limit=2)["items"]) == 2
    assert len(recs(marketer_client, "stranger", strategy="new_arrivals", limit=1)["items"]) == 1


@pytest.mark.parametrize("query, field, detail", [
    ({"strategy": "magic"}, "strategy", "strategy: unknown strategy 'magic'; use one of auto, cf"),
    ({"limit": "0"}, "limit", "limit: must be from 1 to 100, got 0"),
    ({"limit": "101"}, "limit", "limit: must be from 1 to 100, got 101"),
    ({"limit": "ten"}, "limit", "limit: must be a whole number from 1 to 100, got 'ten'"),
    ({"count": "3"}, "count", "count: unknown query parameter"),
    ({"limit": ""}, "limit", "limit: must be a whole number from 1 to 100, got ''"),
    ({"limit": ["5", ""]}, "limit", "limit: give it once, not 2 times"),
    ({"limit": "５"}, "limit", "limit: must be a whole number"),
    ({"strategy": ""}, "strategy", "strategy: unknown strategy ''"),
])
def test_bad_parameters_are_a_400_naming_them(marketer_client, query, field, detail):
    response = marketer_client.get(RECS + "u1", query)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field and response.json()["detail"].startswith(detail)


def test_a_bad_user_id_is_a_400(marketer_client):
    response = marketer_client.get(RECS + "a%20b")
    assert response.status_code == 400 and response.json()["field"] == "user_id"


def test_the_schema_documents_both_endpoints(marketer_client):
    schema = marketer_client.get("/v1/schema/", HTTP_ACCEPT="application/json").json()
    assert "/v1/recommendations/{user_id}" in schema["paths"]
    assert "put" in schema["paths"]["/v1/catalog/items/{item_id}"]
    params = {p["name"] for p in schema["paths"]["/v1/recommendations/{user_id}"]["get"]["parameters"]}
    assert {"strategy", "limit", "user_id"} <= params
