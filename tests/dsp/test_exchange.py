"""The fan-out against local DSP servers speaking each platform's format."""
from __future__ import annotations

import time

import pytest

from tests.dsp.conftest import META_SECRET, dsp_stats, platform
from tests.dsp.requests import app_request, decoded, site_request
from tests.support.wait import async_pause, pause


def four(base: str, **latency) -> list:
    q = lambda name: f"?latency_ms={latency.get(name, 5)}"  # noqa: E731
    return [
        platform(1, "ttd", "ttd", f"{base}/bid/ttd/bid/bidder/{{supply_id}}{q('ttd')}"),
        platform(2, "meta", "meta", f"{base}/bid/meta/placementbid.ortb{q('meta')}"),
        platform(3, "dv360", "dv360", f"{base}/bid/dv360{q('dv360')}"),
        platform(4, "amazon", "amazon", f"{base}/bid/amazon{q('amazon')}"),
    ]


async def fanout(exchange, body):
    started = time.perf_counter()
    response = await exchange.fanout(body, decoded(body), started=started)
    return response, (time.perf_counter() - started) * 1000


async def test_every_platform_is_called_and_the_highest_adjusted_bid_wins(make_exchange, local_dsp):
    exchange = await make_exchange(four(local_dsp))
    body = site_request()
    response, _ = await fanout(exchange, body)
    dsp = response["ext"]["dsp"]
    # meta takes apps only: skipped as ineligible for a site request
    assert dsp["meta"] == {"outcome": "skipped", "reason": "ineligible"}
    assert {k: v["outcome"] for k, v in dsp.items() if k != "meta"} == {"ttd": "bid", "dv360": "bid", "amazon": "bid"}
    assert dsp["ttd"]["price"] == 2.1 and dsp["dv360"]["price"] == 1.9 and dsp["amazon"]["price"] == 1.7
    assert response["cur"] == "USD"
    assert [s["seat"] for s in response["seatbid"]] == ["ttd"]
    bid = response["seatbid"][0]["bid"][0]
    assert bid["impid"] == "1" and bid["price"] == 2.1 and bid["crid"] == "ttd-creative-0"
    assert "nurl" not in bid and "burl" not in bid and "lurl" not in bid
    # adm: TTD's adapter substituted the price itself (as PBS does); ours filled in the auction id
    assert 'data-price="2.1"' in bid["adm"] and 'data-auction="req-1"' in bid["adm"]


async def test_adapters_forward_the_original_json_with_their_changes(make_exchange, local_dsp):
    exchange = await make_exchange(four(local_dsp))
    await fanout(exchange, site_request("req-orig", tmax=250))
    last = dsp_stats(local_dsp)["last"]
    ttd = last["ttd"]
    assert ttd["path"] == "/bid/ttd/bid/bidder/supply-1"
    assert ttd["body"]["site"]["publisher"]["id"] == "pub-ttd"
    assert ttd["body"]["imp"][0]["banner"] == {"format": [{"w": 300, "h": 250}], "w": 300, "h": 250}
    assert ttd["headers"]["content-type"] == "application/json;charset=utf-8"
    for kind in ("ttd", "dv360", "amazon"):
        sent = last[kind]["body"]
        # what the decoder drops reaches the DSPs: ext, source.schain, regs.ext
        assert sent["source"]["schain"]["nodes"][0]["asi"] == "ex.com"
        assert sent["regs"] == {"ext": {"gdpr": 0}}
        assert 0 < sent["tmax"] <= 240  # what is left of 250 ms less the 10 ms buffer
        assert last[kind]["headers"]["x-openrtb-version"] == "2.6"
    assert last["dv360"]["body"]["imp"][0]["ext"]["billing_id"] == ["1234567"]


async def test_meta_gets_one_signed_request_per_app_imp(make_exchange, local_dsp):
    exchange = await make_exchange(four(local_dsp))
    response, _ = await fanout(exchange, app_request("req-app-1", imps=2))
    dsp = response["ext"]["dsp"]
    assert dsp["meta"]["outcome"] == "bid"
    sent = dsp_stats(local_dsp)["last"]["meta"]
    assert sent["headers"]["x-fb-pool-routing-token"] == "abc"
    assert sent["body"]["id"] == sent["body"]["imp"][0]["id"]
    assert sent["body"]["imp"][0]["tagid"] == "123_456" and sent["body"]["imp"][0]["banner"]["w"] == -1
    assert sent["body"]["app"]["publisher"] == {"id": "123"}
    assert "ext" not in sent["body"]["imp"][0]


