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


# --- X-RateLimit-Reset / X-RateLimit-Remaining (Jira Cloud's rate-limit headers) -------------------

def _iso(epoch: float, *, minutes_only: bool = False) -> str:
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(epoch, UTC)
    return when.strftime("%Y-%m-%dT%H:%MZ" if minutes_only else "%Y-%m-%dT%H:%M:%S.%fZ")


def test_parse_rate_limit_reset_reads_jiras_iso_timestamps_and_epochs():
    from apps.core.outbound import parse_rate_limit_reset

    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert parse_rate_limit_reset("2027-01-15T08:01Z", now=now) == 60.0  # Jira: yyyy-MM-ddTHH:mmZ
    assert parse_rate_limit_reset("2027-01-15T08:00:30+00:00", now=now) == 30.0
    assert parse_rate_limit_reset("2027-01-15T07:59Z", now=now) == 0.0  # past: no wait
    assert parse_rate_limit_reset(str(int(now) + 45), now=now) == 45.0  # a Unix epoch
    assert parse_rate_limit_reset("12", now=now) is None  # not a point in time
    assert parse_rate_limit_reset("tomorrow", now=now) is None and parse_rate_limit_reset(None) is None


class WindowServer(LocalHTTPServer):
    """A vendor that refuses (429, ``X-RateLimit-Reset`` only, no Retry-After) anything sent before
    its window resets, and counts how often it had to."""

    def __init__(self):
        super().__init__()
        self.reset_at = 0.0
        self.refused = 0
        self.first_headers: dict = {}

    def answer(self, recorded):
        if time.time() < self.reset_at:
            self.refused += 1
            return 429, {"X-RateLimit-Reset": _iso(self.reset_at), "RateLimit-Reason": "jira-quota-global-based"}, {
                "errorMessages": ["Rate limit exceeded."], "errors": {}}
        headers, self.first_headers = self.first_headers, {}
        return 200, headers, {"ok": True}


@pytest.fixture
def window_server():
    with WindowServer() as running:
        yield running


def test_a_429_with_only_x_ratelimit_reset_waits_until_the_reset(window_server):
    window_server.reset_at = time.time() + 1.5
    response = client_for(window_server, retries=3).get("/rest/api/3/issue/OPS-1")  # backoff 0
    assert response.status_code == 200
    # one refusal: the retry went after the reset, not at once (backoff 0 would have been refused thrice)
    assert window_server.refused == 1 and len(window_server.requests) == 2


def test_a_reset_beyond_the_max_wait_is_handed_to_the_caller(window_server):
    window_server.reset_at = time.time() + 600
    with pytest.raises(OutboundError) as caught:
        client_for(window_server, retries=3, max_retry_wait=5).post("/rest/api/3/issue", json={})
    assert len(window_server.requests) == 1 and caught.value.retryable and caught.value.status_code == 429
    assert 540 < caught.value.retry_after <= 600  # the Celery task retries then


def test_remaining_zero_holds_the_next_request_until_the_reset(window_server):
    client = client_for(window_server, retries=0)  # no retries: a request sent early would fail
    reset = time.time() + 1.2
    window_server.first_headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": _iso(reset)}
    assert client.get("/rest/api/3/myself").status_code == 200
    window_server.reset_at = reset  # from now on the vendor refuses anything before the reset
    assert client.get("/rest/api/3/myself").status_code == 200
    assert window_server.refused == 0 and len(window_server.requests) == 2


def test_remaining_zero_with_a_far_reset_refuses_without_sending(window_server):
    client = client_for(window_server, retries=0, max_retry_wait=5)
    window_server.first_headers = {"X-RateLimit-Remaining": "0",
                                   "X-RateLimit-Reset": _iso(time.time() + 180, minutes_only=True)}
    client.get("/rest/api/3/myself")
    with pytest.raises(OutboundError) as caught:
        client.get("/rest/api/3/myself")
    assert caught.value.kind == "rate_limited" and caught.value.retryable and caught.value.retry_after > 100
    assert len(window_server.requests) == 1
    other = client_for(window_server, retries=0)  # another client (another connection) is not held
    assert other.get("/rest/api/3/myself").status_code == 200


async def test_the_async_client_waits_for_x_ratelimit_reset_too(window_server):
    window_server.reset_at = time.time() + 1.2
    client = AsyncOutboundClient("vendor", window_server.url, backoff=0, retries=3, log_calls=False)
    try:
        assert (await client.get("/rest/api/3/issue/OPS-1")).status_code == 200
    finally:
        await client.aclose()
    assert window_server.refused == 1
