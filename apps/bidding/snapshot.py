"""The in-memory snapshot of live offers the bid path reads (docs/RULES.md §1 step 4; docs/DESIGN.md "The hot path").

``offer_snapshot_refresh()`` (``apps.bidding.services``, the only part that touches the ORM) turns
the biddable campaigns into ``OfferRow`` records plus their precomputed 64 offer features, and
``publish_snapshot`` stores the encoded blob in Redis and announces its version on
``SNAPSHOT_CHANNEL``. Every bidder process then runs ``load_snapshot`` and swaps in a new
``Snapshot`` — an immutable object with the indexes candidate generation needs — so a request that
already holds the old one finishes on it.

Nothing in this module imports Django: bidders read Redis, never Postgres.
"""
from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec
import numpy as np

from apps.core import redis as redis_store
from apps.core.countries import normalise_country

SNAPSHOT_KEY = "bidding:snapshot"
SNAPSHOT_SEQ_KEY = "bidding:snapshot:seq"
SNAPSHOT_CHANNEL = "bidding:snapshot"
EXHAUSTED_KEY = "bidding:exhausted"  # set of campaign ids whose spend reached their budget
BUDGET_CHANNEL = "bidding:budget"  # campaign id whose budget just ran out
WINS_CHANNEL = "bidding:wins"  # [user_id, ts, campaign_id] of each counted impression
N_OFFER_FEATURES = 64
MAX_CACHED_KEYS = 4096

DEVICE_BITS = {"desktop": 1, "mobile": 2, "tablet": 4, "ctv": 8}
FORMATS = ("banner", "video", "native")
MTYPE = {"banner": 1, "video": 2, "native": 4}


class OfferRow(msgspec.Struct, frozen=True):
    """One live offer with everything the bid path needs (money as float CPM / integer micros)."""

    offer_id: int
    campaign_id: int
    name: str
    advertiser: str
    markup: str
    width: int
    height: int
    format: str
    landing_url: str
    adomain: str
    category: str
    max_bid_cpm: float
    priority: int
    observed_ctr: float
    countries: list[str]
    device_types: list[str]
    segments: list[int]
    start_at: float
    end_at: float
    budget_micros: int
    max_per_hour: int
    max_per_day: int


class SnapshotBlob(msgspec.Struct):
    version: int
    built_at: float
    offers: list[OfferRow]
    features: bytes  # float32 C-order [len(offers), 64]
    exhausted: list[int]


_blob_encoder = msgspec.msgpack.Encoder()
_blob_decoder = msgspec.msgpack.Decoder(SnapshotBlob)


def order_offers(rows: Iterable[OfferRow]) -> list[OfferRow]:
    """Best priority first (docs/RULES.md §1 step 4: at most BID_BATCH_SIZE candidates, best priority first)."""
    return sorted(rows, key=lambda r: (-r.priority, r.offer_id))


def encode_blob(*, version: int, offers: list[OfferRow], features: np.ndarray, exhausted: Iterable[int]) -> bytes:
    feats = np.ascontiguousarray(features, dtype=np.float32)
    if feats.shape != (len(offers), N_OFFER_FEATURES):
        raise ValueError(f"features must have shape ({len(offers)}, {N_OFFER_FEATURES}), got {feats.shape}")
    blob = SnapshotBlob(version=version, built_at=time.time(), offers=list(offers), features=feats.tobytes(),
                        exhausted=sorted(set(exhausted)))
    return _blob_encoder.encode(blob)


def decode_blob(raw: bytes) -> SnapshotBlob:
    return _blob_decoder.decode(raw)