async def test_meta_with_a_wrong_secret_is_an_error_with_its_reason(make_exchange, local_dsp):
    bad = platform(2, "meta", "meta", f"{local_dsp}/bid/meta/placementbid.ortb", credentials={"app_secret": "wrong"})
    exchange = await make_exchange([bad])
    response, _ = await fanout(exchange, app_request())
    assert response["ext"]["dsp"]["meta"]["outcome"] == "error"
    assert response["ext"]["dsp"]["meta"]["reason"] == "http_400"
    assert response["seatbid"] == []
    assert META_SECRET != "wrong"


@pytest.mark.parametrize("behaviour, outcome, reason", [
    ("nobid", "no_bid", None), ("nbr", "no_bid", None), ("error", "error", "http_500"),
    ("invalid", "error", "invalid_json"), ("gzip", "bid", None),
])
async def test_each_answer_kind_is_its_own_outcome(make_exchange, local_dsp, behaviour, outcome, reason):
    exchange = await make_exchange([
        platform(1, "fast", "openrtb", f"{local_dsp}/bid/openrtb?latency_ms=2&price=0.9"),
        platform(2, "other", "amazon", f"{local_dsp}/{behaviour}/amazon?latency_ms=2&price=1.1"),
    ])
    response, _ = await fanout(exchange, site_request(f"req-{behaviour}"))
    other = response["ext"]["dsp"]["other"]
    assert other["outcome"] == outcome and other.get("reason") == reason
    # one platform's failure changes nothing for the other
    assert response["ext"]["dsp"]["fast"]["outcome"] == "bid"
    assert response["seatbid"][0]["seat"] == ("other" if outcome == "bid" else "fast")


async def test_total_time_is_the_slowest_within_the_deadline_not_the_sum(make_exchange, local_dsp):
    exchange = await make_exchange(four(local_dsp, ttd=60, dv360=60, amazon=60))
    await fanout(exchange, site_request("warm"))  # open the keep-alive connections
    response, elapsed = await fanout(exchange, site_request("req-parallel", tmax=1000))
    assert all(response["ext"]["dsp"][n]["outcome"] == "bid" for n in ("ttd", "dv360", "amazon"))
    assert 60 <= elapsed < 170  # three 60 ms platforms: ~60 ms at once, 180 ms one after another


async def test_the_deadline_holds_with_a_late_platform(make_exchange, local_dsp):
    exchange = await make_exchange([
        platform(1, "fast", "openrtb", f"{local_dsp}/bid/openrtb?latency_ms=5"),
        platform(2, "late", "amazon", f"{local_dsp}/late/amazon?late_ms=2000", timeout_ms=1000),
    ], events=(events := []))
    response, elapsed = await fanout(exchange, site_request("req-late", tmax=120))
    assert response["ext"]["dsp"]["late"]["outcome"] == "timeout"
    assert response["ext"]["dsp"]["fast"]["outcome"] == "bid"
    assert 100 <= elapsed < 160  # 120 ms less the 10 ms buffer
    assert [f["platform"] for kind, f in events if kind == "dsp_timeout"] == ["late"]


async def test_bids_are_validated_adjusted_and_floored(make_exchange, local_dsp):
    exchange = await make_exchange([
        platform(1, "eur", "openrtb", f"{local_dsp}/bid/openrtb?price=5&cur=EUR"),
        platform(2, "cheap", "amazon", f"{local_dsp}/bid/amazon?price=1.0", bid_adjustment=0.4),
        platform(3, "boosted", "dv360", f"{local_dsp}/bid/dv360?price=1.0", bid_adjustment=1.5),
    ])
    response, _ = await fanout(exchange, site_request("req-valid", floor=0.5))
    dsp = response["ext"]["dsp"]
    assert dsp["eur"] == {"outcome": "error", "reason": "currency", "latency_ms": dsp["eur"]["latency_ms"]}
    assert dsp["cheap"]["outcome"] == "no_bid" and dsp["cheap"]["reason"] == "bidfloor"  # 1.0 x 0.4 < 0.5
    assert dsp["boosted"]["price"] == 1.5
    assert response["seatbid"][0]["bid"][0]["price"] == 1.5


