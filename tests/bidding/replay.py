"""The replay corpus of the bid path (issue 21, "rules of the game"): a fixed world and a normaliser.

A fixed world: 64 offers as ``bench/bid_load.py`` seeds them plus video, native, country-, device- and
segment-targeted offers; 10,000 loyalty profiles drawn as ``bid_load.seed`` draws them (put into L1
directly, no Redis); the seeded CoLaNet model (``CoLaNetWeights.seeded(seed=21)``); the config of
``tests.bidding.helpers.bid_config``. ``bench/replay_corpus.py`` runs a few thousand requests through
it and saves, per request, the body and the normalised outcome in ``tests/bidding/data/``;
``tests/bidding/test_replay.py`` replays the bodies and asserts the same outcomes.

What is compared (``normalise``): the encoded response with what is random or time-dependent taken
out — the bid ids and ``bidid`` (random UUIDs), and the win/click tokens in ``nurl`` and ``adm``
(they carry the bid id and the issue time). The tokens are not dropped: each is verified with the
secret and its other fields (request, impression, campaign, offer, user, price in micros, landing
URL) are compared, and its bid id must be the bid's. Prices are compared to the cent and to within
0.0001 (they are rounded to 4 decimals). Also compared: the no-bid reason and ``nbr``, the
``bid_response`` analytics events (without bid id and latency) and the serve-time inputs of each bid
(position, CTR and score to 6 significant digits). Offers' start/end times are relative to the time
the world is built, and the replay runs each request with a deadline an hour away: the deadline is
not behaviour this corpus pins.
"""
from __future__ import annotations

import copy
import gzip
import json
import math
import random
import re
import time
from pathlib import Path

import msgspec

from apps.bidding import openrtb
from apps.bidding.cache import decode_profile_hash, state_from_redis
from apps.bidding.processor import BidProcessor
from apps.bidding.snapshot import OfferRow
from apps.bidding.tokens import parse_click_token, parse_win_token
from apps.inference.model import CoLaNetWeights
from tests.bidding.helpers import SECRET, EventRecorder, bid_config, golden_runtime, make_snapshot