class OfferEntry:
    """An offer as the hot path sees it: targeting pre-parsed into sets and bitmasks."""

    __slots__ = (
        "index", "row", "offer_id", "adid", "campaign_id", "cid", "crid", "format", "size", "mtype",
        "max_bid", "device_mask", "countries", "segments", "category", "category_parent", "adomain",
        "adomain_list", "cat_list", "start_at", "end_at", "budget_micros", "max_per_hour", "max_per_day",
        "cat_keys", "domain_keys", "serve_inputs",
    )

    def __init__(self, index: int, row: OfferRow):
        self.index = index
        self.row = row
        self.offer_id = row.offer_id
        self.adid = str(row.offer_id)
        self.campaign_id = row.campaign_id
        self.cid = str(row.campaign_id)
        self.crid = f"cr-{row.offer_id}"
        self.format = row.format if row.format in FORMATS else "banner"
        self.size = (row.width, row.height)
        self.mtype = MTYPE[self.format]
        self.max_bid = float(row.max_bid_cpm)
        mask = 0
        for name in row.device_types:
            mask |= DEVICE_BITS.get(name, 0)
        self.device_mask = mask
        countries = {c for c in (normalise_country(code) for code in row.countries) if c}
        # A targeting list whose every entry is unknown matches nothing rather than everything.
        self.countries = frozenset(countries) if row.countries else None
        self.segments = frozenset(row.segments) if row.segments else None
        self.category = row.category.strip().upper()
        self.category_parent = self.category.split("-", 1)[0]
        self.adomain = row.adomain.strip().lower()
        # What bcat / badv entries block this offer: its category and tier-1 parent ("IAB7-39", "IAB7"),
        # its domain and each parent domain ("www.shop.com", "shop.com"; never a bare TLD).
        self.cat_keys = frozenset({self.category, self.category_parent} - {""})
        parts = self.adomain.split(".")
        self.domain_keys = frozenset(".".join(parts[i:]) for i in range(max(len(parts) - 1, 1))) if self.adomain else frozenset()
        self.adomain_list = [self.adomain] if self.adomain else None
        self.cat_list = [row.category] if row.category else None
        self.start_at = row.start_at
        self.end_at = row.end_at
        self.budget_micros = row.budget_micros
        self.max_per_hour = row.max_per_hour
        self.max_per_day = row.max_per_day
        # what a bid on this offer logs about it (apps.analytics.bid_inputs): made once, atomic values only
        self.serve_inputs = (self.cid, self.adid, row.category, float(row.max_bid_cpm), float(row.observed_ctr),
                             row.format)


