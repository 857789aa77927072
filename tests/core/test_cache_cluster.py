"""The Django cache and the API rate limiter on a Redis Cluster (``CACHE_URL=redis+cluster://...``,
``apps.core.cache_cluster.ClusterCacheClient``).

Runs on the suite's cluster in the Redis Cluster pass, and on a cluster of its own otherwise."""
from __future__ import annotations

import threading

import pytest
from django.core.cache import caches
from django.test import override_settings
from redis.crc import key_slot

from apps.core import redis as redis_store
from apps.core.cache_cluster import ClusterCacheClient


@pytest.fixture
def cluster_cache(cluster_url):
    """``config.settings.stores``' own CACHES for a cluster CACHE_URL, in place of the test cache."""
    from django.conf import settings

    config = {**settings.CACHES["default"], "LOCATION": [cluster_url],
              "OPTIONS": {**settings.CACHES["default"]["OPTIONS"], "CLIENT_CLASS": "apps.core.cache_cluster.ClusterCacheClient"}}
    raw = redis_store.sync_from_url(cluster_url)
    raw.flushdb()
    with override_settings(CACHES={"default": config}):
        yield caches["default"]
        caches["default"].close()
    raw.close()


def test_settings_pick_the_cluster_client_for_a_cluster_url(cluster_url):
    import importlib

    from config import env
    from config.settings import stores

    saved = env.CACHE_URL
    try:
        env.CACHE_URL = cluster_url
        importlib.reload(stores)
        assert stores.CACHES["default"]["LOCATION"] == [cluster_url]
        assert stores.CACHES["default"]["OPTIONS"]["CLIENT_CLASS"] == "apps.core.cache_cluster.ClusterCacheClient"
    finally:
        env.CACHE_URL = saved
        importlib.reload(stores)
    assert stores.CACHES["default"]["LOCATION"] == saved


def test_get_set_delete_across_slots(cluster_cache):
    keys = [f"k{i}" for i in range(40)]
    assert len({key_slot(cluster_cache.make_key(k).encode()) for k in keys}) > 10  # many slots, several masters
    assert isinstance(cluster_cache.client, ClusterCacheClient)
    cluster_cache.set_many({k: {"n": i} for i, k in enumerate(keys)}, timeout=60)
    assert cluster_cache.get("k7") == {"n": 7}
    got = cluster_cache.get_many([*keys, "missing"])
    assert got == {k: {"n": i} for i, k in enumerate(keys)}
    assert cluster_cache.add("k1", "other") is False
    assert cluster_cache.add("counter", 0) is True
    assert cluster_cache.incr("counter", 2) == 2
    assert sorted(cluster_cache.keys("k1*")) == sorted(k for k in keys if k.startswith("k1"))
    assert cluster_cache.delete_many(keys[:20]) == 20
    assert cluster_cache.get_many(keys[:20]) == {}
    assert cluster_cache.delete_pattern("k3*") == len([k for k in keys[20:] if k.startswith("k3")])
    cluster_cache.clear()  # FLUSHDB on every master
    assert cluster_cache.get_many(keys) == {}


def test_the_rate_limiter_counts_exactly_on_a_cluster(cluster_cache):
    from apps.core.throttling import _incr_with_expiry

    counts: list[int] = []
    lock = threading.Lock()

    def hit():
        for _ in range(25):
            n = _incr_with_expiry("ce:ratelimit:user:u1:60:1", 60)
            with lock:
                counts.append(n)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == list(range(1, 201))  # every INCR seen once: no lost or repeated count
    from django_redis import get_redis_connection

    ttl = get_redis_connection("default").ttl("ce:ratelimit:user:u1:60:1")
    assert 0 < ttl <= 61
