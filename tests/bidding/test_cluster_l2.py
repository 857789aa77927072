"""The bid path's L2 read on a Redis Cluster (``apps.bidding.l2.ClusterL2Client``): each key to the
master of its slot, both reads in one round trip, and a stale slot map (``MOVED``) recovered from.

Runs on the suite's cluster in the Redis Cluster pass, and on a cluster of its own otherwise."""
from __future__ import annotations

import hashlib
import time

import pytest
from redis.crc import key_slot

from apps.bidding.cache import freq_key
from apps.bidding.l2 import ClusterL2Client, L2Unavailable
from apps.core import redis as redis_store
from apps.core.profiles import profile_key, profile_write


@pytest.fixture
def cluster(cluster_url):
    client = redis_store.sync_from_url(cluster_url)
    client.flushdb()
    yield client
    client.close()


def _split_user(table) -> str:
    """An id with a brace, whose frequency key's tag ("profile:x" of "{profile:x}y}:freq") is not
    the profile key's name: its two keys on two masters."""
    return next(user for user in (f"x}}{i}" for i in range(1000))
                if table[key_slot(profile_key(user).encode())] != table[key_slot(freq_key(user, cluster=True).encode())])


async def test_profiles_and_frequency_come_from_the_master_of_each_slot(cluster, cluster_url):
    now = time.time()
    users = [hashlib.sha1(str(i).encode()).hexdigest()[:12] for i in range(24)]  # varied: CRC16 slots of similar names correlate
    l2 = ClusterL2Client(cluster_url)
    try:
        await l2.warm()
        table = l2._slots
        tagged = {key_slot(profile_key(u).encode()) == key_slot(freq_key(u, cluster=True).encode()) for u in users}
        assert tagged == {True}  # the frequency key lives in the profile's slot: one master, one request
        assert {table[key_slot(profile_key(u).encode())] for u in users} == set(table)  # users on every master
        users.append(_split_user(table))  # and the two-master path
        for i, user in enumerate(users):
            profile_write(user_id=user, fields={"loyalty_tier": "gold", "recency": i / 10}, client=cluster,
                          announce=False)
            cluster.zadd(freq_key(user, cluster=True), {f"bid-{i}:7": now - 60, f"old-{i}:7": now - 3 * 86400})
        for i, user in enumerate(users):
            profile, freq = await l2.profile_and_freq(user, now - 86400)
            assert profile[b"loyalty_tier"] == b'"gold"' and float(profile[b"recency"]) == i / 10
            assert [(m, s) for m, s in freq] == [(f"bid-{i}:7".encode(), now - 60)]
        assert await l2.profile_and_freq("nobody", now - 86400) == ({}, [])
    finally:
        await l2.aclose()


async def test_a_stale_slot_map_fails_one_read_and_is_reloaded(cluster, cluster_url):
    profile_write(user_id="moved", fields={"loyalty_tier": "reserve"}, client=cluster, announce=False)
    l2 = ClusterL2Client(cluster_url)
    try:
        await l2.warm()
        right = l2._slots[key_slot(profile_key("moved").encode())]
        wrong = next(address for address in set(l2._slots) if address != right)
        l2._slots = [wrong] * 16384  # as after a resharding or a failover
        with pytest.raises(L2Unavailable, match="MOVED"):
            await l2.profile_and_freq("moved", time.time() - 86400)
        assert l2._slots is None  # marked stale: the next read loads the map again
        profile, _ = await l2.profile_and_freq("moved", time.time() - 86400)
        assert profile[b"loyalty_tier"] == b'"reserve"'
    finally:
        await l2.aclose()


def test_legacy_frequency_sets_are_folded_into_the_profiles_slot(cluster, cluster_url):
    from apps.bidding.cache import legacy_freq_key
    from apps.bidding.services import migrate_legacy_freq

    now = time.time()
    users = [hashlib.sha1(f"legacy-{i}".encode()).hexdigest()[:10] for i in range(12)]
    for i, user in enumerate(users):  # as the previous version wrote them
        cluster.zadd(legacy_freq_key(user), {f"old-bid-{i}:7": now - 120})
        cluster.expire(legacy_freq_key(user), 3600)
    cluster.zadd(freq_key(users[0], cluster=True), {"new-bid:7": now - 10, "old-bid-0:7": now - 120})  # a win since
    cluster.expire(freq_key(users[0], cluster=True), 90_000)
    assert migrate_legacy_freq(cluster, batch=5) == len(users)
    for i, user in enumerate(users):
        assert not cluster.exists(legacy_freq_key(user))
        expected = [(f"old-bid-{i}:7".encode(), now - 120)] + ([(b"new-bid:7", now - 10)] if i == 0 else [])
        assert cluster.zrange(freq_key(user, cluster=True), 0, -1, withscores=True) == expected
        assert 3500 < cluster.ttl(freq_key(user, cluster=True)) <= (90_000 if i == 0 else 3600)
    assert cluster.ttl(freq_key(users[0], cluster=True)) > 3600  # the longer TTL kept
    assert migrate_legacy_freq(cluster) == 0  # idempotent