class Snapshot:
    """An immutable view of the live offers with the indexes candidate generation uses."""

    def __init__(self, *, version: int, built_at: float, offers: list[OfferRow], features: np.ndarray,
                 exhausted: Iterable[int] = ()):
        self.version = version
        self.built_at = built_at
        self.entries = [OfferEntry(i, row) for i, row in enumerate(offers)]
        feats = np.ascontiguousarray(features, dtype=np.float32).reshape(len(offers), N_OFFER_FEATURES)
        feats.setflags(write=False)
        self.features = feats
        self.max_bids = np.array([e.max_bid for e in self.entries], dtype=np.float64)
        self.exhausted = frozenset(exhausted)
        by_size: dict[tuple[int, int], list[int]] = {}
        videos: list[int] = []
        natives: list[int] = []
        for entry in self.entries:
            if entry.format == "banner":
                by_size.setdefault(entry.size, []).append(entry.index)
            elif entry.format == "video":
                videos.append(entry.index)
            else:
                natives.append(entry.index)
        self.banners_by_size = {size: tuple(ix) for size, ix in by_size.items()}
        self.videos = tuple(videos)
        self.natives = tuple(natives)
        self.budgets = {e.campaign_id: e.budget_micros for e in self.entries}
        self.by_offer_id = {e.offer_id: e for e in self.entries}
        offers_of: dict[int, set[int]] = {}
        for entry in self.entries:
            offers_of.setdefault(entry.campaign_id, set()).add(entry.index)
        self.offers_of_campaign = {cid: frozenset(ix) for cid, ix in offers_of.items()}
        self.segment_targeted = frozenset(e.index for e in self.entries if e.segments is not None)
        # Targeting that depends only on the request's device and country, and on the clock: cached per
        # (device, country) until the next campaign start or end in the snapshot.
        self._eligible: dict[tuple[int, str | None], frozenset[int]] = {}
        self._eligible_until = 0.0
        self._blocked: dict[tuple, frozenset[int]] = {}

    def eligible(self, device_bit: int, country: str | None, now: float) -> frozenset[int]:
        """Offers inside their schedule window whose device and country targeting admit this request."""
        if now >= self._eligible_until:
            self._eligible = {}
            upcoming = [t for e in self.entries for t in (e.start_at, e.end_at) if t > now]
            self._eligible_until = min(upcoming) if upcoming else float("inf")
        key = (device_bit, country)
        found = self._eligible.get(key)
        if found is None:
            found = frozenset(
                e.index for e in self.entries
                if e.start_at <= now < e.end_at
                and (not e.device_mask or e.device_mask & device_bit)
                and (e.countries is None or country in e.countries)
            )
            if len(self._eligible) >= MAX_CACHED_KEYS:
                self._eligible = {}
            self._eligible[key] = found
        return found

    def blocked(self, bcat: tuple[str, ...], badv: tuple[str, ...]) -> frozenset[int]:
        """Offers a request's ``bcat`` (category or its tier-1 parent) or ``badv`` (domain or a parent
        domain) rule out. Exchanges repeat the same lists per publisher, so results are cached."""
        key = (bcat, badv)
        found = self._blocked.get(key)
        if found is None:
            cats = frozenset(c.strip().upper() for c in bcat)
            domains = frozenset(d.strip().lower() for d in badv)
            found = frozenset(
                e.index for e in self.entries
                if not cats.isdisjoint(e.cat_keys) or not domains.isdisjoint(e.domain_keys)
            )
            if len(self._blocked) >= MAX_CACHED_KEYS:
                self._blocked = {}
            self._blocked[key] = found
        return found

    def offers_of(self, campaign_ids) -> frozenset[int]:
        out: set[int] = set()
        for cid in campaign_ids:
            out |= self.offers_of_campaign.get(cid, frozenset())
        return frozenset(out)

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_blob(cls, blob: SnapshotBlob) -> "Snapshot":
        features = np.frombuffer(blob.features, dtype=np.float32)
        return cls(version=blob.version, built_at=blob.built_at, offers=blob.offers,
                   features=features.reshape(len(blob.offers), N_OFFER_FEATURES), exhausted=blob.exhausted)

    @classmethod
    def empty(cls) -> "Snapshot":
        return cls(version=0, built_at=0.0, offers=[], features=np.zeros((0, N_OFFER_FEATURES), np.float32))


def compute_offer_features(rows: list[OfferRow]) -> np.ndarray:
    """The 64 offer features of every row (``apps.inference.features.offer_features``), once per snapshot."""
    from apps.inference.features import offer_features

    out = np.zeros((len(rows), N_OFFER_FEATURES), dtype=np.float32)
    for i, row in enumerate(rows):
        out[i] = offer_features(category=row.category, max_bid_cpm=row.max_bid_cpm,
                                observed_ctr=row.observed_ctr, creative_format=row.format)
    return out


# --- Redis ---------------------------------------------------------------------------------------

# Store the blob only when its sequence number is newer than the stored one, so a refresh that read
# the database earlier can never overwrite one that read it later.
_PUBLISH_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'blob', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""

def spend_total_key(campaign_id: int) -> str:
    """``apps.bidding.wins.spend_total_key`` (hash-tagged by the campaign); here too, as wins imports this module."""
    return f"spend:{{c:{campaign_id}}}:total"


