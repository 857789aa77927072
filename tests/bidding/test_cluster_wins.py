"""A win, the spend flush and the exhausted set on a Redis Cluster (issue 20): every script touches one
slot, and the invariants that span entities — idempotent per bid, spend exact per campaign,
frequency per user — are kept by the order of idempotent steps. Proven here by crashing and
interleaving between the steps.

The cluster algorithm runs on any Redis (its steps are single-slot scripts), so these tests run in
both passes of scripts/test.sh: on the single test Redis and on the local 3-master cluster, where the
cluster client refuses any cross-slot script or transaction outright."""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from apps.bidding import services, snapshot, wins
from apps.bidding.cache import freq_key
from apps.bidding.models import SpendFlush
from apps.bidding.tokens import WinToken, parse_win_token, win_token
from apps.campaigns import selectors as campaign_selectors
from apps.core import redis as redis_store
from apps.core.roles import Role
from tests.bidding.helpers import SECRET
from tests.bidding.test_services import launch, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    return make_user(Role.MARKETER), make_user(Role.APPROVER)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def aclient(redis_client, loop):
    from config import env

    # patient timeouts: the concurrency test opens dozens of connections at once on a busy machine
    client = redis_store.async_from_url(env.env_str("REDIS_URL", env.REDIS_URL), socket_connect_timeout=10,
                                        socket_timeout=10)
    loop.run_until_complete(redis_store.ready(client))  # as Bidder.start does, before concurrent commands
    yield client
    loop.run_until_complete(client.aclose())


def user_freq(client, user: str) -> str:
    """The user's frequency set on the client's store (``{profile:<user>}:freq`` on a cluster)."""
    return freq_key(user, cluster=redis_store.is_cluster(client))


def _token(campaign_id: int, bid_id: str, user: str = "user-1") -> str:
    return win_token(SECRET, WinToken(bid_id, "req", "1", campaign_id, 1, user, 50_000_000, int(time.time())))


def record(loop, aclient, campaign_id: int, bid_id: str, price: str = "2.00", *, user: str = "user-1",
           budget_micros: int | None = None) -> wins.WinResult:
    return loop.run_until_complete(wins.record_win(
        aclient, secret=SECRET, token=_token(campaign_id, bid_id, user), price=price, now=time.time(),
        max_age=86400, budget_for=lambda cid: budget_micros))


def cluster_steps(loop, aclient, campaign_id: int, bid_id: str, *, micros: int = 2000, user: str = "user-1",
                  budget_micros: int = 0, between=None, crash: str | None = None) -> tuple[int, int, int] | None:
    """The cluster path of a win, step by step (on a single Redis ``record_win`` takes the one script).
    ``crash="campaign"``: the process dies before step 1, ``"followers"``: between step 1 and step 2.
    ``between()`` runs between the two steps (e.g. a spend flush)."""
    t = parse_win_token(SECRET, _token(campaign_id, bid_id, user))
    ts = repr(time.time())
    if crash == "campaign":
        return None
    counted, total = loop.run_until_complete(wins.win_campaign_step(aclient, t, ts=ts, micros=micros))
    if crash == "followers":
        return None
    if between is not None:
        between()
    exhausted = loop.run_until_complete(wins.win_follower_steps(
        aclient, t, counted=counted, total=total, ts=ts, budget_micros=budget_micros,
        message=b'["%s", %s, %d]' % (user.encode(), ts.encode(), campaign_id)))
    return counted, total, exhausted


def spent(campaign) -> Decimal:
    return campaign_selectors.campaign_get(campaign_id=campaign.pk).spent


def test_a_win_interrupted_between_its_steps_is_completed_by_the_retried_notice(people, redis_client, loop, aclient):
    campaign = launch(people)
    cluster_steps(loop, aclient, campaign.pk, "w1", crash="followers")
    # the money moved with the marker, the follow-up steps did not run
    assert int(redis_client.get(wins.spend_pending_key(campaign.pk))) == 2000
    assert not redis_client.sismember(wins.SPEND_DIRTY_KEY, campaign.pk)
    assert redis_client.zcard(user_freq(redis_client, "user-1")) == 0

    retried = cluster_steps(loop, aclient, campaign.pk, "w1")  # the exchange retries the notice
    assert retried == (0, 2000, 0)  # a duplicate: counts nothing twice...
    assert int(redis_client.get(wins.spend_pending_key(campaign.pk))) == 2000
    assert int(redis_client.get(wins.spend_total_key(campaign.pk))) == 2000
    # ...but completes what the crash left undone
    assert redis_client.sismember(wins.SPEND_DIRTY_KEY, campaign.pk)
    assert redis_client.zrange(user_freq(redis_client, "user-1"), 0, -1) == [f"w1:{campaign.pk}".encode()]
    services.spend_flush()
    assert spent(campaign) == Decimal("0.002000")


