"""apps.bidding.l2.L2Client: the bid path's pipelined profile + frequency read."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis

from apps.bidding.cache import freq_key, load_from_redis
from apps.bidding.l2 import L2Client, L2Unavailable
from apps.core.profiles import profile_write
from config import env
from tests.support.wait import async_pause


@pytest.fixture
async def l2(redis_client):
    client = L2Client(env.env_str("REDIS_URL", env.REDIS_URL))
    yield client
    await client.aclose()


async def test_reads_what_redis_py_reads(redis_client, l2):
    from apps.bidding.bidder import bid_redis

    now = time.time()
    profile_write(user_id="ana", fields={"loyalty_tier": "gold", "segments": [4, 9], "recency": 0.5,
                                         "interests": [0.25] * 64, "loyalty": [0.5] * 8})
    redis_client.zadd(freq_key("ana"), {"b1:7": now - 100, "b2:8": now - 7200, "old:7": now - 90_000})
    reference = bid_redis(env.env_str("REDIS_URL", env.REDIS_URL))
    try:
        for user in ("ana", "nobody"):
            ours, theirs = await load_from_redis(l2, user, now), await load_from_redis(reference, user, now)
            assert (ours.known, ours.tier, ours.segments, ours.recency, ours.wins) == (
                theirs.known, theirs.tier, theirs.segments, theirs.recency, theirs.wins)
            assert list(ours.interests) == list(theirs.interests) and list(ours.loyalty) == list(theirs.loyalty)
    finally:
        await reference.aclose()
    state = await load_from_redis(l2, "ana", now)
    assert state.tier == "gold" and [cid for _, cid in state.wins] == [8, 7]  # the 25 h old win is not read


async def test_concurrent_reads_share_one_connection_in_order(redis_client, l2):
    for i in range(50):
        profile_write(user_id=f"u{i}", fields={"recency": i / 100})
    states = await asyncio.gather(*(load_from_redis(l2, f"u{i}", time.time()) for i in range(50)))
    assert [round(float(s.recency), 2) for s in states] == [i / 100 for i in range(50)]


async def test_a_cancelled_read_never_shifts_the_replies_of_the_next(redis_client, l2):
    profile_write(user_id="first", fields={"loyalty_tier": "gold"})
    profile_write(user_id="second", fields={"loyalty_tier": "reserve"})
    await l2.profile_and_freq("warm-up", 0)  # connected
    task = asyncio.ensure_future(l2.profile_and_freq("first", 0))
    await async_pause(0, "one loop turn: the request is written...")
    task.cancel()  # ...and abandoned (a deadline) before its replies arrive
    profile, _ = await l2.profile_and_freq("second", 0)
    assert profile[b"loyalty_tier"] == b'"reserve"'


async def test_a_read_past_its_timeout_fails_and_its_late_replies_are_skipped(redis_client, l2):
    profile_write(user_id="late", fields={"loyalty_tier": "gold"})
    profile_write(user_id="next", fields={"loyalty_tier": "reserve"})
    for connected in (False, True):  # the connection made inside the bound, then the timer on the reply alone
        assert (l2._protocol is not None) is connected
        redis_client.execute_command("CLIENT", "PAUSE", 150, "ALL")  # Redis answers nobody for 150 ms
        started = time.perf_counter()
        with pytest.raises(asyncio.TimeoutError):
            await load_from_redis(l2, "late", time.time(), timeout=0.05)
        assert time.perf_counter() - started < 0.14  # cut at the bound, not when Redis woke up
        state = await load_from_redis(l2, "next", time.time(), timeout=1.0)  # after the pause
        assert state.tier == "reserve"  # not the late read's replies
    assert not l2._protocol.pending


async def test_reconnects_after_redis_restarts_and_fails_fast_meanwhile(redis_server):
    server = redis_server()
    client = L2Client(server.url(db=3))
    redis.Redis.from_url(server.url(db=3)).hset("profile:x", "loyalty_tier", '"gold"')
    try:
        assert (await client.profile_and_freq("x", 0))[0] == {b"loyalty_tier": b'"gold"'}  # SELECT 3 applied
        server.stop()
        # refused at once, not after a timeout (how fast: bench/timings.py); a hang guard only
        for _ in range(2):
            with pytest.raises(L2Unavailable):
                await asyncio.wait_for(client.profile_and_freq("x", 0), timeout=10)
        server.start()
        assert (await client.profile_and_freq("x", 0))[0] == {}  # a fresh, empty server, reached again
    finally:
        await client.aclose()


async def test_password_and_refusals(redis_server):
    server = redis_server("--requirepass", "s3cret")
    good = L2Client(server.url(password="s3cret"))
    bad = L2Client(server.url(password="wrong"))
    anonymous = L2Client(server.url())
    try:
        assert await good.profile_and_freq("nobody", 0) == ({}, [])
        with pytest.raises(L2Unavailable, match="refused"):
            await bad.profile_and_freq("nobody", 0)
        with pytest.raises(L2Unavailable, match="NOAUTH"):
            await anonymous.profile_and_freq("nobody", 0)
    finally:
        for c in (good, bad, anonymous):
            await c.aclose()
    with pytest.raises(ValueError):
        L2Client("rediss://127.0.0.1:6379/0")
