"""Builders for the bidding tests: offers, snapshots, a model with known outputs, processors, requests.

The "golden" model is the documented seeded CoLaNet initialisation with its random units silenced:
only the CTR ladder and the max-bid ladder remain, so every output can be computed by hand —
``predicted_ctr`` is the ladder level of the offer's observed CTR and ``score`` grows with the
observed CTR, then with the max bid (see ``apps.inference.model.CoLaNetWeights.seeded``).
"""
from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import msgspec
import numpy as np

from apps.bidding import openrtb
from apps.bidding.conf import BidConfig
from apps.bidding.snapshot import OfferRow, Snapshot, compute_offer_features, order_offers
from apps.inference.model import SEED_BID_UNITS, SEED_CTR_UNITS, CoLaNetWeights
from apps.inference.runtime import InferenceRuntime
from config import env

SECRET = b"test-win-secret"
MIN_FRACTION = 0.5
REFERENCE_CTR = 0.05
BOOST = {"green": 1.0, "gold": 1.15, "reserve": 1.30}
_ids = itertools.count(1000)


def make_row(**overrides) -> OfferRow:
    """A live 300x250 banner offer (any country, device, segment) unless overridden."""
    now = time.time()
    offer_id = overrides.pop("offer_id", next(_ids))
    values = dict(
        offer_id=offer_id, campaign_id=overrides.pop("campaign_id", offer_id), name=f"offer {offer_id}",
        advertiser="Acme", markup=f'<img src="https://cdn.example.com/{offer_id}.png">', width=300, height=250,
        format="banner", landing_url=f"https://shop.example.com/o/{offer_id}", adomain="shop.example.com",
        category="IAB22-1", max_bid_cpm=4.0, priority=5, observed_ctr=0.02, countries=[], device_types=[],
        segments=[], start_at=now - 60, end_at=now + 86400, budget_micros=1_000_000_000, max_per_hour=10,
        max_per_day=50,
    )
    values.update(overrides)
    return OfferRow(**values)


def make_snapshot(rows: list[OfferRow], *, version: int = 1, exhausted=()) -> Snapshot:
    rows = order_offers(rows)
    return Snapshot(version=version, built_at=time.time(), offers=rows, features=compute_offer_features(rows),
                    exhausted=exhausted)


def golden_weights(version: str = "golden-1") -> CoLaNetWeights:
    base = CoLaNetWeights.seeded(seed=7, hidden=SEED_CTR_UNITS + SEED_BID_UNITS + 1)
    W2 = np.array(base.W2)
    W2[SEED_CTR_UNITS + SEED_BID_UNITS:, :] = 0.0  # silence the random unit
    return CoLaNetWeights(W1=base.W1, b1=base.b1, theta=base.theta, W2=W2, b2=base.b2, version=version)


def _ladder(value: float, units: int) -> int:
    return sum(1 for j in range(units) if value > (j + 0.5) / units)


def expected_ctr(observed_ctr: float) -> float:
    k = _ladder(min(observed_ctr / 0.05, 1.0), SEED_CTR_UNITS)
    return 0.05 * max(k, 0.25) / SEED_CTR_UNITS


def expected_score(observed_ctr: float, max_bid: float) -> float:
    k = _ladder(min(observed_ctr / 0.05, 1.0), SEED_CTR_UNITS)
    m = _ladder(min(max_bid / 50.0, 1.0), SEED_BID_UNITS)
    return math.tanh(-0.8 + 1.6 * k / SEED_CTR_UNITS + 0.4 * m / SEED_BID_UNITS)


def expected_price(max_bid: float, observed_ctr: float, tier: str = "green") -> float:
    ratio = min(expected_ctr(observed_ctr) / REFERENCE_CTR, 1.0)
    return round(min(max_bid * (MIN_FRACTION + (1 - MIN_FRACTION) * ratio) * BOOST[tier], max_bid), 4)


def golden_runtime(model_dir: Path, weights: CoLaNetWeights | None = None) -> InferenceRuntime:
    model_dir.mkdir(parents=True, exist_ok=True)
    w = weights or golden_weights()
    w.to_npz(model_dir / f"colanet-{w.version}.npz")
    runtime = InferenceRuntime(model_dir=model_dir)
    runtime.load()
    return runtime


def bid_config(**overrides) -> BidConfig:
    values = dict(win_secret=SECRET, request_sample_rate=0.0, min_bid_fraction=MIN_FRACTION,
                  public_base_url="http://bid.test", redis_url=env.env_str("REDIS_URL", env.REDIS_URL),
                  gc_freeze_seconds=0)
    values.update(overrides)
    return BidConfig(**values)


class EventRecorder:
    """Captures what the processor hands to the analytics emitter."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []
        self.records: list[tuple[str, tuple]] = []

    def __call__(self, event_type: str, **fields):
        self.events.append((event_type, fields))

    def record(self, kind: str, values: tuple):
        """The processor's ``emit_inputs`` (serve-time inputs of each bid)."""
        self.records.append((kind, values))

    def of(self, event_type: str) -> list[dict]:
        return [fields for kind, fields in self.events if kind == event_type]




def bid_request(*, imps=None, user_id: str | None = "user-1", country: str | None = "USA", devicetype: int | None = 2,
                **extra) -> openrtb.BidRequest:
    """A decoded request (site traffic, one 300x250 impression unless ``imps`` is given)."""
    body = {
        "id": extra.pop("id", "req-1"),
        "imp": imps if imps is not None else [{"id": "1", "banner": {"w": 300, "h": 250}}],
        "site": {"id": "site-1", "domain": "news.example.com"},
    }
    device = {}
    if devicetype is not None:
        device["devicetype"] = devicetype
    if country is not None:
        device["geo"] = {"country": country}
    if device:
        body["device"] = device
    if user_id is not None:
        body["user"] = {"id": user_id}
    body.update(extra)
    return openrtb.decode_request(msgspec.json.encode(body))