def test_a_crash_before_the_campaign_step_counts_nothing_and_the_retry_counts_once(people, redis_client, loop, aclient):
    campaign = launch(people)
    cluster_steps(loop, aclient, campaign.pk, "w2", crash="campaign")
    assert redis_client.get(wins.spend_pending_key(campaign.pk)) is None
    assert record(loop, aclient, campaign.pk, "w2").counted
    assert not record(loop, aclient, campaign.pk, "w2").counted
    assert int(redis_client.get(wins.spend_total_key(campaign.pk))) == 2000
    assert redis_client.zcard(user_freq(redis_client, "user-1")) == 1


def test_concurrent_duplicates_count_each_bid_once(people, redis_client, loop, aclient):
    campaign = launch(people)

    async def storm():
        notices = [(f"c{i}", f"user-{i % 3}") for i in range(10) for _ in range(4)]  # each bid id 4 times
        return await asyncio.gather(*(
            wins._record_win_cluster(aclient, parse_win_token(SECRET, _token(campaign.pk, bid, user)),
                                     ts=repr(time.time()), micros=1000, budget_micros=0, message=b"[]")
            for bid, user in notices))

    results = loop.run_until_complete(storm())
    assert sum(counted for counted, _, _ in results) == 10
    assert int(redis_client.get(wins.spend_total_key(campaign.pk))) == 10 * 1000
    assert int(redis_client.get(wins.spend_pending_key(campaign.pk))) == 10 * 1000
    assert sum(redis_client.zcard(user_freq(redis_client, f"user-{u}")) for u in range(3)) == 10
    services.spend_flush()
    assert spent(campaign) == Decimal("0.010000")


def test_a_flush_between_the_spend_and_the_dirty_mark_strands_nothing(people, redis_client, loop, aclient):
    """The win increments pending, then marks the campaign dirty; a flush that runs in between
    either claims the spend or leaves the campaign for the next run, never loses or doubles it."""
    campaign = launch(people)
    record(loop, aclient, campaign.pk, "f0")  # the campaign is dirty already
    flushed_between: list[int] = []

    def flush_in_between() -> None:
        flushed_between.append(services.spend_flush().micros)

    cluster_steps(loop, aclient, campaign.pk, "f1", between=flush_in_between)  # flushed: f0 and f1
    cluster_steps(loop, aclient, campaign.pk, "f2", between=flush_in_between)  # flushed: f2
    assert flushed_between == [4000, 2000]
    assert redis_client.sismember(wins.SPEND_DIRTY_KEY, campaign.pk)  # f2's follower marked it again
    assert services.spend_flush().micros == 0  # nothing left, nothing twice
    assert spent(campaign) == Decimal("0.006000")

    # the first win of a campaign that is not dirty yet: the in-between flush does not see it...
    other = launch(people)
    flushed_between.clear()
    cluster_steps(loop, aclient, other.pk, "g1", between=flush_in_between)
    assert flushed_between == [0]
    assert services.spend_flush().micros == 2000  # ...the next one does
    assert spent(other) == Decimal("0.002000")


def test_a_flush_that_crashed_after_taking_the_campaign_out_of_dirty_is_finished_by_the_next(
        people, redis_client, loop, aclient):
    campaign = launch(people)
    record(loop, aclient, campaign.pk, "k1")
    # the crashed run's first two steps
    redis_client.sadd(services.SPEND_FLUSHING_KEY, campaign.pk)
    redis_client.srem(wins.SPEND_DIRTY_KEY, campaign.pk)
    result = services.spend_flush()
    assert (result.micros, result.campaigns) == (2000, {campaign.pk})
    assert not redis_client.sismember(services.SPEND_FLUSHING_KEY, campaign.pk)
    assert spent(campaign) == Decimal("0.002000")


def test_the_snapshot_refresh_puts_back_spend_a_crash_left_out_of_dirty(people, redis_client, loop, aclient):
    campaign = launch(people)
    cluster_steps(loop, aclient, campaign.pk, "s1", crash="followers")  # pending incremented, never marked dirty
    assert services.spend_flush().micros == 0
    services.offer_snapshot_refresh()
    assert services.spend_flush().micros == 2000
    assert spent(campaign) == Decimal("0.002000")


def test_the_campaign_that_reaches_its_budget_is_exhausted_once(people, redis_client, loop, aclient):
    campaign = launch(people)
    first = cluster_steps(loop, aclient, campaign.pk, "e1", micros=6000, budget_micros=10_000)
    second = cluster_steps(loop, aclient, campaign.pk, "e2", micros=6000, budget_micros=10_000)
    third = cluster_steps(loop, aclient, campaign.pk, "e3", micros=6000, budget_micros=10_000)
    assert (first[2], second[2], third[2]) == (0, 1, 0)  # announced once, by the win that crossed it
    assert redis_client.sismember(snapshot.EXHAUSTED_KEY, campaign.pk)


class _WinAfterSrem:
    """A client whose ``SREM`` of the exhausted set is followed at once by a win's first step."""

    def __init__(self, client, campaign_id: int, micros: int):
        self.client, self.campaign_id, self.micros = client, campaign_id, micros

    def __getattr__(self, name):
        return getattr(self.client, name)

    def srem(self, key, *members):
        out = self.client.srem(key, *members)
        self.client.incrby(wins.spend_total_key(self.campaign_id), self.micros)  # the win's INCRBY
        return out


