"""Serve-time inputs (docs/DESIGN.md "Serve-time inputs"): every bid's compact inputs reach the
``bid_inputs`` ClickHouse table through the real emitter, stream and consumer, and the row rebuilt
from them with ``apps.inference.features.feature_row`` is bit for bit the row that was scored."""
from __future__ import annotations

import time
import uuid

import msgspec
import numpy as np
import pytest

from apps.analytics import selectors, testing
from apps.analytics.bid_inputs import row_inputs
from apps.analytics.emitter import Emitter
from apps.bidding.cache import UserState, freq_key
from apps.bidding.l2 import L2Client
from apps.bidding.processor import BidProcessor
from apps.core import redis as redis_store
from apps.core.profiles import profile_write
from apps.inference.features import FEATURE_LAYOUT_VERSION, feature_matrix, feature_row
from apps.inference.model import CoLaNetWeights, forward
from apps.inference.runtime import InferenceRuntime
from config import env
from tests.bidding.helpers import EventRecorder, bid_config, bid_request, make_row, make_snapshot


class RecordingInference:
    """The real runtime, plus a copy of every full matrix it was asked to score (what it scored)."""

    def __init__(self, runtime: InferenceRuntime):
        self.runtime = runtime
        self.scored: list[np.ndarray] = []

    @property
    def ready(self) -> bool:
        return self.runtime.ready

    @property
    def model_version(self) -> str | None:
        return self.runtime.model_version

    async def rank_indexed_async(self, row, features, candidates, positions):
        self.scored.append(feature_matrix(row, features[candidates], positions))
        return await self.runtime.rank_indexed_async(row, features, candidates, positions)


@pytest.fixture(scope="module")
def clickhouse_db():
    return testing.clickhouse_schema()


@pytest.fixture
def stream():
    name = f"analytics:test:{uuid.uuid4().hex[:12]}"
    yield name
    redis_store.client().delete(name, f"{name}:dead")


@pytest.fixture
def seeded_runtime(tmp_path) -> InferenceRuntime:
    weights = CoLaNetWeights.seeded(seed=11, version="serve-inputs-1")  # random units on: every column counts
    (tmp_path / "models").mkdir()
    weights.to_npz(tmp_path / "models" / f"colanet-{weights.version}.npz")
    runtime = InferenceRuntime(model_dir=tmp_path / "models")
    runtime.load()
    return runtime


def _offers():
    return [
        make_row(offer_id=901, campaign_id=91, observed_ctr=0.031, max_bid_cpm=6.5, category="IAB8-5", priority=7),
        make_row(offer_id=902, campaign_id=92, observed_ctr=0.012, max_bid_cpm=9.0, category="IAB1-2", priority=5),
        make_row(offer_id=903, campaign_id=93, observed_ctr=0.044, max_bid_cpm=3.0, category="IAB19", priority=3,
                 format="video", width=640, height=480),
        make_row(offer_id=904, campaign_id=94, observed_ctr=0.02, max_bid_cpm=12.0, category="IAB22-1",
                 width=728, height=90),
    ]


def _three_imps():
    return [{"id": "a", "banner": {"w": 300, "h": 250, "pos": 1}, "tagid": "top"},
            {"id": "b", "banner": {"w": 300, "h": 250}},
            {"id": "c", "banner": {"w": 728, "h": 90}}]


