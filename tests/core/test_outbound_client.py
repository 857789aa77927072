"""apps.core.outbound.client against a real local HTTP server: retries, Retry-After, final 4xx,
timeouts, network errors, breaker and rate limit wiring, the async twin."""
from __future__ import annotations

import email.utils
import time

import pytest

from apps.core.outbound import (
    AsyncOutboundClient,
    CircuitBreaker,
    OutboundClient,
    OutboundError,
    TokenBucket,
    join_url,
    parse_retry_after,
)
from tests.support.http_server import LocalHTTPServer
from tests.support.ports import free_port


@pytest.fixture
def server():
    with LocalHTTPServer() as running:
        yield running


def client_for(server, **kwargs) -> OutboundClient:
    kwargs.setdefault("log_calls", False)
    kwargs.setdefault("backoff", 0.0)
    return OutboundClient("vendor", server.url + "/api/1.0", **kwargs)


def test_join_url_keeps_the_base_path_and_passes_absolute_urls():
    assert join_url("https://app.asana.com/api/1.0/", "/tasks") == "https://app.asana.com/api/1.0/tasks"
    assert join_url("https://x.atlassian.net", "rest/api/3/issue") == "https://x.atlassian.net/rest/api/3/issue"
    assert join_url("https://a.example", "https://b.example/next?page=2") == "https://b.example/next?page=2"
    with pytest.raises(ValueError, match="needs a base_url"):
        join_url("", "/tasks")