def test_recomputing_the_exhausted_set_never_drops_a_campaign_a_concurrent_win_exhausted(redis_client):
    redis_client.set(wins.spend_total_key(1), 9_000)
    redis_client.set(wins.spend_total_key(2), 20_000)
    # campaign 1 is under budget when read, then a win pushes it over right after our SREM; that
    # win's SADD ran before our SREM (on a cluster: its own step), so only the re-read catches it
    racing = _WinAfterSrem(redis_client, 1, 2_000)
    over = snapshot._exhausted_campaigns_cluster(racing, {1: 10_000, 2: 10_000, 3: 10_000})
    assert sorted(over) == [1, 2]
    assert {int(x) for x in redis_client.smembers(snapshot.EXHAUSTED_KEY)} == {1, 2}


def test_every_key_of_a_campaign_shares_its_slot():
    from redis.crc import key_slot

    keys = [wins.win_key("bid-1", 42), wins.spend_total_key(42), wins.spend_pending_key(42),
            wins.spend_inflight_key(42)]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert snapshot.spend_total_key(42) == wins.spend_total_key(42)


@pytest.mark.single_redis  # the legacy names only ever existed on a single Redis
def test_spend_and_wins_under_the_legacy_key_names_are_folded_in_exactly_once(people, redis_client, loop, aclient):
    """A rolling deployment: the old version wrote ``spend:total:<cid>``, ``spend:pending:<cid>``,
    ``spend:inflight`` and ``win:<bid_id>``. Nothing of it is lost, nothing counted twice."""
    campaign = launch(people)
    cid = campaign.pk
    redis_client.set(f"spend:total:{cid}", 5000)
    redis_client.set(f"spend:pending:{cid}", 3000)
    redis_client.hset("spend:inflight", "old-batch", f"{cid}:2000")
    redis_client.sadd("spend:dirty", cid)
    redis_client.set("win:legacy-bid", time.time())  # counted by the old version

    assert not record(loop, aclient, cid, "legacy-bid").counted
    assert record(loop, aclient, cid, "new-bid", "1.00").counted  # 1000 under the new names
    redis_client.incrby(f"spend:pending:{cid}", 500)  # an old bidder still running
    redis_client.incrby(f"spend:total:{cid}", 500)

    result = services.spend_flush()
    assert result.micros == 2000 + 3000 + 1000 + 500
    assert spent(campaign) == Decimal("0.006500")
    assert redis_client.get(f"spend:pending:{cid}") is None and redis_client.hlen("spend:inflight") == 0
    services.offer_snapshot_refresh()  # folds the legacy total: the running total is exact
    assert int(redis_client.get(wins.spend_total_key(cid))) == 5000 + 1000 + 500
    assert redis_client.get(f"spend:total:{cid}") is None
    assert services.spend_flush().micros == 0
    assert SpendFlush.objects.filter(campaign_id=cid).count() == 2  # the old batch and the new one


def test_cluster_urls_name_their_nodes_and_database_zero_only():
    nodes, options = redis_store.cluster_nodes("redis+cluster://:s3cret@10.0.0.1:7001,10.0.0.2:7002/0")
    assert nodes == [("10.0.0.1", 7001), ("10.0.0.2", 7002)] and options == {"password": "s3cret"}
    assert redis_store.cluster_nodes("rediss+cluster://u:p@h:1")[1] == {"username": "u", "password": "p", "ssl": True}
    with pytest.raises(ValueError, match="database 0 only"):
        redis_store.cluster_nodes("redis+cluster://h:1/3")
    assert redis_store.is_cluster_url("redis+cluster://h:1") and not redis_store.is_cluster_url("redis://h:1/0")


def test_migrate_cluster_freq_folds_legacy_sets_on_a_cluster_and_leaves_a_single_redis_alone(redis_client):
    from io import StringIO

    from django.core.management import call_command

    from apps.bidding.cache import legacy_freq_key

    redis_client.zadd(legacy_freq_key("u-cmd"), {"old-bid:7": 1_000_000.0})
    redis_client.expire(legacy_freq_key("u-cmd"), 3600)
    out = StringIO()
    call_command("migrate_cluster_freq", stdout=out)
    if redis_store.is_cluster(redis_client):
        assert "folded into the profile's slot: 1" in out.getvalue()
        assert not redis_client.exists(legacy_freq_key("u-cmd"))
        assert redis_client.zrange(user_freq(redis_client, "u-cmd"), 0, -1, withscores=True) == [(b"old-bid:7", 1e6)]
    else:  # freq:<user> is today's name there
        assert "nothing to migrate" in out.getvalue()
        assert user_freq(redis_client, "u-cmd") == legacy_freq_key("u-cmd")
        assert redis_client.zrange(legacy_freq_key("u-cmd"), 0, -1, withscores=True) == [(b"old-bid:7", 1e6)]