async def test_rebuilt_rows_equal_the_scored_rows_end_to_end(clickhouse_db, stream, seeded_runtime):
    rng = np.random.default_rng(5)
    user_id = f"u-{uuid.uuid4().hex[:10]}"
    # an L2 profile (real Redis) with interests, segments, loyalty and recency, plus won impressions
    profile_write(user_id=user_id, fields={
        "interests": [round(float(x), 6) for x in rng.uniform(0, 1, 64)], "segments": [3, 70, 129],
        "loyalty": [0.5, 0.2, 0.9, 0.6, 0.1, 0.0, 0.33, 0.04], "recency": 0.37, "loyalty_tier": "gold",
    }, announce=False)
    now = time.time()
    redis_store.client().zadd(freq_key(user_id), {"b-old:91": now - 120, "b-older:55": now - 60})
    emitter = Emitter(stream=stream, autostart=False)
    inference = RecordingInference(seeded_runtime)
    l2 = L2Client(env.env_str("REDIS_URL", env.REDIS_URL))
    processor = BidProcessor(config=bid_config(freq_max_per_hour=10), inference=inference, redis=l2,
                             emit_event=EventRecorder(), emit_inputs=emitter.emit_record)
    processor.set_snapshot(make_snapshot(_offers(), version=17))

    # request 1: the profile's segments (cached base row); request 2: the exchange adds segments
    try:
        first = await processor.process(bid_request(id="si-1", user_id=user_id, imps=_three_imps(), devicetype=4))
        second = await processor.process(bid_request(
            id="si-2", imps=_three_imps()[:1], devicetype=5,
            user_id=None, user={"id": user_id, "data": [{"id": "dmp", "segment": [{"id": "12"}, {"id": "77"},
                                                                                  {"id": "x9"}]}]}))
    finally:
        await l2.aclose()
        redis_store.client().delete(freq_key(user_id), f"profile:{user_id}")
    bids = first.bids + second.bids
    assert len(first.bids) == 3 and len(second.bids) == 1
    assert emitter.flush(timeout=5)
    assert testing.consume_all(stream=stream) == 4

    rows = {r["bid_id"]: r for r in selectors.bid_inputs_list(bid_ids=[b.id for b in bids])}
    assert set(rows) == {b.id for b in bids}
    scored = {"si-1": inference.scored[0], "si-2": inference.scored[1]}
    weights = seeded_runtime.provider.weights
    for request_id, outcome in (("si-1", first), ("si-2", second)):
        for bid in outcome.bids:
            record = rows[bid.id]
            rebuilt = feature_row(**row_inputs(record))
            assert rebuilt.dtype == np.float32 and rebuilt.shape == (256,)
            assert np.array_equal(rebuilt, scored[request_id][record["position"]]), bid.id
            score, ctr = forward(weights, rebuilt[None, :])
            assert record["predicted_ctr"] == pytest.approx(float(ctr[0]), abs=1e-6)
            assert record["score"] == pytest.approx(float(score[0]), abs=1e-5)
            assert (record["request_id"], record["imp_id"], record["offer_id"], record["price"]) == (
                request_id, bid.impid, bid.adid, bid.price)
            assert (record["layout_version"], record["snapshot_version"], record["model_version"]) == (
                FEATURE_LAYOUT_VERSION, 17, "serve-inputs-1")
            assert record["user_id"] == user_id and record["tier"] == "gold" and record["country"] == "USA"
            assert record["site_domain"] == "news.example.com" and record["site_id"] == "site-1"
    one = rows[first.bids[0].id]
    assert one["impressions_1h"] == 2 and one["max_per_hour"] == 10 and one["device_type"] == "mobile"
    assert one["imp_banner_pos"] == 1 and one["imp_tagid"] == "top"
    assert sorted(one["segments"]) == [3, 70, 129] and one["recency"] == 0.37
    two = rows[second.bids[0].id]
    assert sorted(two["segments"]) == [3, 12, 70, 77, 129] and two["device_type"] == "tablet"
    assert sorted(rows[b.id]["position"] for b in first.bids) != [0, 0, 0]  # not all the top candidate
    # the offer inputs are the snapshot's at that moment, observed CTR included
    offer = {r.offer_id: r for r in _offers()}[int(one["offer_id"])]
    assert (one["offer_observed_ctr"], one["offer_max_bid_cpm"], one["offer_category"], one["offer_format"]) == (
        offer.observed_ctr, offer.max_bid_cpm, offer.category, offer.format)


async def test_a_no_bid_logs_no_inputs_and_a_bad_record_never_reaches_the_table(clickhouse_db, stream, seeded_runtime):
    emitter = Emitter(stream=stream, autostart=False)
    processor = BidProcessor(config=bid_config(), inference=seeded_runtime, emit_event=EventRecorder(),
                             emit_inputs=emitter.emit_record)
    processor.set_snapshot(make_snapshot(_offers()))
    processor.cache.put(UserState("nobody", known=True, loaded_at=time.time()))
    outcome = await processor.process(bid_request(id="si-none", user_id="nobody",
                                                  imps=[{"id": "1", "banner": {"w": 1, "h": 1}}]))
    assert outcome.reason == "no_candidates"
    assert emitter.backlog() == 0
    emitter.emit_record("bid_inputs", ("not", "a", "record"))
    with pytest.raises(ValueError, match="unknown analytics record kind"):
        emitter.emit_record("bid_outputs", ())
    assert emitter.flush(timeout=5)  # the bad record is dropped (counted invalid) in the flusher
    assert testing.consume_all(stream=stream) == 0


def _normalised(rows: list[tuple]) -> list[tuple]:
    """Wire rows without what differs between two runs of one request: ids, times, latency."""
    from apps.analytics import bid_inputs, events

    varying = {"bid_response": [events.COLUMNS.index(c) for c in ("event_id", "timestamp", "timestamp_us",
                                                                   "bid_id", "latency_us")],
               "bid_inputs": [(("event_id", "kind", "timestamp", "timestamp_us") + bid_inputs.FIELDS).index(c)
                              for c in ("event_id", "timestamp", "timestamp_us", "bid_id", "served_at")]}
    out = []
    for row in rows:
        values = list(row)
        for index in varying[row[1]]:
            values[index] = None
        out.append(tuple(values))
    return out


