"""The Django side of bidding: the offer snapshot built from real campaigns (and reaching a running
bidder within a second of a change), and the exactly-once spend flush."""
from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.bidding import services, wins
from apps.bidding.bidder import Bidder
from apps.bidding.models import SpendFlush
from apps.bidding.snapshot import SNAPSHOT_KEY, decode_blob
from apps.bidding.tokens import WinToken, win_token
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core.roles import Role
from tests.bidding.helpers import SECRET, bid_config, bid_request
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.django_db
_seq = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(role: str):
    user = get_user_model().objects.create_user(username=f"bid-{role.lower()}-{next(_seq)}", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def people(db):
    return make_user(Role.MARKETER), make_user(Role.APPROVER)


def launch(people, *, channels=("display",), budget="100.00", offers=None, countries=("US",), **campaign):
    """A live campaign built through the campaigns services, as a marketer would."""
    marketer, approver = people
    now = timezone.now()
    c = campaign_services.campaign_create(
        actor=marketer, name=campaign.pop("name", f"campaign {next(_seq)}"), advertiser="Acme",
        budget=Decimal(budget), channels=list(channels), start_at=now - timedelta(minutes=5),
        end_at=now + timedelta(days=2), target_countries=list(countries), **campaign)
    for spec in offers or [{}]:
        values = dict(name="o", creative_markup="<img src='https://cdn.example.com/a.png'>", width=300, height=250,
                      landing_url="https://shop.example.com/a", advertiser_domain="shop.example.com",
                      category="IAB22-1", max_bid_cpm=Decimal("4.0000"), priority=5, observed_ctr=0.02)
        values.update(spec)
        campaign_services.offer_create(campaign_id=c.pk, actor=marketer, **values)
    campaign_services.campaign_submit(campaign_id=c.pk, actor=marketer)
    campaign_services.campaign_approve(campaign_id=c.pk, actor=approver)
    campaign_services.campaign_go_live(campaign_id=c.pk, actor=marketer)
    return c


def stored_snapshot(redis_client):
    return decode_blob(redis_client.hget(SNAPSHOT_KEY, "blob"))


def test_snapshot_holds_the_offers_of_live_display_campaigns_only(people, redis_client):
    live = launch(people, offers=[{"width": 300, "height": 250, "max_bid_cpm": Decimal("4.5000"), "priority": 9},
                                  {"width": 728, "height": 90, "category": "IAB8-5"}],
                  target_device_types=["mobile"], target_segments=[12])
    launch(people, channels=("email",))  # not an OpenRTB channel
    paused = launch(people)
    campaign_services.campaign_pause(campaign_id=paused.pk, actor=people[0])

    assert services.offer_snapshot_refresh() is True
    blob = stored_snapshot(redis_client)
    assert {row.campaign_id for row in blob.offers} == {live.pk}
    first = blob.offers[0]
    assert (first.width, first.height, first.max_bid_cpm, first.priority) == (300, 250, 4.5, 9)
    assert first.countries == ["USA"] and first.device_types == ["mobile"] and first.segments == [12]
    assert first.budget_micros == 100_000_000 and first.format == "banner"
    assert len(blob.features) == len(blob.offers) * 64 * 4  # float32 offer features, precomputed once
    assert int(redis_client.get(wins.spend_total_key(live.pk))) == 0


def test_an_older_refresh_never_overwrites_a_newer_snapshot(people, redis_client):
    from apps.bidding.snapshot import next_version, publish_snapshot

    launch(people)
    early = next_version(redis_client)  # a refresh that read the database first...
    assert services.offer_snapshot_refresh() is True  # ...loses to one that started later
    assert publish_snapshot(redis_client, version=early, offers=[]) is False
    assert len(stored_snapshot(redis_client).offers) == 1


def test_refresh_with_redis_down_is_logged_not_raised(people, settings, monkeypatch):
    import redis

    launch(people)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert services.offer_snapshot_refresh(client=dead) is False


def _wait(predicate):
    """Seen by the bidder (its poll is 30 s: only the announcement can do it within the 5 s)."""
    return async_wait_until(predicate, timeout=5, message="the change seen by the bidder")


@pytest.fixture
def loop():
    """A private event loop: these tests are sync so the ORM stays on the test's own connection and
    transaction (Django binds connections to the async context), and drive asyncio code through it."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_campaign_changes_reach_a_running_bidder_within_a_second(people, redis_client, runtime, loop,
                                                                 django_capture_on_commit_callbacks):
    run = loop.run_until_complete
    services.offer_snapshot_refresh()
    bidder = Bidder(bid_config(snapshot_poll_seconds=30), inference=runtime)  # polling too slow to help
    run(bidder.start())
    try:
        async def adids():
            outcome = await bidder.processor.process(bid_request())
            return [b.adid for b in outcome.bids]

        def becomes(expected):
            async def check():
                return await adids() == expected
            return check

        assert run(adids()) == []
        # Goes live: the campaigns slice calls offer_snapshot_refresh() after commit.
        with django_capture_on_commit_callbacks(execute=True):
            campaign = launch(people)
        offer = campaign_selectors.offer_list(campaign_id=campaign.pk).get()
        assert run(_wait(becomes([str(offer.pk)])))

        # An offer edit (max bid) changes the price.
        before = run(bidder.processor.process(bid_request())).bids[0].price
        with django_capture_on_commit_callbacks(execute=True):
            campaign_services.offer_update(offer_id=offer.pk, actor=people[0], max_bid_cpm=Decimal("2.0000"))

        async def cheaper():
            outcome = await bidder.processor.process(bid_request())
            return bool(outcome.bids) and outcome.bids[0].price < before
        assert run(_wait(cheaper))

        # Paused: no more bids, without a restart.
        with django_capture_on_commit_callbacks(execute=True):
            campaign_services.campaign_pause(campaign_id=campaign.pk, actor=people[0])
        assert run(_wait(becomes([])))

        # Resumed: back.
        with django_capture_on_commit_callbacks(execute=True):
            campaign_services.campaign_resume(campaign_id=campaign.pk, actor=people[0])
        assert run(_wait(becomes([str(offer.pk)])))
    finally:
        run(bidder.stop())


# --- spend --------------------------------------------------------------------------------------

class Wins:
    """Records win notices through the real win handler (``apps.bidding.wins.record_win``)."""

    def __init__(self, loop):
        from apps.bidding.bidder import bid_redis
        from config import env

        self.loop = loop
        self.client = bid_redis(env.env_str("REDIS_URL", env.REDIS_URL))

    def __call__(self, campaign_id: int, bid_id: str, price: str, *, budget_micros=None):
        token = win_token(SECRET, WinToken(bid_id, "req", "1", campaign_id, 1, "user-1", 50_000_000, int(time.time())))
        return self.loop.run_until_complete(wins.record_win(
            self.client, secret=SECRET, token=token, price=price, now=time.time(), max_age=86400,
            budget_for=lambda cid: budget_micros))

    def close(self):
        self.loop.run_until_complete(self.client.aclose())


@pytest.fixture
def win(redis_client, loop):
    recorder = Wins(loop)
    yield recorder
    recorder.close()


def test_spend_is_flushed_to_postgres_exactly_once(people, redis_client, win):
    campaign = launch(people, budget="100.00")
    services.offer_snapshot_refresh()
    win(campaign.pk, "b1", "2.50")   # 2500 micro-dollars
    win(campaign.pk, "b2", "1.25")   # 1250
    assert not win(campaign.pk, "b2", "1.25").counted  # duplicate notice

    result = services.spend_flush()
    assert (result.batches, result.micros, result.campaigns) == (1, 3750, {campaign.pk})
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).spent == Decimal("0.003750")
    assert services.spend_flush().batches == 0  # nothing new: nothing added
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).spent == Decimal("0.003750")

    win(campaign.pk, "b3", "4.00")
    services.spend_flush()
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).spent == Decimal("0.007750")
    assert SpendFlush.objects.filter(campaign_id=campaign.pk).count() == 2
    assert redis_client.hlen(wins.spend_inflight_key(campaign.pk)) == 0


def test_spend_flush_survives_a_crash_at_any_point(people, redis_client, win):
    campaign = launch(people)
    services.offer_snapshot_refresh()
    win(campaign.pk, "c1", "3.00")
    # Crash after claiming (Redis moved 3000 to in-flight) but before Postgres: the next run applies it.
    redis_client.eval(services._CLAIM_LUA, 2, wins.spend_pending_key(campaign.pk),
                      wins.spend_inflight_key(campaign.pk), "batch-a")
    assert int(redis_client.get(wins.spend_pending_key(campaign.pk))) == 0
    # Crash after the Postgres commit but before the in-flight entry was removed: not applied twice.
    win(campaign.pk, "c2", "1.00")
    redis_client.eval(services._CLAIM_LUA, 2, wins.spend_pending_key(campaign.pk),
                      wins.spend_inflight_key(campaign.pk), "batch-b")
    assert services._apply_batch("batch-b", campaign.pk, 1000) is True

    services.spend_flush()
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).spent == Decimal("0.004000")
    assert redis_client.hlen(wins.spend_inflight_key(campaign.pk)) == 0
    services.spend_flush()
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).spent == Decimal("0.004000")


def test_spent_budget_completes_the_campaign_and_removes_it_from_the_snapshot(
        people, redis_client, win, django_capture_on_commit_callbacks):
    campaign = launch(people, budget="0.01")  # $0.01 = 10,000 micro-dollars
    services.offer_snapshot_refresh()
    result = win(campaign.pk, "d1", "11.00", budget_micros=10_000)  # 11,000 micro-dollars
    assert result.counted and result.budget_exhausted
    assert redis_client.smembers("bidding:exhausted") == {str(campaign.pk).encode()}
    with django_capture_on_commit_callbacks(execute=True):
        flushed = services.spend_flush()
    assert flushed.completed == [campaign.pk]
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).status == "completed"
    assert stored_snapshot(redis_client).offers == []


def test_demo_seed_gives_a_newcomer_a_bid(db, redis_client):
    from apps.bidding import demo

    demo.seed()
    demo.seed()  # idempotent
    blob = stored_snapshot(redis_client)
    sizes = {(row.width, row.height) for row in blob.offers}
    assert {(300, 250), (320, 50), (728, 90)} <= sizes
    assert all(row.countries == ["USA"] for row in blob.offers)
    assert campaign_selectors.campaign_list(search=demo.CAMPAIGN_NAME).count() == 1
