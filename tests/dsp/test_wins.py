"""Win notices, spend per platform and hour, budgets and the nurl/burl/lurl notices (web process)."""
from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest

from apps.core.roles import Role
from apps.dsp import platforms as store
from apps.dsp import services
from apps.dsp.models import Platform, PlatformChange, PlatformHourSpend
from tests.dsp.conftest import dsp_stats, run_fanout
from tests.dsp.requests import site_request
from tests.factories import make_user, token_client
from tests.support.threads import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def make_platforms(base: str, **budget):
    rows = [
        Platform(name="ttd", kind="ttd", endpoint_url=f"{base}/bid/ttd/bid/bidder/{{supply_id}}?price=2.0",
                 params={"publisher_id": "p", "supply_source_id": "s"}),
        Platform(name="amazon", kind="amazon", endpoint_url=f"{base}/bid/amazon?price=1.5",
                 bid_adjustment=Decimal("0.5"), hourly_budget=budget.get("amazon", Decimal("0"))),
        Platform(name="dv360", kind="dv360", endpoint_url=f"{base}/bid/dv360?price=0.9&latency_ms=2",
                 bid_adjustment=Decimal("2"), hourly_budget=budget.get("dv360", Decimal("0"))),
    ]
    for row in rows:
        services.platform_save(platform=row)
    return {row.name: row for row in rows}


@pytest.fixture
def client():
    return token_client(make_user(Role.INTEGRATION))


def win(client, **body):
    return client.post("/v1/dsp/win", body, format="json")


def test_a_win_counts_once_fires_nurl_burl_and_the_losers_lurl(client, local_dsp, redis_client, eager_celery):
    make_platforms(local_dsp)
    response = run_fanout(None, site_request("auc-1"))
    # ttd 2.0 x 1 beats dv360 0.9 x 2 = 1.8 and amazon 1.5 x 0.5
    assert response["seatbid"][0]["seat"] == "ttd"
    winner = response["seatbid"][0]["bid"][0]
    before = len(dsp_stats(local_dsp)["notices"])
    first = win(client, platform="ttd", auction_id="auc-1", bid_id=winner["id"], imp_id="1", win_price="1.80")
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "counted" and first.json()["wins"] == 1
    assert Decimal(first.json()["spend"]) == Decimal("0.0018")  # 1.80 CPM = 0.0018 per impression
    again = win(client, platform="ttd", auction_id="auc-1", bid_id=winner["id"], imp_id="1", win_price="1.80")
    assert again.json()["status"] == "duplicate" and again.json()["notices"] == 0
    notices = dsp_stats(local_dsp)["notices"][before:]
    by = {(n["kind"], n["notice"]): n["query"] for n in notices}
    assert set(by) == {("ttd", "win"), ("ttd", "bill"), ("amazon", "loss"), ("dv360", "loss")}
    # ttd's adapter had put its bid price into nurl/burl itself (as Prebid Server's does)
    assert by[("ttd", "win")]["price"] == "2" and by[("ttd", "win")]["auction"] == "auc-1"
    assert by[("ttd", "bill")]["cur"] == "USD"
    # losers: AUCTION_LOSS 102 and the clearing price in their own terms (win price / their factor)
    assert by[("amazon", "loss")] == {"auction": "auc-1", "loss": "102", "price": "3.6"}
    assert by[("dv360", "loss")] == {"auction": "auc-1", "loss": "102", "price": "0.9"}


def test_win_price_is_divided_by_the_adjustment_factor_in_nurl_and_spend(client, local_dsp, eager_celery):
    rows = make_platforms(local_dsp)
    Platform.objects.filter(name="ttd").update(enabled=False)
    response = run_fanout(None, site_request("auc-2"))
    assert response["seatbid"][0]["seat"] == "dv360"  # 0.9 x 2 = 1.8 against amazon 1.5 x 0.5
    bid = response["seatbid"][0]["bid"][0]
    assert bid["price"] == 1.8
    before = len(dsp_stats(local_dsp)["notices"])
    result = win(client, platform="dv360", auction_id="auc-2", bid_id=bid["id"], imp_id="1", win_price="1.6").json()
    assert Decimal(result["spend"]) == Decimal("0.0008")  # 1.6 / 2 = 0.8 CPM
    notices = {(n["kind"], n["notice"]): n["query"] for n in dsp_stats(local_dsp)["notices"][before:]}
    assert notices[("dv360", "win")]["price"] == "0.8" and notices[("dv360", "win")]["bid"] == bid["id"]
    assert rows["dv360"].pk