async def test_skips_are_named(make_exchange, local_dsp, dsp_config):
    exchange = await make_exchange([
        platform(1, "off", "openrtb", f"{local_dsp}/bid/openrtb", enabled=False),
        platform(2, "slow-budget", "openrtb", f"{local_dsp}/bid/openrtb", timeout_ms=5),  # under DSP_MIN_PLATFORM_MS
    ])
    response, _ = await fanout(exchange, site_request("req-skip"))
    assert response["ext"]["dsp"] == {"off": {"outcome": "skipped", "reason": "disabled"},
                                      "slow-budget": {"outcome": "skipped", "reason": "ineligible"}}


async def test_keep_alive_reuses_connections(make_exchange, local_dsp):
    exchange = await make_exchange(four(local_dsp))
    for n in range(20):
        await fanout(exchange, site_request(f"req-ka-{n}"))
    assert exchange.new_connections() == 3  # one per platform called (meta is ineligible for a site)


async def test_a_platform_edit_reaches_the_exchange_within_a_second(make_exchange, local_dsp, redis_client):
    from apps.dsp import platforms as store
    from tests.support.wait import async_wait_until

    exchange = await make_exchange([platform(1, "one", "openrtb", f"{local_dsp}/bid/openrtb")])
    store.publish(redis_client, [platform(1, "one", "openrtb", f"{local_dsp}/bid/openrtb", enabled=False)])
    await async_wait_until(lambda: not exchange.book.platforms[0].enabled, timeout=1.0, message="edit seen")


async def test_the_qps_cap_sheds_load_before_sending(make_exchange, local_dsp, dsp_config):
    import dataclasses

    from apps.dsp.book import _default_bucket

    config = dataclasses.replace(dsp_config, qps_workers=2)  # a cap of 10/s is 5/s in each of two workers
    exchange = await make_exchange([platform(1, "capped", "openrtb", f"{local_dsp}/bid/openrtb", qps_cap=10)],
                                   config=config, bucket_factory=_default_bucket)
    outcomes = [(await fanout(exchange, site_request(f"q{n}")))[0]["ext"]["dsp"]["capped"] for n in range(12)]
    called = [o for o in outcomes if o["outcome"] == "bid"]
    assert 5 <= len(called) <= 6  # the burst, plus at most one token refilled meanwhile
    assert all(o == {"outcome": "skipped", "reason": "qps"} for o in outcomes if o["outcome"] != "bid")
    assert dsp_stats(local_dsp)["requests"].get("openrtb/bid", 0) >= len(called)


async def test_the_breaker_opens_on_consecutive_errors_and_a_probe_closes_it(make_exchange, local_dsp, dsp_config,
                                                                            redis_client):
    import dataclasses

    from apps.dsp import platforms as store
    from apps.dsp.book import _default_breaker
    from tests.support.wait import async_wait_until

    config = dataclasses.replace(dsp_config, breaker_failures=3, breaker_reset_seconds=0.3)
    name = f"flaky-{time.monotonic_ns()}"
    exchange = await make_exchange([platform(1, name, "openrtb", f"{local_dsp}/error/openrtb")], config=config,
                                   breaker_factory=_default_breaker)
    seen = []
    for n in range(5):
        response, _ = await fanout(exchange, site_request(f"b{n}"))
        seen.append(response["ext"]["dsp"][name].get("reason"))
        await exchange.flush()
    assert seen == ["http_500"] * 3 + ["breaker"] * 2
    errors_sent = dsp_stats(local_dsp)["requests"]["openrtb/error"]
    # the platform recovers; after the reset time one probe goes through and closes the breaker
    store.publish(redis_client, [platform(1, name, "openrtb", f"{local_dsp}/bid/openrtb")])
    await async_wait_until(lambda: exchange.book.platforms[0].endpoint_url.endswith("/bid/openrtb"), timeout=2)

    async def probe_passes():
        response, _ = await fanout(exchange, site_request("probe"))
        await exchange.flush()
        return response["ext"]["dsp"][name]["outcome"] == "bid"

    await async_wait_until(probe_passes, timeout=3, interval=0.1, message="half-open probe answered")
    assert exchange.book.gates[1].breaker_state == "closed"
    response, _ = await fanout(exchange, site_request("after"))
    assert response["ext"]["dsp"][name]["outcome"] == "bid"
    assert dsp_stats(local_dsp)["requests"]["openrtb/error"] == errors_sent  # nothing sent while open


