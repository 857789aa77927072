"""The decision path's store work: one durable INSERT per decision (no ORM save, no transaction of
its own, no ``synchronous_commit = off``), the default candidates cached per channel and dropped
when an offer changes (here or in another process), the wait time and the loyalty tier it uses."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.core import redis as redis_store
from apps.rl import candidates, services
from apps.rl.models import Decision
from tests.omnichannel.helpers import make_offer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_lists():
    candidates.clear()
    yield
    candidates.clear()


def decide(**kw):
    kw.setdefault("context", {"tier": "gold"})
    return services.rl_decide(user_id=kw.pop("user", "u-path"), channel=kw.pop("channel", "web"), **kw)


def live_campaign(*names):
    campaign, first = make_offer(channels=("web",), name=names[0])
    offers = [first] + [type(first).objects.create(
        campaign=campaign, name=name, creative_markup="<div/>", width=300, height=250,
        landing_url="https://coffee.example.com/", advertiser_domain="coffee.example.com", category="IAB8",
        max_bid_cpm=first.max_bid_cpm) for name in names[1:]]
    type(campaign).objects.filter(pk=campaign.pk).update(status="live")  # the campaigns slice owns the lifecycle
    return campaign, offers


def another_offer_behind_the_signals(campaign, template):
    """An offer written as another process would be seen from here: no signal in this process."""
    [offer] = type(template).objects.bulk_create([type(template)(
        campaign=campaign, name="Quiet offer", creative_markup="<div/>", width=300, height=250,
        landing_url="https://coffee.example.com/", advertiser_domain="coffee.example.com", category="IAB8",
        max_bid_cpm=template.max_bid_cpm)])
    return str(offer.pk)


def test_a_decision_is_one_durable_insert_and_nothing_else_in_postgres():
    decide(candidates=["a", "b", "c"])  # the posteriors' Redis copies are filled on this one
    assert not connection.in_atomic_block
    with CaptureQueriesContext(connection) as queries:
        result = decide(candidates=["a", "b", "c"])
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 1 and sql[0].startswith("INSERT INTO rl_decision"), sql
    assert not any("synchronous_commit" in s.lower() for s in sql)
    with connection.cursor() as cursor:  # the commit waited for the WAL flush: nothing turned it off
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] in ("on", "remote_apply", "remote_write", "local")
    row = Decision.objects.get(decision_id=result.decision_id)
    assert (row.offer_id, row.status, row.candidates, row.propensity, row.source) == (
        result.offer_id, "open", ["a", "b", "c"], result.propensity, "thompson")
    assert row.probabilities == pytest.approx([result.probabilities.get(o, 0.0) for o in ["a", "b", "c"]])
    assert row.context == {"tier": "gold"} and row.reward_value is None and row.closed_at is None


def test_inside_the_callers_transaction_the_decision_commits_or_rolls_back_with_it():
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            gone = decide(candidates=["a", "b"])
            raise RuntimeError("the caller failed after deciding")
    assert not Decision.objects.filter(decision_id=gone.decision_id).exists()
    with transaction.atomic():
        kept = decide(candidates=["a", "b"])
    assert Decision.objects.filter(decision_id=kept.decision_id).exists()


def test_the_reward_wait_time_comes_from_the_setting(settings):
    settings.RL_REWARD_WAIT_SECONDS = 90
    result = decide(candidates=["a", "b"])
    row = Decision.objects.get(decision_id=result.decision_id)
    assert row.expires_at - row.created_at == timedelta(seconds=90)


def test_the_tier_is_the_members_loyalty_tier_unless_the_context_gives_one():
    from django.utils import timezone

    from apps.loyalty.models import LoyaltyAccount
    from apps.loyalty.rules import period_end

    start = timezone.now() - timedelta(days=3)
    LoyaltyAccount.objects.create(user_id="u-gold", tier="gold", qualifying_stars=0, qualifying_period_start=start,
                                  qualifying_period_end=period_end(start))
    assert decide(user="u-gold", context={}, candidates=["a"]).segment == "web:gold"
    assert decide(user="u-gold", context={"tier": "reserve"}, candidates=["a"]).segment == "web:reserve"
    assert decide(user="u-nobody", context={}, candidates=["a"]).segment == "web:green"


def test_the_live_offers_are_read_once_then_served_from_the_process():
    campaign, offers = live_campaign("Latte", "Mocha")
    ids = sorted(str(o.pk) for o in offers)
    first = decide()
    assert sorted(first.candidates) == ids and first.campaign_id == str(campaign.pk)
    with CaptureQueriesContext(connection) as queries:
        second = decide()
    assert sorted(second.candidates) == ids and second.campaign_id == str(campaign.pk)
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 1 and sql[0].startswith("INSERT INTO rl_decision"), sql


def test_an_offer_saved_here_is_a_candidate_at_the_next_decision():
    campaign, offers = live_campaign("Latte")
    assert decide().candidates == [str(offers[0].pk)]
    added = type(offers[0]).objects.create(
        campaign=campaign, name="Mocha", creative_markup="<div/>", width=300, height=250,
        landing_url="https://coffee.example.com/", advertiser_domain="coffee.example.com", category="IAB8",
        max_bid_cpm=offers[0].max_bid_cpm)
    assert sorted(decide().candidates) == sorted([str(offers[0].pk), str(added.pk)])
    offers[0].delete()
    assert decide().candidates == [str(added.pk)]


def test_a_change_made_by_another_process_is_seen_through_the_generation_in_redis():
    campaign, offers = live_campaign("Latte")
    assert decide().candidates == [str(offers[0].pk)]
    quiet = another_offer_behind_the_signals(campaign, offers[0])
    assert decide().candidates == [str(offers[0].pk)]  # this process still holds its list...
    redis_store.client().set(candidates.GENERATION_KEY, uuid.uuid4().hex)  # ...until the other one's commit
    assert sorted(decide().candidates) == sorted([str(offers[0].pk), quiet])


def test_a_flushed_redis_never_vouches_for_an_old_list(redis_client):
    campaign, offers = live_campaign("Latte")
    assert decide().candidates == [str(offers[0].pk)]
    quiet = another_offer_behind_the_signals(campaign, offers[0])
    redis_client.flushdb()
    assert sorted(decide().candidates) == sorted([str(offers[0].pk), quiet])


def test_without_a_cache_every_decision_reads_the_live_offers(settings):
    settings.RL_CANDIDATE_CACHE_SECONDS = 0
    campaign, offers = live_campaign("Latte")
    assert decide().candidates == [str(offers[0].pk)]
    quiet = another_offer_behind_the_signals(campaign, offers[0])
    assert sorted(decide().candidates) == sorted([str(offers[0].pk), quiet])


def test_a_list_read_inside_a_transaction_is_not_kept():
    campaign, offers = live_campaign("Latte")
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            ghost = type(offers[0]).objects.create(
                campaign=campaign, name="Ghost", creative_markup="<div/>", width=300, height=250,
                landing_url="https://coffee.example.com/", advertiser_domain="coffee.example.com", category="IAB8",
                max_bid_cpm=offers[0].max_bid_cpm)
            assert str(ghost.pk) in decide().candidates
            raise RuntimeError("rolled back")
    assert decide().candidates == [str(offers[0].pk)]


def test_sync_catalog_pushes_the_live_offers_with_their_features(settings):
    from apps.rl import offerfit
    from tests.support.http_server import LocalHTTPServer

    campaign, offers = live_campaign("Latte", "Mocha")
    with LocalHTTPServer(handler=lambda recorded: (204, {}, None)) as server:
        settings.OFFERFIT_API_URL, settings.OFFERFIT_API_KEY = server.url, "k"
        assert services.rl_sync_catalog() == 2
        body = server.requests[-1].json()
    assert server.requests[-1].path == offerfit.CATALOG_PATH
    assert sorted(a["id"] for a in body["actions"]) == sorted(str(o.pk) for o in offers)
    assert body["actions"][0]["features"][0]["campaign_id"] == str(campaign.pk)
    assert {"category", "format", "max_bid_cpm", "observed_ctr"} <= set(body["actions"][0]["features"][0])