def test_fifty_concurrent_wins_for_one_bid_count_once_and_spend_is_exact(client, local_dsp, eager_celery):
    make_platforms(local_dsp)
    response = run_fanout(None, site_request("auc-race", imps=3))
    bids = [b for s in response["seatbid"] for b in s["bid"]]
    calls = [lambda b=bids[i % 3]: services.dsp_win_record(platform="ttd", auction_id="auc-race", bid_id=b["id"],
                                                           imp_id=b["impid"], win_price=Decimal("1.25"))
             for i in range(50)]
    results = run_together(calls)
    assert sorted(r.status for r in results).count("counted") == 3
    ttd = Platform.objects.get(name="ttd")
    hour = store.hour_of(time.time())
    from apps.dsp import spend

    assert spend.hour_totals(platform_id=ttd.pk, hour=hour) == (3, 3 * 1250)
    assert services.dsp_spend_flush() >= 1
    row = PlatformHourSpend.objects.get(platform=ttd)
    assert (row.wins, row.spend_micros) == (3, 3750)
    assert services.dsp_spend_flush() == 0  # nothing changed since


def test_a_platform_over_its_hourly_budget_is_skipped_until_the_next_hour(client, local_dsp, eager_celery):
    make_platforms(local_dsp, amazon=Decimal("0.01"))
    Platform.objects.filter(name__in=["ttd", "dv360"]).update(enabled=False)
    Platform.objects.filter(name="amazon").update(endpoint_url=f"{local_dsp}/bid/amazon?price=20")
    response = run_fanout(None, site_request("auc-b1"))
    bid = response["seatbid"][0]["bid"][0]
    result = win(client, platform="amazon", auction_id="auc-b1", bid_id=bid["id"], imp_id="1", win_price="7.5").json()
    assert result["over_budget"] is True  # 7.5 / 0.5 = 15 CPM = 0.015 per impression >= 0.01
    response = run_fanout(None, site_request("auc-b2"))
    assert response["ext"]["dsp"]["amazon"] == {"outcome": "skipped", "reason": "budget"}
    status = client.get("/v1/dsp/status").json()
    amazon = next(p for p in status if p["platform"] == "amazon")
    assert amazon["budget"]["over_budget"] is True and Decimal(amazon["budget"]["spend"]) == Decimal("0.015")
    # the next hour starts afresh
    from apps.dsp import platforms

    assert not redis_client_exists(platforms.over_key(Platform.objects.get(name="amazon").pk, store.hour_of(time.time()) + 1))


def redis_client_exists(key: str) -> bool:
    from apps.core import redis as redis_store

    return bool(redis_store.client().exists(key))


def test_win_for_an_unknown_bid_or_a_price_above_it_is_refused(client, local_dsp, eager_celery):
    make_platforms(local_dsp)
    response = run_fanout(None, site_request("auc-bad"))
    bid = response["seatbid"][0]["bid"][0]
    assert win(client, platform="nope", auction_id="auc-bad", bid_id=bid["id"], imp_id="1", win_price="1").status_code == 404
    r = win(client, platform="ttd", auction_id="unknown", bid_id=bid["id"], imp_id="1", win_price="1")
    assert r.status_code == 404 and r.json()["field"] == "auction_id"
    r = win(client, platform="ttd", auction_id="auc-bad", bid_id="other", imp_id="1", win_price="1")
    assert r.status_code == 404 and r.json()["field"] == "bid_id"
    r = win(client, platform="ttd", auction_id="auc-bad", bid_id=bid["id"], imp_id="1", win_price="99")
    assert r.status_code == 422 and r.json()["field"] == "win_price"
    r = win(client, platform="ttd", auction_id="auc-bad", bid_id=bid["id"], imp_id="1", win_price="-1")
    assert r.status_code == 400 and r.json()["field"] == "win_price"
    assert services.dsp_spend_flush() == 0  # none of them counted anything