def test_parse_retry_after_reads_seconds_and_http_dates():
    now = 1_800_000_000.0
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after(" 0 ", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_a_success_is_returned_with_the_path_joined_to_the_base(server):
    response = client_for(server, headers={"Authorization": "Bearer t0ken"}).get("/tasks", params={"limit": 2})
    assert response.status_code == 200 and response.json() == {"ok": True}
    [request] = server.requests
    assert (request.method, request.path, request.query) == ("GET", "/api/1.0/tasks", {"limit": ["2"]})
    assert request.header("Authorization") == "Bearer t0ken"


def test_a_503_is_retried_then_the_success_returned(server):
    server.script(503, {"errors": [{"message": "busy"}]}, times=2)
    response = client_for(server, retries=2).post("/tasks", json={"data": {"name": "x"}})
    assert response.status_code == 200
    assert [r.method for r in server.requests] == ["POST"] * 3
    assert all(r.json() == {"data": {"name": "x"}} for r in server.requests)


def test_retries_are_bounded_and_the_last_5xx_raised_as_retryable(server):
    server.script(500, {"error": "boom"}, times=5)
    with pytest.raises(OutboundError) as caught:
        client_for(server, retries=2).get("/tasks")
    assert len(server.requests) == 3
    error = caught.value
    assert (error.kind, error.status_code, error.retryable) == ("http", 500, True)
    assert "boom" in error.message and error.json() == {"error": "boom"}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_final_at_once(server, status):
    server.script(status, {"errors": [{"message": "no"}]}, times=3)
    with pytest.raises(OutboundError) as caught:
        client_for(server, retries=3).post("/tasks", json={})
    assert len(server.requests) == 1
    assert (caught.value.kind, caught.value.status_code, caught.value.retryable) == ("http", status, False)


def test_raise_for_status_false_returns_the_final_answer(server):
    server.script(404, {"errors": [{"message": "unknown project"}]})
    response = client_for(server).get("/projects/9", raise_for_status=False)
    assert response.status_code == 404 and len(server.requests) == 1


def test_retry_after_in_seconds_is_waited_for(server):
    server.script(429, {"errors": [{"message": "slow down"}]}, {"Retry-After": "1"})
    started = time.monotonic()
    response = client_for(server, retries=1).get("/tasks")
    waited = time.monotonic() - started
    assert response.status_code == 200 and len(server.requests) == 2
    assert waited >= 0.95  # backoff is 0: only Retry-After can have made it wait


def test_retry_after_as_an_http_date_is_waited_for(server):
    # HTTP dates have whole seconds: 2 s ahead is between 1 and 2 s from now.
    server.script(503, None, {"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)})
    started = time.monotonic()
    response = client_for(server, retries=1).get("/tasks")
    assert response.status_code == 200 and len(server.requests) == 2
    assert time.monotonic() - started >= 0.95


def test_a_retry_after_beyond_the_max_wait_is_handed_to_the_caller(server):
    server.script(429, {"message": "rate limited"}, {"Retry-After": "120"})
    started = time.monotonic()
    with pytest.raises(OutboundError) as caught:
        client_for(server, retries=3, max_retry_wait=5).get("/tasks")
    assert time.monotonic() - started < 5
    assert len(server.requests) == 1
    assert (caught.value.status_code, caught.value.retryable, caught.value.retry_after) == (429, True, 120.0)


def test_a_slow_vendor_is_a_timeout(server):
    server.hold()
    try:
        with pytest.raises(OutboundError) as caught:
            client_for(server, timeout=0.2, retries=0).get("/tasks")
    finally:
        server.release()
    assert (caught.value.kind, caught.value.retryable, caught.value.status_code) == ("timeout", True, None)
    assert len(server.requests) == 1


def test_nobody_listening_is_a_network_error():
    client = OutboundClient("vendor", f"http://127.0.0.1:{free_port()}", retries=1, backoff=0, log_calls=False)
    with pytest.raises(OutboundError) as caught:
        client.get("/tasks")
    assert (caught.value.kind, caught.value.retryable) == ("network", True)


def test_a_deadline_stops_waiting_for_retries(server):
    server.script(503, None, {"Retry-After": "3"}, times=3)
    started = time.monotonic()
    with pytest.raises(OutboundError) as caught:
        client_for(server, retries=3).get("/tasks", deadline=1.0)
    assert time.monotonic() - started < 1.0 and len(server.requests) == 1
    assert caught.value.status_code == 503


def test_the_breaker_opens_after_failures_and_then_refuses_without_sending(server, redis_client):
    breaker = CircuitBreaker("client-test", failure_threshold=2, reset_seconds=30)
    client = client_for(server, retries=0, breaker=breaker)
    server.script(502, None, times=2)
    for _ in range(2):
        with pytest.raises(OutboundError):
            client.get("/tasks")
    assert breaker.state() == "open"
    with pytest.raises(OutboundError) as caught:
        client.get("/tasks")
    assert (caught.value.kind, caught.value.retryable) == ("breaker_open", True)
    assert len(server.requests) == 2  # the third call never left


def test_a_final_4xx_is_not_a_breaker_failure(server, redis_client):
    breaker = CircuitBreaker("client-4xx", failure_threshold=1, reset_seconds=30)
    server.script(400, {"errors": [{"message": "bad"}]})
    with pytest.raises(OutboundError):
        client_for(server, retries=0, breaker=breaker).post("/tasks", json={})
    assert breaker.state() == "closed"


def test_an_empty_bucket_refuses_without_sending(server):
    client = client_for(server, rate_limit=TokenBucket(rate_per_s=0.01, burst=1), rate_limit_wait=0)
    client.get("/tasks")
    with pytest.raises(OutboundError) as caught:
        client.get("/tasks")
    assert (caught.value.kind, caught.value.retryable) == ("rate_limited", True)
    assert caught.value.retry_after > 50  # 1 token at 0.01/s
    assert len(server.requests) == 1


def test_a_short_wait_for_a_token_is_taken(server):
    client = client_for(server, rate_limit=TokenBucket(rate_per_s=10, burst=1), rate_limit_wait=1)
    for _ in range(3):
        assert client.get("/tasks").status_code == 200
    assert len(server.requests) == 3


async def test_the_async_client_retries_a_503_and_honours_retry_after(server):
    server.script(503, None, {"Retry-After": "1"})
    client = AsyncOutboundClient("vendor", server.url, backoff=0, retries=1, log_calls=False)
    try:
        started = time.monotonic()
        response = await client.get("/tasks")
        assert response.status_code == 200 and len(server.requests) == 2
        assert time.monotonic() - started >= 0.95
        server.script(404, {"message": "nope"}, times=2)
        with pytest.raises(OutboundError) as caught:
            await client.get("/tasks/1")
        assert caught.value.status_code == 404 and len(server.requests) == 3
    finally:
        await client.aclose()


async def test_the_async_client_times_out(server):
    client = AsyncOutboundClient("vendor", server.url, timeout=0.2, retries=0, log_calls=False)
    server.hold()
    try:
        with pytest.raises(OutboundError) as caught:
            await client.get("/tasks")
    finally:
        server.release()
        await client.aclose()
    assert caught.value.kind == "timeout"


def test_outbound_error_kinds_are_checked():
    with pytest.raises(ValueError, match="kind must be one of"):
        OutboundError("x", name="v", kind="weird", retryable=False)


def test_a_post_that_may_have_arrived_is_not_sent_again_but_a_get_is(server):
    server.hold()
    try:
        with pytest.raises(OutboundError) as caught:
            client_for(server, timeout=0.2, retries=2).post("/tasks", json={"data": {}})
        assert len(server.requests) == 1 and caught.value.retryable is True
        with pytest.raises(OutboundError):
            client_for(server, timeout=0.2, retries=2).get("/tasks")
        assert len(server.requests) == 4  # 1 POST + 3 GETs
        with pytest.raises(OutboundError):
            client_for(server, timeout=0.2, retries=1).post("/rows", json={}, idempotent=True)
        assert len(server.requests) == 6
    finally:
        server.release()


@pytest.mark.django_db
def test_a_post_that_never_connected_is_retried():
    from apps.core.models import OutboundCall

    port = free_port()
    client = OutboundClient("vendor", f"http://127.0.0.1:{port}", retries=2, backoff=0, log_calls=True)
    with pytest.raises(OutboundError) as caught:
        client.post("/tasks", json={})
    assert caught.value.kind == "network"
    assert list(OutboundCall.objects.order_by("id").values_list("attempt", "outcome")) == [
        (1, "network"), (2, "network"), (3, "network")]