CORPUS = Path(__file__).resolve().parent / "data" / "replay_corpus.jsonl.gz"
SIZES = [(300, 250), (320, 50), (728, 90), (300, 600), (160, 600)]
CATEGORIES = ["IAB1-1", "IAB2-3", "IAB3-1", "IAB8-5", "IAB9-9", "IAB17-12", "IAB18-1", "IAB19-6", "IAB20-3", "IAB22-1"]
TIERS = ["green"] * 6 + ["gold"] * 3 + ["reserve"]
N_USERS = 10_000
MODEL_SEED = 21
_TOKEN = re.compile(r"([?&]t=)([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


def offers(now: float) -> list[OfferRow]:
    """bid_load's 64 offers, then 16 that exercise the other branches of the path."""
    rows = []

    def row(i: int, **kw) -> OfferRow:
        w, h = kw.pop("size", SIZES[i % len(SIZES)])
        values = dict(
            offer_id=10_000 + i, campaign_id=500 + i % 8, name=f"bench offer {i}", advertiser="Bench Co",
            markup=f'<img src="https://cdn.example.com/bench/{i}.png" width="{w}" height="{h}">', width=w, height=h,
            format="banner", landing_url=f"https://shop.example.com/bench/{i}?a=1&b=<{i}>",
            adomain=f"brand{i % 8}.example.com", category=CATEGORIES[i % len(CATEGORIES)],
            max_bid_cpm=round(1.5 + (i % 9) * 0.75, 2), priority=i % 10, observed_ctr=0.004 + (i % 11) * 0.003,
            countries=["USA"], device_types=[], segments=[], start_at=now - 3600, end_at=now + 30 * 86400,
            budget_micros=10**15, max_per_hour=10**6, max_per_day=10**6,
        )
        values.update(kw)
        return OfferRow(**values)

    for i in range(64):
        rows.append(row(i))
    for k, i in enumerate(range(64, 70)):  # video
        size = [(640, 480), (1280, 720), (320, 240)][k % 3]
        rows.append(row(i, size=size, format="video", markup=f"<VAST version=\"4.0\"><Ad id=\"{i}\"/></VAST>",
                        countries=[] if k % 2 else ["USA"]))
    for i in range(70, 73):  # native
        rows.append(row(i, format="native", size=(0, 0), markup=json.dumps({"native": {"assets": [{"id": i}]}}),
                        countries=[]))
    rows.append(row(73, countries=["GBR", "DEU"], size=(300, 250), max_bid_cpm=9.0))
    rows.append(row(74, device_types=["mobile"], size=(300, 250), max_bid_cpm=8.0, countries=[]))
    rows.append(row(75, segments=[3, 7, 11], size=(728, 90), max_bid_cpm=7.5, countries=[]))
    rows.append(row(76, segments=[150], size=(300, 250), max_bid_cpm=6.0, category="IAB7-39"))
    rows.append(row(77, adomain="blocked.example.com", size=(320, 50), max_bid_cpm=9.5))
    rows.append(row(78, size=(300, 250), start_at=now + 86400, end_at=now + 2 * 86400))  # not started
    rows.append(row(79, size=(300, 250), countries=[], max_bid_cpm=0.2, observed_ctr=0.0))
    return rows


def profiles(rng: random.Random) -> list[dict]:
    """Profile hashes as ``bid_load.seed`` writes them (JSON values), decoded as L2 would."""
    out = []
    for _ in range(N_USERS):
        raw = {
            "interests": json.dumps([round(rng.random(), 3) for _ in range(64)]),
            "segments": json.dumps(rng.sample(range(200), 5)),
            "loyalty_tier": json.dumps(rng.choice(TIERS)),
            "loyalty": json.dumps([round(rng.random(), 3) for _ in range(8)]),
            "recency": json.dumps(round(rng.random(), 3)),
            "updated_at": json.dumps(1_764_000_000.0),
        }
        out.append(decode_profile_hash({k.encode(): v.encode() for k, v in raw.items()}))
    return out


class World:
    """The processor of the corpus, with its recorder of analytics events."""

    def __init__(self, model_dir: Path):
        self.now = time.time()
        self.runtime = golden_runtime(model_dir, CoLaNetWeights.seeded(seed=MODEL_SEED, version="replay-1"))
        self.events = EventRecorder()
        self.processor = BidProcessor(config=bid_config(), inference=self.runtime, redis=None,
                                      emit_event=self.events, emit_inputs=self.events.record)
        self.processor.set_snapshot(make_snapshot(offers(self.now), version=1))
        cache = self.processor.cache
        for u, profile in enumerate(profiles(random.Random(7))):
            cache.put(state_from_redis(f"bench-user-{u}", profile, [], self.now))

    async def outcome(self, body: bytes) -> dict:
        """Decode, process (a deadline an hour away), encode; the normalised result."""
        from time import perf_counter

        events = self.events
        events.events.clear()
        events.records.clear()
        before = int(time.time())
        try:
            request = openrtb.decode_request(body)
        except openrtb.InvalidRequest as exc:
            return {"invalid": exc.args[0] if exc.args else str(exc)}
        result = await self.processor.process(request, started=perf_counter() + 3600.0)
        after = int(time.time())
        return normalise(openrtb.encode_response(result.response), events, before, after)


def _r6(x) -> float:
    return float(f"{float(x):.6g}")


def normalise(encoded: bytes, events: EventRecorder, before: int, after: int) -> dict:
    response = msgspec.json.decode(encoded)
    out: dict = {}
    if response.get("nbr") is not None or not response.get("seatbid"):
        out["nbr"] = response.get("nbr")
        out["reason"] = (response.get("ext") or {}).get("reason")
        return out
    assert response.pop("bidid"), "a response with bids has a bidid"
    bids_out = []
    for seatbid in response["seatbid"]:
        for bid in seatbid["bid"]:
            bid_id = bid.pop("id")
            tokens = []

            def token(match, bid_id=bid_id, tokens=tokens):
                text = match.group(2)
                if "/v1/win" in match.string[: match.start()][-20:]:
                    t = parse_win_token(SECRET, text)
                    fields = ["win", t.request_id, t.imp_id, t.campaign_id, t.offer_id, t.user_id, t.bid_price_micros]
                else:
                    t = parse_click_token(SECRET, text)
                    fields = ["click", t.campaign_id, t.offer_id, t.user_id, t.landing_url]
                assert t.bid_id == bid_id, "the token names its bid"
                assert before <= t.issued_at <= after, "the token is issued now"
                tokens.append(fields)
                return match.group(1) + "<token>"

            bid["nurl"] = _TOKEN.sub(token, bid["nurl"])
            if "adm" in bid:
                bid["adm"] = _TOKEN.sub(token, bid["adm"])
            bid["tokens"] = tokens
            bids_out.append(bid)
        seatbid["bid"] = bids_out
    out["response"] = response
    out["events"] = [{k: v for k, v in fields.items() if k not in ("bid_id", "latency_us")}
                     for kind, fields in events.events if kind == "bid_response"]
    inputs = []
    for _kind, (ctx, per_bid) in events.records:
        (request_id, exchange, user_id, tier, _interests, segments, _loyalty, _recency, imps_1h, device_type, country,
         snap_version, model_version, _now, layout, *ids) = ctx
        inputs.append({
            "ctx": [request_id, exchange, user_id, tier, sorted(segments), imps_1h, device_type, country, snap_version,
                    model_version, list(layout), *ids],
            "bids": [[imp_id, tagid, pos, serve_inputs if _plain(serve_inputs) else repr(serve_inputs), price, rank,
                      _r6(ctr), _r6(score)]
                     for _bid_id, imp_id, tagid, pos, serve_inputs, price, rank, ctr, score in per_bid],
        })
    out["inputs"] = inputs
    return out


def _plain(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def same(expected: dict, actual: dict) -> list[str]:
    """The differences between a saved outcome and a replayed one (prices: to the cent and ±0.0001)."""
    e, a = copy.deepcopy(expected), copy.deepcopy(actual)
    problems = []
    eb = [b for s in e.get("response", {}).get("seatbid", []) for b in s["bid"]]
    ab = [b for s in a.get("response", {}).get("seatbid", []) for b in s["bid"]]
    for x, y in zip(eb, ab, strict=False):  # a different count of bids shows in the comparison below
        px, py = x.pop("price"), y.pop("price")
        if round(px, 2) != round(py, 2) or abs(px - py) > 1.0001e-4:
            problems.append(f"price {px} != {py}")
    for part in (e, a):
        for ev in part.get("events", []):
            ev["price"] = round(ev.get("price", 0.0), 2)
        for inp in part.get("inputs", []):
            for b in inp["bids"]:
                b[4] = round(b[4], 2)
    # The model's CTR and score (float32 inference, saved to 6 significant digits) may differ in their last
    # bits on another CPU (other SIMD kernels): within 1.5e-5 relative (1e-6 absolute for scores near 0)
    # they are the same decision input; a price then may flip at its 4th decimal (a rounding boundary),
    # which the price check above allows (±0.0001) and the win token's micro-dollars likewise (±100).
    ei, ai = e.get("inputs", []), a.get("inputs", [])
    for x_inp, y_inp in zip(ei, ai, strict=False):
        for xb, yb in zip(x_inp["bids"], y_inp["bids"], strict=False):
            for i in (6, 7):
                if len(xb) > i and len(yb) > i and isinstance(xb[i], float) and isinstance(yb[i], float):
                    if math.isclose(xb[i], yb[i], rel_tol=1.5e-5, abs_tol=1e-6):
                        yb[i] = xb[i]
    for x, y in zip(eb, ab, strict=False):
        for xt, yt in zip(x.get("tokens", []), y.get("tokens", []), strict=False):
            if xt and yt and xt[0] == yt[0] == "win" and isinstance(xt[-1], int) and isinstance(yt[-1], int) \
                    and abs(xt[-1] - yt[-1]) <= 100:
                yt[-1] = xt[-1]
    if e != a:
        problems.append(f"expected {json.dumps(e, sort_keys=True)}\n     got {json.dumps(a, sort_keys=True)}")
    return problems


def load_corpus(path: Path = CORPUS) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
