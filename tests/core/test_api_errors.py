"""Every /v1 answer is the JSON envelope (404, 405, 500, 429), through the real ASGI application
(config.asgi: uvicorn's entry point), and bad filters are 400s naming the parameter."""
from __future__ import annotations

import logging

import httpx
import pytest
from asgiref.sync import sync_to_async
from rest_framework.authtoken.models import Token

from apps.core.roles import Role
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_rate_limit_windows():
    """Counters live in the cache's Redis and outlive a test database (whose user ids repeat)."""
    from django_redis import get_redis_connection

    redis = get_redis_connection("default")
    for key in redis.scan_iter("ce:ratelimit:*"):
        redis.delete(key)


@pytest.fixture
def asgi_client():
    from config.asgi import application

    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _token(*roles: str) -> str:
    def make():
        return Token.objects.get_or_create(user=make_user(*roles))[0].key

    return await sync_to_async(make)()


@pytest.mark.parametrize("path", ["/v1/campaigns/abc/", "/v1/nothing-here", "/v1/loyalty/ledger/"])
async def test_unknown_api_url_is_a_json_404(asgi_client, path):
    token = await _token(Role.MARKETER)
    async with asgi_client as client:
        response = await client.get(path, headers={"Authorization": f"Token {token}"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not_found", "detail": f"No API endpoint at {path}."}


async def test_unknown_url_outside_the_api_is_still_a_page(asgi_client):
    async with asgi_client as client:
        response = await client.get("/no-such-page/")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_wrong_method_is_a_json_405(asgi_client):
    token = await _token(Role.MARKETER)
    async with asgi_client as client:
        response = await client.delete("/v1/campaigns/", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed", "detail": 'Method "DELETE" not allowed.'}


async def test_unhandled_exception_is_a_json_500_and_logged_with_traceback(asgi_client, monkeypatch, caplog):
    from apps.campaigns import selectors

    def boom(**kwargs):
        raise RuntimeError("selector exploded")

    monkeypatch.setattr(selectors, "campaign_list", boom)
    token = await _token(Role.MARKETER)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        async with asgi_client as client:
            response = await client.get("/v1/campaigns/", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "server_error", "detail": "Internal error; it has been logged."}
    records = [r for r in caplog.records if r.name == "django.request" and r.exc_info]
    assert records and "selector exploded" in str(records[0].exc_info[1])


@pytest.mark.parametrize("query, field", [
    ("status=AAA", "status"), ("channel=fax", "channel"), ("status=", "status"), ("search=a%00b", "search"),
])
async def test_invalid_campaign_filter_is_a_400_naming_the_parameter(asgi_client, query, field):
    token = await _token(Role.MARKETER)
    async with asgi_client as client:
        response = await client.get(f"/v1/campaigns/?{query}", headers={"Authorization": f"Token {token}"})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid" and body["field"] == field and body["detail"].startswith(f"{field}: ")


async def test_valid_campaign_filters_still_filter(asgi_client):
    token = await _token(Role.MARKETER)
    async with asgi_client as client:
        response = await client.get("/v1/campaigns/?status=live&channel=email&search=",
                                    headers={"Authorization": f"Token {token}"})
    assert response.status_code == 200
    assert response.json()["count"] == 0


@pytest.mark.parametrize("query, status, field", [
    ("kind=bogus", 400, "kind"), ("page_size=abc", 400, "page_size"), ("page_size=201", 400, "page_size"),
    ("page_size=0", 400, "page_size"), ("page=last", 404, None), ("page=%D9%A3", 404, None), ("page=0", 404, None),
])
async def test_invalid_ledger_parameters(asgi_client, query, status, field):
    from apps.loyalty import services

    await sync_to_async(services.loyalty_earn)(user_id="ledger-u1", amount_cents=500, channel="app", transaction_id="t1")
    token = await _token(Role.INTEGRATION)
    async with asgi_client as client:
        response = await client.get(f"/v1/loyalty/ledger/ledger-u1?{query}", headers={"Authorization": f"Token {token}"})
    assert response.status_code == status, response.text
    body = response.json()
    if field:
        assert body["field"] == field
    else:
        assert body == {"error": "not_found", "detail": body["detail"]} and body["detail"].startswith("Invalid page")


async def test_rate_limit_per_token_answers_429_with_retry_after(asgi_client, settings):
    settings.API_RATE_LIMITS = {"user": "3/h", "anon": "off", "webhook": "off"}  # no window boundary mid-test
    first, second = await _token(Role.MARKETER), await _token(Role.MARKETER)
    async with asgi_client as client:
        answers = [await client.get("/v1/campaigns/", headers={"Authorization": f"Token {first}"}) for _ in range(4)]
        other = await client.get("/v1/campaigns/", headers={"Authorization": f"Token {second}"})
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    throttled = answers[-1]
    assert 1 <= int(throttled.headers["Retry-After"]) <= 3600
    assert throttled.json()["error"] == "throttled"
    assert "throttled" in throttled.json()["detail"].lower()
    assert other.status_code == 200, "another token has its own budget"


async def test_rate_limit_of_anonymous_callers_is_per_address(asgi_client, settings):
    # An hour window: the schema takes ~1 s per request under load, and a minute window crossed mid-test resets the count.
    settings.API_RATE_LIMITS = {"user": "off", "anon": "2/h", "webhook": "off"}
    async with asgi_client as client:
        answers = [(await client.get("/v1/schema/?format=json")).status_code for _ in range(3)]
        throttled = await client.get("/v1/schema/?format=json")
    assert answers == [200, 200, 429]
    assert int(throttled.headers["Retry-After"]) >= 1 and throttled.json()["error"] == "throttled"