async def test_credentials_stay_encrypted_in_the_redis_snapshot(make_exchange, local_dsp, redis_client):
    from apps.dsp import platforms as store

    exchange = await make_exchange(four(local_dsp))
    raw = redis_client.hget(store.PLATFORMS_KEY, "blob")
    assert META_SECRET.encode() not in raw
    assert exchange.book.platforms[1].credentials == {"app_secret": META_SECRET}


@pytest.mark.parametrize("client", ["lean", "aiohttp", "httpx"])
async def test_every_http_client_gives_the_same_outcomes(make_exchange, local_dsp, dsp_config, client):
    import dataclasses

    exchange = await make_exchange([
        platform(1, "a", "openrtb", f"{local_dsp}/bid/openrtb?price=1.1"),
        platform(2, "b", "amazon", f"{local_dsp}/gzip/amazon?price=1.3", gzip=True),
        platform(3, "c", "dv360", f"{local_dsp}/nobid/dv360"),
        platform(4, "d", "ttd", f"{local_dsp}/error/ttd"),
    ], config=dataclasses.replace(dsp_config, http_client=client))
    for n in range(3):  # the second and third reuse the connections
        response, _ = await fanout(exchange, site_request(f"cl-{client}-{n}"))
        dsp = response["ext"]["dsp"]
        assert [dsp[k]["outcome"] for k in "abcd"] == ["bid", "bid", "no_bid", "error"]
        assert dsp["d"]["reason"] == "http_500" and response["seatbid"][0]["seat"] == "b"
    assert dsp_stats(local_dsp)["last"]["amazon"]["headers"]["content-encoding"] == "gzip"
    assert exchange.new_connections() == 4


async def test_a_meta_timeout_is_reported_with_its_notice(make_exchange, local_dsp):
    from tests.support.wait import async_wait_until

    meta = platform(2, "meta", "meta", f"{local_dsp}/late/meta/placementbid.ortb?late_ms=2000", timeout_ms=1000,
                    params={"platform_id": "plat-1", "publisher_id": "123", "placement_id": "456",
                            "timeout_notice_url": f"{local_dsp}/notice/meta/timeout"})
    exchange = await make_exchange([meta])
    before = len(dsp_stats(local_dsp)["notices"])
    response, _ = await fanout(exchange, app_request("req-meta-late", tmax=100))
    assert response["ext"]["dsp"]["meta"]["outcome"] == "timeout"

    def notices():
        return [n for n in dsp_stats(local_dsp)["notices"][before:] if n["notice"] == "timeout"]

    await async_wait_until(notices, timeout=3, message="timeout notice received")
    assert notices()[0]["query"] == {"partner": "plat-1", "app": "123", "auction": "1", "ortb_loss_code": "2"}


async def test_a_timeout_caused_by_our_own_stall_does_not_open_the_breaker(make_exchange, local_dsp, dsp_config):
    import asyncio
    import dataclasses

    from apps.dsp.book import _default_breaker

    config = dataclasses.replace(dsp_config, breaker_failures=1, breaker_reset_seconds=30, late_grace_ms=0)
    name = f"ontime-{time.monotonic_ns()}"
    exchange = await make_exchange([platform(1, name, "openrtb", f"{local_dsp}/bid/openrtb?latency_ms=20")],
                                   config=config, breaker_factory=_default_breaker)

    async def stall():
        await async_pause(0.005, "let the fan-out send its request first")
        # blocking on purpose: the worker has no CPU for 200 ms (another process, a GC pause...)
        pause(0.2, "the event loop stalls while the platform's answer is due")

    body = site_request("stalled", tmax=60)
    stalled, _ = await asyncio.gather(exchange.fanout(body, decoded(body)), stall())
    assert stalled["ext"]["dsp"][name]["outcome"] == "timeout"
    await exchange.flush()
    assert exchange.book.gates[1].breaker_state == "closed"
    response, _ = await fanout(exchange, site_request("next"))
    assert response["ext"]["dsp"][name]["outcome"] == "bid"