async def test_one_emitter_gets_one_served_record_with_the_rows_of_the_separate_calls(seeded_runtime):
    from apps.analytics import events

    together = Emitter(stream="analytics:test:unused", autostart=False)
    apart_events, apart_inputs = (Emitter(stream="analytics:test:unused", autostart=False) for _ in range(2))
    processors = [
        BidProcessor(config=bid_config(), inference=seeded_runtime, emit_event=together.emit,
                     emit_inputs=together.emit_record),
        BidProcessor(config=bid_config(), inference=seeded_runtime, emit_event=apart_events.emit,
                     emit_inputs=apart_inputs.emit_record),
    ]
    outcomes = []
    for processor in processors:
        processor.set_snapshot(make_snapshot(_offers()))
        processor.cache.put(UserState("u-served", tier="reserve", segments=(3, 9), recency=0.25, known=True,
                                      loaded_at=time.time()))
        outcomes.append(await processor.process(bid_request(id="si-served", user_id="u-served",
                                                            imps=_three_imps())))
    assert processors[0]._emit_served is not None and processors[1]._emit_served is None
    assert len(outcomes[0].bids) == len(outcomes[1].bids) == 3
    [(kind, _, ts_us, values)] = list(together._buf)  # one buffer entry for the request: its encoded rows
    assert kind == events.ENCODED and all(isinstance(v, msgspec.Raw) for v in values)
    # what the flusher writes (msgpack), decoded as the consumer decodes it
    rows = [tuple(row) for row in msgspec.msgpack.decode(together._entries(events.record_rows(kind, ts_us, values))[0][0])]
    apart = [events.to_row(t, i, ts, f) for t, i, ts, f in apart_events._buf]
    apart += [row for t, _, ts, v in apart_inputs._buf for row in events.record_rows(t, ts, v)]
    apart = [tuple(row) for row in msgspec.msgpack.decode(msgspec.msgpack.encode(apart))]
    assert len(rows) == len(apart) == 6
    assert _normalised(rows) == _normalised(apart)
    # the event rows name the bids that were answered, stamped with the record's time
    assert [r[events.COLUMNS.index("bid_id")] for r in rows[:3]] == [b.id for b in outcomes[0].bids]
    assert all(r[2] * 1_000_000 + r[3] == ts_us for r in rows)
    assert len({r[0] for r in rows[:3]}) == 3


def test_a_served_record_that_cannot_be_converted_is_counted_never_raised():
    from apps.analytics import emitter as emitter_module

    emitter = Emitter(stream="analytics:test:unused", autostart=False)
    dropped = emitter_module.EVENTS_DROPPED.labels("invalid")
    before = dropped._value.get()
    emitter.emit_served(("short", "context"))
    assert emitter.backlog() == 0 and dropped._value.get() == before + 1
    offer = ("91", "901", "IAB8-5", 6.5, 0.031, "banner")
    ctx = ("r-1", "open", "u-1", "gold", None, (), None, 0.5, 2, "mobile", None, 17, "m-1", 1.7e9, (1, 10, 8),
           None, None, None, None, None)
    emitter.emit_served((ctx, (("b-1", "1", None, 2**64, offer, 2.5, 0, 0.02, 0.7),), 5))  # banner.pos: no msgpack int
    assert emitter.backlog() == 0 and dropped._value.get() == before + 2
    emitter.emit_served((ctx, (("b-1", "1", None, 3, offer, 2.5, 0, 0.02, 0.7),), 5))
    assert emitter.backlog() == 1


def test_served_rows_equal_to_row_of_the_events_fields_also_off_the_direct_path():
    from apps.analytics import bid_inputs, events

    offer = ("91", "901", "IAB8-5", 6.5, 0.031, "banner")
    ctx = ("r-1", "open", "u-1", "gold", np.zeros(64, np.float32), (3,), np.zeros(8, np.float32), 0.5, 2,
           "mobile", None, 17, "m-1", 1_700_000_000.25, (1, 10, 8), "s", "d", None, None, None)
    bids = (("b-1", "1", None, None, offer, 2.5, 0, 0.02, 0.7),
            ("b-2", 2, "tag", 1, (91, 902, "IAB1", 9.0, 0.01, "video"), 3, 1, 0.01, 0.4))  # int ids, int price
    ts_us = 1_700_000_000_123_456
    for latency in (120, 120.0):  # a float latency is to_row's to convert too
        rows = events.served_rows(ts_us, (ctx, bids, latency))
        expected = [events.to_row("bid_response", row[0], ts_us, events.bid_response_fields(ctx, bid, latency))
                    for row, bid in zip(rows, bids, strict=False)]
        assert rows[:2] == expected
        assert rows[2:] == bid_inputs.to_rows(ts_us, (ctx, bids))
    assert rows[0][events.COLUMNS.index("country")] == "" and rows[1][events.COLUMNS.index("campaign_id")] == "91"
    with pytest.raises(events.InvalidEvent):
        events.served_rows(ts_us, (ctx, (("b-3", "1", None, None, offer, float("nan"), 0, 0.02, 0.7),), 5))