# Recompute the exhausted set for campaigns whose budget may have changed: a campaign is exhausted
# when its running spend total has reached its budget. Arguments come in (campaign_id, budget) pairs.
# Single Redis only: it reads keys it does not declare (a cluster refuses that; see exhausted_campaigns).
_EXHAUSTED_LUA = """
local out = {}
for i = 1, #ARGV, 2 do
  local cid = ARGV[i]
  local budget = tonumber(ARGV[i + 1])
  local total = tonumber(redis.call('GET', 'spend:{c:' .. cid .. '}:total') or '0')
  if total >= budget then
    redis.call('SADD', KEYS[1], cid)
    table.insert(out, cid)
  else
    redis.call('SREM', KEYS[1], cid)
  end
end
return out
"""


def next_version(client) -> int:
    """Reserve a snapshot sequence number (call before reading the database)."""
    return int(client.incr(SNAPSHOT_SEQ_KEY))


def seed_spend_totals(client, totals: dict[int, int]) -> None:
    """Initialise ``spend:{c:<cid>}:total`` from the database where Redis has none (first run, lost data)."""
    if not totals:
        return
    with client.pipeline(transaction=False) as pipe:
        for cid, micros in totals.items():
            pipe.set(spend_total_key(cid), int(micros), nx=True)
        pipe.execute()


def exhausted_campaigns(client, budgets: dict[int, int]) -> list[int]:
    if not budgets:
        return []
    if redis_store.is_cluster(client):
        return _exhausted_campaigns_cluster(client, budgets)
    args: list = []
    for cid, budget in budgets.items():
        args += [cid, budget]
    return [int(x) for x in client.eval(_EXHAUSTED_LUA, 1, EXHAUSTED_KEY, *args)]


def _exhausted_campaigns_cluster(client, budgets: dict[int, int]) -> list[int]:
    """The exhausted set recomputed without one script over every slot, by ordering: a win ``INCRBY``s
    the total, then ``SADD``s the set. Here: read the totals, add the exhausted, remove the others,
    then read again the totals of those removed and add back any that a win pushed over its budget
    meanwhile — whichever of a win's two steps comes after our ``SREM``, the campaign ends in the set."""
    ids = list(budgets)
    totals = redis_store.mget(client, [spend_total_key(cid) for cid in ids])
    over = [cid for cid, total in zip(ids, totals, strict=True) if int(total or 0) >= budgets[cid]]
    under = [cid for cid in ids if cid not in set(over)]
    if over:
        client.sadd(EXHAUSTED_KEY, *over)
    if under:
        client.srem(EXHAUSTED_KEY, *under)
        again = redis_store.mget(client, [spend_total_key(cid) for cid in under])
        back = [cid for cid, total in zip(under, again, strict=True) if int(total or 0) >= budgets[cid]]
        if back:
            client.sadd(EXHAUSTED_KEY, *back)
            over += back
    return over


def publish_snapshot(client, *, version: int, offers: list[OfferRow], features: np.ndarray | None = None) -> bool:
    """Store and announce a snapshot (sync client). False when a newer one is already stored."""
    offers = order_offers(offers)
    if features is None:
        features = compute_offer_features(offers)
    budgets: dict[int, int] = {}
    for row in offers:
        budgets[row.campaign_id] = row.budget_micros
    exhausted = exhausted_campaigns(client, budgets)
    blob = encode_blob(version=version, offers=offers, features=features, exhausted=exhausted)
    return bool(client.eval(_PUBLISH_LUA, 1, SNAPSHOT_KEY, version, blob, redis_store.channel(SNAPSHOT_CHANNEL, client)))


async def fetch_snapshot(aclient, *, newer_than: int = -1) -> Snapshot | None:
    """Read the stored snapshot (asyncio client); None when none is stored or it is not newer."""
    version = await aclient.hget(SNAPSHOT_KEY, "version")
    if version is None or int(version) <= newer_than:
        return None
    raw = await aclient.hget(SNAPSHOT_KEY, "blob")
    if raw is None:
        return None
    blob = decode_blob(raw)
    exhausted = await aclient.smembers(EXHAUSTED_KEY)
    snap = Snapshot.from_blob(blob)
    if exhausted:
        snap.exhausted = snap.exhausted | {int(x) for x in exhausted}
    return snap