def test_the_api_needs_the_integration_role(local_dsp):
    marketer = token_client(make_user(Role.MARKETER))
    assert marketer.get("/v1/dsp/status").status_code == 403
    assert marketer.post("/v1/dsp/win", {}, format="json").status_code == 403
    from rest_framework.test import APIClient

    assert APIClient().get("/v1/dsp/spend").status_code == 401


def test_spend_endpoint_lists_hours_with_average_price(client, local_dsp, eager_celery):
    make_platforms(local_dsp)
    response = run_fanout(None, site_request("auc-s"))
    bid = response["seatbid"][0]["bid"][0]
    win(client, platform="ttd", auction_id="auc-s", bid_id=bid["id"], imp_id="1", win_price="2.0")
    rows = client.get("/v1/dsp/spend", {"platform": "ttd"}).json()
    assert len(rows) == 1 and rows[0]["wins"] == 1
    assert Decimal(rows[0]["spend"]) == Decimal("0.002") and Decimal(rows[0]["average_win_price"]) == Decimal("2")
    bad = client.get("/v1/dsp/spend", {"from": "yesterday"})
    assert bad.status_code == 400 and bad.json()["field"] == "from"


def test_platform_edits_are_audited_without_secrets_and_published(local_dsp, redis_client):
    row = Platform(name="meta", kind="meta", endpoint_url=f"{local_dsp}/bid/meta", credentials={"app_secret": "s3cret"})
    services.platform_save(platform=row)
    row.timeout_ms = 150
    row.credentials = {"app_secret": "other"}
    services.platform_save(platform=row)
    change = PlatformChange.objects.filter(platform=row).order_by("id").last()
    assert change.changes == {"timeout_ms": [200, 150], "credentials": ["set", "set"]}
    assert "s3cret" not in str(list(PlatformChange.objects.values_list("changes", flat=True)))
    version, platforms = store.decode(redis_client.hget(store.PLATFORMS_KEY, "blob"))
    assert [(p.name, p.timeout_ms) for p in platforms] == [("meta", 150)]
    assert httpx  # the local servers answered over real HTTP above


def test_a_deleted_platform_leaves_its_audit_trail(local_dsp):
    row = services.platform_save(platform=Platform(name="gone", kind="openrtb", endpoint_url=f"{local_dsp}/bid/openrtb"))
    services.platform_delete(platform=row)
    actions = list(PlatformChange.objects.filter(platform_name="gone").order_by("id").values_list("action", "platform"))
    assert actions == [("create", None), ("delete", None)]


def test_dsp_win_keys_share_the_platform_slot():
    from redis.crc import key_slot

    from apps.dsp import platforms

    keys = [platforms.win_key(7, "b"), platforms.spend_key(7, 500), platforms.over_key(7, 500)]
    assert len({key_slot(k.encode()) for k in keys}) == 1


@pytest.mark.single_redis  # the legacy names only ever existed on a single Redis
def test_what_a_pre_cluster_version_counted_is_folded_in_and_never_counted_twice(redis_client):
    from apps.dsp import platforms, spend

    hour = store.hour_of(time.time())
    redis_client.set(platforms.legacy_win_key(3, "old-bid"), hour)
    redis_client.hset(platforms.legacy_spend_key(3, hour), mapping={"wins": 2, "spend_micros": 5000})
    assert spend.hour_totals(platform_id=3, hour=hour) == (2, 5000)  # before any new win
    again = spend.count_win(platform_id=3, bid_id="old-bid", hour=hour, spend_micros=100, budget_micros=0)
    assert not again.counted and (again.wins, again.spend_micros) == (2, 5000)
    new = spend.count_win(platform_id=3, bid_id="new-bid", hour=hour, spend_micros=1000, budget_micros=6000)
    assert new.counted and (new.wins, new.spend_micros, new.over_budget) == (3, 6000, True)
    assert not redis_client.exists(platforms.legacy_spend_key(3, hour))
    assert spend.hour_totals(platform_id=3, hour=hour) == (3, 6000)
