"""apps.core.outbound.breaker: state in the real Redis, shared by every instance with the same name."""
from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.core import redis as redis_store
from apps.core.outbound import CircuitBreaker
from tests.support.ports import free_port
from tests.support.threads import run_together
from tests.support.wait import async_wait_until, wait_until


def test_closed_until_the_threshold_of_consecutive_failures(redis_client):
    breaker = CircuitBreaker("vendor-a", failure_threshold=3, reset_seconds=30)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # not consecutive any more
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state() == "closed" and breaker.allow() is True
    breaker.record_failure()
    assert breaker.state() == "open"
    assert breaker.allow() is False
    # another process with the same name sees the same state
    assert CircuitBreaker("vendor-a", failure_threshold=3, reset_seconds=30).allow() is False
    assert CircuitBreaker("vendor-b").allow() is True
    assert redis_client.exists("{outbound:vendor-a}:breaker") == 1


def test_half_open_lets_exactly_one_probe_through_then_closes_on_success(redis_client):
    breaker = CircuitBreaker("vendor-probe", failure_threshold=1, reset_seconds=0.3)
    breaker.record_failure()
    assert breaker.state() == "open" and breaker.allow() is False
    wait_until(lambda: breaker.state() == "half_open", timeout=5, message="reset passed")
    peers = [CircuitBreaker("vendor-probe", failure_threshold=1, reset_seconds=0.3) for _ in range(20)]
    answers = run_together([peer.allow for peer in peers])
    assert answers.count(True) == 1
    assert breaker.state() == "half_open"
    breaker.record_success()
    assert breaker.state() == "closed"
    assert all(peer.allow() for peer in peers)
    assert redis_client.exists(breaker.key) == 0  # closed with no failures is no key


def test_a_failed_probe_opens_it_again_for_another_reset(redis_client):
    breaker = CircuitBreaker("vendor-relapse", failure_threshold=2, reset_seconds=0.3)
    breaker.record_failure()
    breaker.record_failure()
    wait_until(lambda: breaker.state() == "half_open", timeout=5, message="reset passed")
    assert breaker.allow() is True
    breaker.record_failure()
    assert breaker.state() == "open" and breaker.allow() is False
    wait_until(lambda: breaker.state() == "half_open", timeout=5, message="second reset passed")
    assert breaker.allow() is True


def test_a_probe_that_never_reports_is_replaced_after_a_reset(redis_client):
    breaker = CircuitBreaker("vendor-lost-probe", failure_threshold=1, reset_seconds=0.3)
    breaker.record_failure()
    wait_until(breaker.allow, timeout=5, message="first probe allowed")
    assert breaker.allow() is False
    wait_until(breaker.allow, timeout=5, message="a new probe after the lost one")


def test_redis_down_lets_calls_through():
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    breaker = CircuitBreaker("vendor-no-redis", failure_threshold=1, redis=dead)
    breaker.record_failure()
    assert breaker.allow() is True and breaker.state() == "closed"


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker("x", reset_seconds=0)


async def test_the_async_twins_share_the_state(redis_client):
    client = redis_store.async_client()
    try:
        breaker = CircuitBreaker("vendor-async", failure_threshold=2, reset_seconds=0.3, redis=client)
        sync_view = CircuitBreaker("vendor-async", failure_threshold=2, reset_seconds=0.3)
        await breaker.record_failure_async()
        assert await breaker.allow_async() is True
        await breaker.record_failure_async()
        assert await breaker.state_async() == "open" and sync_view.state() == "open"
        assert await breaker.allow_async() is False
        await async_wait_until(lambda: sync_view.state() == "half_open", timeout=5, message="reset passed")
        assert await breaker.allow_async() is True
        assert await breaker.allow_async() is False
        await breaker.record_success_async()
        assert await breaker.state_async() == "closed"
    finally:
        await client.aclose()
