"""Golden cases of the BidProcessor (docs/RULES.md §1): who wins, at what price, and why a request is a no-bid.

The golden model's outputs are known by hand (tests/bidding/helpers.py), so prices are exact.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from apps.bidding import openrtb
from apps.bidding.cache import UserState
from apps.bidding.tokens import parse_click_token, parse_win_token
from apps.core.metrics import flush_buffered
from tests.bidding.helpers import SECRET, bid_request, expected_ctr, expected_price, expected_score, make_row


def put_user(processor, user_id="user-1", *, tier="green", segments=(), wins=None):
    processor.cache.put(UserState(user_id, tier=tier, segments=tuple(segments), wins=list(wins or []), known=True,
                                  loaded_at=time.time()))


async def test_known_profile_and_offers_give_the_expected_winner_price_boost_and_fields(make_processor, events):
    low = make_row(offer_id=11, campaign_id=1, observed_ctr=0.01, max_bid_cpm=8.0, priority=9)
    best = make_row(offer_id=12, campaign_id=2, observed_ctr=0.03, max_bid_cpm=4.0, category="IAB8-5",
                    adomain="coffee.example.com", landing_url="https://coffee.example.com/spring")
    processor = make_processor([low, best])
    put_user(processor, tier="gold")
    assert expected_score(0.03, 4.0) > expected_score(0.01, 8.0)

    outcome = await processor.process(bid_request(id="golden-1", tmax=150))

    assert outcome.is_bid and outcome.reason is None
    assert outcome.summary() == [("1", "12", expected_price(4.0, 0.03, "gold"), None)]
    # 0.03 observed CTR -> ladder level 19/32 of 5 % -> ratio 0.59375; 4.0 * (0.5 + 0.5 * 0.59375) * 1.15 = 3.6656
    assert expected_ctr(0.03) == pytest.approx(0.0296875) and expected_price(4.0, 0.03, "gold") == 3.6656
    response = outcome.response
    assert response.id == "golden-1" and response.cur == "USD" and response.bidid
    seat = response.seatbid[0]
    assert seat.seat == "campaign-express"
    bid = seat.bid[0]
    assert (bid.impid, bid.adid, bid.cid, bid.crid, bid.w, bid.h, bid.mtype) == ("1", "12", "2", "cr-12", 300, 250, 1)
    assert bid.adomain == ["coffee.example.com"] and bid.cat == ["IAB8-5"] and bid.dealid is None
    assert bid.nurl.startswith("http://bid.test/v1/win?t=") and bid.nurl.endswith("&price=${AUCTION_PRICE}")
    win = parse_win_token(SECRET, bid.nurl.split("t=", 1)[1].split("&", 1)[0])
    assert (win.bid_id, win.request_id, win.imp_id, win.campaign_id, win.offer_id, win.user_id) == (
        bid.id, "golden-1", "1", 2, 12, "user-1")
    assert win.bid_price_micros == 3_665_600
    click = bid.adm.split('href="', 1)[1].split('"', 1)[0]
    assert click.startswith("http://bid.test/v1/click?t=")
    assert parse_click_token(SECRET, click.split("t=", 1)[1]).landing_url == "https://coffee.example.com/spring"
    assert '<img src="https://cdn.example.com/12.png">' in bid.adm
    [event] = events.of("bid_response")
    assert event["bid_id"] == bid.id and event["price"] == 3.6656 and event["tier"] == "gold"
    assert event["campaign_id"] == "2" and event["offer_id"] == "12" and event["country"] == "USA"


@pytest.mark.parametrize("tier", ["green", "gold", "reserve"])
async def test_loyalty_boost_and_its_cap_at_the_max_bid(make_processor, tier):
    processor = make_processor([make_row(offer_id=21, observed_ctr=0.045, max_bid_cpm=5.0)])
    put_user(processor, tier=tier)
    outcome = await processor.process(bid_request())
    price = outcome.bids[0].price
    assert price == expected_price(5.0, 0.045, tier)
    assert price <= 5.0
    if tier == "reserve":
        assert price == 5.0  # 5.0 * 0.953125 * 1.30 would be 6.195: capped at the offer's max bid


async def test_boosted_bids_are_counted(make_processor):
    from apps.bidding import metrics

    processor = make_processor([make_row()])
    put_user(processor, tier="reserve")
    flush_buffered()  # the hot path's counters are buffered (the Bidder flushes them)
    before = metrics.LOYALTY_BOOSTED._value.get()
    await processor.process(bid_request())
    flush_buffered()
    assert metrics.LOYALTY_BOOSTED._value.get() == before + 1


async def test_anonymous_and_unknown_users_bid_on_the_default_profile(make_processor):
    processor = make_processor([make_row(offer_id=31, observed_ctr=0.02, max_bid_cpm=4.0)])
    outcome = await processor.process(bid_request(user_id=None))
    assert outcome.summary() == [("1", "31", expected_price(4.0, 0.02), None)]
    win = parse_win_token(SECRET, outcome.bids[0].nurl.split("t=")[1].split("&")[0])
    assert win.user_id == "anonymous"
    # No Redis configured: an unknown user falls back to the default (Green) profile too.
    outcome = await processor.process(bid_request(user_id="never-seen"))
    assert outcome.bids[0].price == expected_price(4.0, 0.02, "green")


async def test_buyeruid_is_the_user_id_when_user_id_is_absent(make_processor):
    processor = make_processor([make_row(offer_id=32)])
    put_user(processor, "buyer-9", tier="gold")
    outcome = await processor.process(bid_request(user_id=None, user={"buyeruid": "buyer-9"}))
    assert outcome.bids[0].price == expected_price(4.0, 0.02, "gold")


async def test_floor_above_our_price_is_a_no_bid(make_processor, events):
    processor = make_processor([make_row(max_bid_cpm=4.0, observed_ctr=0.02)])
    price = expected_price(4.0, 0.02)
    ok = await processor.process(bid_request(imps=[{"id": "1", "bidfloor": price, "banner": {"w": 300, "h": 250}}]))
    assert ok.is_bid  # a bid equal to the floor clears it
    outcome = await processor.process(bid_request(imps=[{"id": "1", "bidfloor": price + 0.01,
                                                         "banner": {"w": 300, "h": 250}}]))
    assert not outcome.is_bid and outcome.reason == "below_floor" and outcome.response.nbr == openrtb.NBR_UNKNOWN
    assert events.of("no_bid")[-1]["reason"] == "below_floor"


async def test_floor_picks_the_next_best_offer_that_clears_it(make_processor):
    cheap_best = make_row(offer_id=41, observed_ctr=0.04, max_bid_cpm=1.0)
    pricier = make_row(offer_id=42, observed_ctr=0.01, max_bid_cpm=9.0)
    processor = make_processor([cheap_best, pricier])
    outcome = await processor.process(bid_request(imps=[{"id": "1", "bidfloor": 2.0, "banner": {"w": 300, "h": 250}}]))
    assert outcome.summary() == [("1", "42", expected_price(9.0, 0.01), None)]


@pytest.mark.parametrize("bcat", [["IAB7-39"], ["IAB7"], ["iab7-39", "IAB25"]])
async def test_blocked_categories_are_never_bid(make_processor, bcat):
    processor = make_processor([make_row(offer_id=51, category="IAB7-39", observed_ctr=0.04)])
    outcome = await processor.process(bid_request(bcat=bcat))
    assert not outcome.is_bid and outcome.reason == "no_candidates"


async def test_blocked_category_lets_an_allowed_offer_win(make_processor):
    blocked = make_row(offer_id=52, category="IAB25-3", observed_ctr=0.04)
    allowed = make_row(offer_id=53, category="IAB22-1", observed_ctr=0.01)
    processor = make_processor([blocked, allowed])
    outcome = await processor.process(bid_request(bcat=["IAB25"]))
    assert [b.adid for b in outcome.bids] == ["53"]


@pytest.mark.parametrize("badv, blocked", [
    (["shop.example.com"], True), (["example.com"], True), (["SHOP.EXAMPLE.COM"], True),
    (["other.com"], False), (["com"], False), (["hop.example.com"], False),
])
async def test_blocked_advertiser_domains(make_processor, badv, blocked):
    processor = make_processor([make_row(offer_id=54, adomain="www.shop.example.com")])
    outcome = await processor.process(bid_request(badv=badv))
    assert outcome.is_bid is not blocked


@pytest.mark.parametrize("imp, fits", [
    ({"banner": {"w": 300, "h": 250}}, True),
    ({"banner": {"w": 320, "h": 50}}, False),
    ({"banner": {"w": 728, "h": 90, "format": [{"w": 728, "h": 90}, {"w": 300, "h": 250}]}}, True),
    ({"banner": {"format": [{"w": 300, "h": 250}]}}, True),
    ({"banner": {}}, False),
    ({"video": {"w": 300, "h": 250}}, False),  # a banner creative is not a video
    ({"native": {"request": "{}"}}, False),
    ({}, False),
])
async def test_creative_size_must_fit_the_impression(make_processor, imp, fits):
    processor = make_processor([make_row(offer_id=61)])
    outcome = await processor.process(bid_request(imps=[{"id": "1", **imp}]))
    assert outcome.is_bid is fits
    if fits:
        assert (outcome.bids[0].w, outcome.bids[0].h) == (300, 250)


async def test_video_and_native_offers_bid_on_their_impression_types(make_processor):
    video = make_row(offer_id=62, format="video", width=640, height=480, markup="<VAST version=\"4.0\"></VAST>")
    native = make_row(offer_id=63, format="native", width=1, height=1, markup='{"native":{"assets":[]}}')
    banner = make_row(offer_id=64)
    processor = make_processor([video, native, banner])
    outcome = await processor.process(bid_request(imps=[
        {"id": "v", "video": {"w": 1280, "h": 960, "mimes": ["video/mp4"]}},  # same 4:3 shape, scaled
        {"id": "n", "native": {"request": "{}", "ver": "1.2"}},
        {"id": "b", "banner": {"w": 300, "h": 250}},
    ]))
    by_imp = {b.impid: b for b in outcome.bids}
    assert (by_imp["v"].adid, by_imp["v"].mtype, by_imp["v"].adm) == ("62", 2, '<VAST version="4.0"></VAST>')
    assert (by_imp["n"].adid, by_imp["n"].mtype) == ("63", 4)
    assert (by_imp["b"].adid, by_imp["b"].mtype) == ("64", 1)
    other_shape = await processor.process(bid_request(imps=[{"id": "v", "video": {"w": 640, "h": 360}}]))
    assert not other_shape.is_bid


async def test_one_offer_wins_at_most_one_impression(make_processor):
    a = make_row(offer_id=71, observed_ctr=0.04)
    b = make_row(offer_id=72, observed_ctr=0.02)
    processor = make_processor([a, b])
    imps = [{"id": str(i), "banner": {"w": 300, "h": 250}} for i in (1, 2, 3)]
    outcome = await processor.process(bid_request(imps=imps))
    assert [(b.impid, b.adid) for b in outcome.bids] == [("1", "71"), ("2", "72")]


@pytest.mark.parametrize("targeting, request_kwargs, bids", [
    ({"countries": ["USA"]}, {"country": "USA"}, True),
    ({"countries": ["US"]}, {"country": "USA"}, True),  # alpha-2 targeting matches alpha-3 geo
    ({"countries": ["USA"]}, {"country": "CAN"}, False),
    ({"countries": ["USA"]}, {"country": None}, False),
    ({"device_types": ["mobile"]}, {"devicetype": 4}, True),
    ({"device_types": ["mobile"]}, {"devicetype": 2}, False),
    ({"device_types": ["tablet", "ctv"]}, {"devicetype": 3}, True),
    ({"device_types": ["mobile"]}, {"devicetype": None, "device": {"ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile"}}, True),
    ({"segments": [42]}, {}, False),
    ({"segments": [42]}, {"user": {"id": "user-1", "data": [{"segment": [{"id": "42"}]}]}}, True),
    # Digits that are not ASCII are not our segment ids: "²" and "①" pass str.isdigit() but int() refuses
    # them (it answered 500), and int("٤٢") would be 42.
    ({"segments": [42]}, {"user": {"id": "user-1", "data": [{"segment": [{"id": "\u00b2"}, {"id": "\u2460"},
                                                                          {"id": "42"}]}]}}, True),
    ({"segments": [42]}, {"user": {"id": "user-1", "data": [{"segment": [{"id": "\u0664\u0662"}]}]}}, False),
])
async def test_targeting(make_processor, targeting, request_kwargs, bids):
    processor = make_processor([make_row(offer_id=81, **targeting)])
    outcome = await processor.process(bid_request(**request_kwargs))
    assert outcome.is_bid is bids


async def test_segment_targeting_uses_the_profile(make_processor):
    processor = make_processor([make_row(offer_id=82, segments=[5, 9])])
    put_user(processor, segments=[9])
    assert (await processor.process(bid_request())).is_bid
    put_user(processor, "user-2", segments=[4])
    assert not (await processor.process(bid_request(user_id="user-2"))).is_bid


async def test_frequency_cap_per_hour_and_per_day(make_processor, events):
    from apps.bidding import metrics

    processor = make_processor([make_row(offer_id=91)], freq_max_per_hour=3, freq_max_per_day=5)
    now = time.time()
    put_user(processor, "u-hour", wins=[(now - 60 * i, 999) for i in range(1, 4)])
    put_user(processor, "u-day", wins=[(now - 7200 * i, 999) for i in range(1, 6)])
    put_user(processor, "u-ok", wins=[(now - 7200, 999), (now - 90_000, 999)])  # one stale entry is pruned
    flush_buffered()  # the hot path's counters are buffered (the Bidder flushes them)
    capped_before = metrics.FREQUENCY_CAPPED._value.get()
    for user in ("u-hour", "u-day"):
        outcome = await processor.process(bid_request(user_id=user))
        assert not outcome.is_bid and outcome.reason == "frequency_cap"
        assert outcome.response.nbr == openrtb.NBR_DAILY_USER_CAP
    flush_buffered()
    assert metrics.FREQUENCY_CAPPED._value.get() == capped_before + 2
    assert [e["reason"] for e in events.of("no_bid")] == ["frequency_cap", "frequency_cap"]
    assert (await processor.process(bid_request(user_id="u-ok"))).is_bid
    # Anonymous traffic is never capped by user.
    assert (await processor.process(bid_request(user_id=None))).is_bid


async def test_campaign_frequency_cap_skips_only_that_campaign(make_processor):
    capped = make_row(offer_id=92, campaign_id=7, observed_ctr=0.04, max_per_hour=2)
    other = make_row(offer_id=93, campaign_id=8, observed_ctr=0.01)
    processor = make_processor([capped, other])
    now = time.time()
    put_user(processor, wins=[(now - 10, 7), (now - 20, 7)])
    outcome = await processor.process(bid_request())
    assert [b.adid for b in outcome.bids] == ["93"]


async def test_exhausted_budget_stops_bidding_for_that_campaign(make_processor):
    spent = make_row(offer_id=94, campaign_id=5, observed_ctr=0.04)
    other = make_row(offer_id=95, campaign_id=6, observed_ctr=0.01)
    processor = make_processor([spent, other])
    assert [b.adid for b in (await processor.process(bid_request())).bids] == ["94"]
    processor.mark_exhausted(5)
    assert [b.adid for b in (await processor.process(bid_request())).bids] == ["95"]
    processor.mark_exhausted(6)
    outcome = await processor.process(bid_request())
    assert not outcome.is_bid and outcome.reason == "no_candidates"


async def test_campaign_outside_its_window_is_not_bid(make_processor):
    now = time.time()
    processor = make_processor([make_row(offer_id=96, start_at=now + 3600, end_at=now + 7200),
                                make_row(offer_id=97, start_at=now - 7200, end_at=now - 1)])
    assert not (await processor.process(bid_request())).is_bid


async def test_paused_campaign_is_absent_from_a_new_snapshot(make_processor):
    from tests.bidding.helpers import make_snapshot

    live = make_row(offer_id=98, campaign_id=9)
    processor = make_processor([live])
    assert (await processor.process(bid_request())).is_bid
    processor.set_snapshot(make_snapshot([], version=2))  # what offer_snapshot_refresh builds once it is paused
    assert not (await processor.process(bid_request())).is_bid
    processor.set_snapshot(make_snapshot([live], version=1))  # an older snapshot never replaces a newer one
    assert processor.snapshot.version == 2


async def test_tmax_too_small_for_the_network_buffer_is_a_no_bid(make_processor, events):
    processor = make_processor([make_row()], network_buffer_ms=20)
    outcome = await processor.process(bid_request(tmax=15))
    assert not outcome.is_bid and outcome.reason == "deadline" and outcome.response.nbr == openrtb.NBR_TECHNICAL_ERROR
    assert events.of("no_bid")[-1]["reason"] == "deadline"
    assert (await processor.process(bid_request(tmax=60))).is_bid


async def test_deadline_passed_before_inference_is_a_no_bid(make_processor):
    processor = make_processor([make_row()], network_buffer_ms=10)
    # The request arrived 100 ms ago (e.g. queued behind others): its 50 ms budget is gone.
    outcome = await processor.process(bid_request(tmax=60), started=time.perf_counter() - 0.1)
    assert not outcome.is_bid and outcome.reason == "deadline"


async def test_private_auction_bids_only_on_a_deal_we_may_serve(make_processor):
    processor = make_processor([make_row(offer_id=101, observed_ctr=0.04, max_bid_cpm=6.0)])
    price = expected_price(6.0, 0.04)
    pmp_imp = lambda deals, private=1: [{"id": "1", "bidfloor": 0.1, "banner": {"w": 300, "h": 250},  # noqa: E731
                                          "pmp": {"private_auction": private, "deals": deals}}]
    # Deals reserved for other seats: no deal we can serve -> no-bid (never an open-auction bid).
    other_seats = [{"id": "A", "bidfloor": 2.5, "wseat": ["Agency1"]}, {"id": "B", "bidfloor": 2, "wseat": ["Agency2"]}]
    assert not (await processor.process(bid_request(imps=pmp_imp(other_seats)))).is_bid
    # A deal open to every seat, or naming ours: the bid carries its id.
    outcome = await processor.process(bid_request(imps=pmp_imp([{"id": "open-deal", "bidfloor": 1.0}])))
    assert outcome.summary() == [("1", "101", price, "open-deal")]
    outcome = await processor.process(bid_request(imps=pmp_imp(
        [{"id": "too-dear", "bidfloor": price + 1}, {"id": "ours", "bidfloor": 1.0, "wseat": ["campaign-express"]}])))
    assert outcome.bids[0].dealid == "ours"
    # A deal floor above our price and a private auction: no-bid.
    assert not (await processor.process(bid_request(imps=pmp_imp([{"id": "d", "bidfloor": price + 1}])))).is_bid
    # Not private: the open auction is allowed when no deal fits.
    outcome = await processor.process(bid_request(imps=pmp_imp([{"id": "d", "bidfloor": price + 1}], private=0)))
    assert outcome.summary() == [("1", "101", price, None)]
    # wadomain restricts which advertisers may use the deal.
    assert not (await processor.process(bid_request(imps=pmp_imp(
        [{"id": "d", "bidfloor": 1.0, "wadomain": ["brand.com"]}])))).is_bid


async def test_seat_and_currency_restrictions(make_processor):
    processor = make_processor([make_row()])
    assert not (await processor.process(bid_request(wseat=["someone-else"]))).is_bid
    assert not (await processor.process(bid_request(bseat=["campaign-express"]))).is_bid
    assert (await processor.process(bid_request(wseat=["campaign-express"]))).is_bid
    assert not (await processor.process(bid_request(cur=["EUR"]))).is_bid
    assert (await processor.process(bid_request(cur=["EUR", "USD"]))).is_bid
    eur_floor = [{"id": "1", "bidfloor": 0.5, "bidfloorcur": "EUR", "banner": {"w": 300, "h": 250}}]
    assert not (await processor.process(bid_request(imps=eur_floor))).is_bid


async def test_coppa_requests_are_not_personalised(make_processor):
    processor = make_processor([make_row(offer_id=111)])
    put_user(processor, tier="reserve")
    outcome = await processor.process(bid_request(regs={"coppa": 1}))
    win = parse_win_token(SECRET, outcome.bids[0].nurl.split("t=")[1].split("&")[0])
    assert win.user_id == "anonymous" and outcome.bids[0].price == expected_price(4.0, 0.02, "green")


@pytest.fixture
def scored_rows(runtime) -> list:
    """The user feature row of every ranking the processor asks ``runtime`` for, in order (copies)."""
    rows: list = []
    original = runtime.rank_indexed_async

    async def spy(user_row_, offer_features, candidates, positions):
        rows.append(user_row_.copy())
        return await original(user_row_, offer_features, candidates, positions)

    runtime.rank_indexed_async = spy
    return rows


async def test_candidates_are_capped_at_the_batch_size_best_priority_first(make_processor, runtime):
    rows = [make_row(offer_id=200 + i, priority=i % 10, observed_ctr=0.01) for i in range(80)]
    processor = make_processor(rows, batch_size=64)
    seen = {}
    original = runtime.rank_indexed_async

    async def spy(user_row, offer_features, candidates, positions):
        seen["n"] = len(candidates)
        seen["positions"] = positions.copy()
        assert offer_features is processor.snapshot.features  # the whole table: its layer-1 share is cached
        return await original(user_row, offer_features, candidates, positions)

    runtime.rank_indexed_async = spy
    await processor.process(bid_request())
    assert seen["n"] == 64
    np.testing.assert_allclose(seen["positions"], np.arange(64) / 64)
    chosen, _ = processor._candidates(bid_request(), processor.snapshot, processor._anonymous, time.time(),
                                      "desktop", "USA", ())
    priorities = [processor.snapshot.entries[i].row.priority for i in chosen]
    assert priorities == sorted(priorities, reverse=True) and min(priorities) >= 2  # the 16 priority-0/1 offers lose


async def test_not_ready_without_snapshot_is_a_no_bid(runtime, events):
    from apps.bidding.processor import BidProcessor
    from tests.bidding.helpers import bid_config

    processor = BidProcessor(config=bid_config(), inference=runtime, emit_event=events, emit_inputs=events.record)
    outcome = await processor.process(bid_request())
    assert not processor.ready and outcome.reason == "not_ready"


async def test_cached_profile_row_equals_the_feature_builders_row(make_processor, scored_rows):
    from apps.inference.features import user_row

    processor = make_processor([make_row()], freq_max_per_hour=4)
    interests = np.linspace(0, 1, 64, dtype=np.float32)
    loyalty = np.arange(8, dtype=np.float32) / 8
    now = time.time()
    processor.cache.put(UserState("u", tier="gold", interests=interests, segments=(3, 70), loyalty=loyalty,
                                  recency=0.25, wins=[(now - 60, 1)], known=True, loaded_at=now))

    for devicetype in (4, 2):  # the second request reuses the cached profile part
        await processor.process(bid_request(user_id="u", devicetype=devicetype))
    assert len(scored_rows) == 2
    for row, device in zip(scored_rows, ("mobile", "desktop"), strict=True):
        expected = user_row(interests=interests, segments=(3, 70), loyalty=loyalty, recency=0.25, impressions_1h=1,
                            max_per_hour=4, device_type=device)
        np.testing.assert_array_equal(row, expected)


async def test_the_default_profiles_row_is_shared_and_equals_the_feature_builders_row(make_processor, scored_rows):
    from apps.inference.features import user_row

    processor = make_processor([make_row()], freq_max_per_hour=4)
    now = time.time()
    processor.cache.put(UserState("new-1", wins=[(now - 60, 1)], loaded_at=now))  # an unknown user's default state
    processor.cache.put(UserState("new-2", loaded_at=now))
    processor.cache.put(UserState("known", recency=0.5, known=True, loaded_at=now))  # defaults but its recency

    for user, devicetype in (("new-1", 4), ("new-2", 2), ("new-1", 2), ("known", 4)):
        await processor.process(bid_request(user_id=user, devicetype=devicetype))
    for row, impressions, recency, device in zip(scored_rows, (1, 0, 1, 0), (0.0, 0.0, 0.0, 0.5),
                                                ("mobile", "desktop", "desktop", "mobile"), strict=True):
        expected = user_row(interests=None, segments=(), loyalty=None, recency=recency, impressions_1h=impressions,
                            max_per_hour=4, device_type=device)
        np.testing.assert_array_equal(row, expected)
    states = [processor.cache.get(user, now) for user in ("new-1", "new-2", "known")]
    assert states[0].base_row is states[1].base_row is processor._default_base  # built once, never written
    assert states[2].base_row is not processor._default_base and not processor._default_base.flags.writeable
