"""apps.core.outbound.ratelimit: the in-process bucket and the shared Redis one, exact under threads."""
from __future__ import annotations

import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from apps.core import redis as redis_store
from apps.core.outbound import RedisTokenBucket, TokenBucket
from tests.support.ports import free_port
from tests.support.wait import wait_until


def test_in_process_bucket_gives_the_burst_then_refills():
    bucket = TokenBucket(rate_per_s=20, burst=3)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert 0 < bucket.wait_time() <= 0.05
    wait_until(bucket.try_acquire, timeout=2, message="a token after 1/20 s")
    assert bucket.wait_time(4) == float("inf")


def test_in_process_bucket_is_exact_under_threads():
    bucket = TokenBucket(rate_per_s=0.001, burst=500)
    taken = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def work():
        barrier.wait()
        mine = sum(bucket.try_acquire() for _ in range(100))
        with lock:
            taken.append(mine)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(taken) == 500


def test_redis_bucket_is_exact_under_concurrency(redis_client):
    buckets = [RedisTokenBucket("exact", rate_per_s=0.001, burst=300) for _ in range(12)]
    taken = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(buckets))

    def work(bucket):
        barrier.wait()
        mine = sum(bucket.try_acquire() for _ in range(50))
        with lock:
            taken.append(mine)

    threads = [threading.Thread(target=work, args=(b,)) for b in buckets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(taken) == 12 and sum(taken) == 300  # 600 attempts, exactly the burst granted
    assert redis_client.exists("{outbound:exact}:bucket") == 1
    assert redis_client.pttl("{outbound:exact}:bucket") > 0


def test_redis_bucket_refills_at_its_rate_and_says_how_long(redis_client):
    bucket = RedisTokenBucket("refill", rate_per_s=10, burst=2)
    assert [bucket.try_acquire(), bucket.try_acquire(), bucket.try_acquire()] == [True, True, False]
    assert 0 < bucket.wait_time() <= 0.1
    assert 0.1 < bucket.wait_time(2) <= 0.2
    wait_until(bucket.try_acquire, timeout=2, message="a token after 1/10 s")
    assert bucket.try_acquire(3) is False and bucket.wait_time(3) == float("inf")


def test_redis_bucket_takes_nothing_when_it_refuses(redis_client):
    bucket = RedisTokenBucket("all-or-nothing", rate_per_s=0.001, burst=5)
    assert bucket.try_acquire(3) is True
    assert bucket.try_acquire(3) is False
    assert bucket.try_acquire(2) is True


def test_redis_down_lets_calls_through():
    dead = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    bucket = RedisTokenBucket("no-redis", rate_per_s=1, burst=1, redis=dead)
    assert bucket.try_acquire() and bucket.try_acquire()


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        TokenBucket(rate_per_s=0, burst=1)
    with pytest.raises(ValueError):
        RedisTokenBucket("x", rate_per_s=1, burst=0)


async def test_async_acquire_shares_the_bucket(redis_client):
    client = redis_store.async_client()
    try:
        async_bucket = RedisTokenBucket("shared-async", rate_per_s=0.001, burst=3, redis=client)
        sync_bucket = RedisTokenBucket("shared-async", rate_per_s=0.001, burst=3)
        assert sync_bucket.try_acquire(2) is True
        assert await async_bucket.try_acquire_async() is True
        assert await async_bucket.try_acquire_async() is False
        assert await async_bucket.wait_time_async() > 100
    finally:
        await client.aclose()
