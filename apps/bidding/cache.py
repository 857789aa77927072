"""Two-tier user state for the bid path (docs/RULES.md §1 steps 2-3).

L1 is an in-process LRU (``BID_L1_MAX_ENTRIES``, TTL ``BID_L1_TTL_SECONDS``) of ``UserState``:
the profile (``apps.core.profiles`` layout) in the form the feature builder wants, plus the user's
won impressions of the last 24 hours. L2 is Redis: the profile hash and the user's frequency
sorted set (``freq_key``), read together in one pipelined round trip on an L1 miss. L1 stays fresh
through announcements, never through reads: ``profiles:changed`` drops an entry, ``bidding:wins``
appends a won impression to it.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict

import numpy as np

from apps.core import redis as redis_store
from apps.core.profiles import PROFILE_FIELDS, profile_key

ANONYMOUS = "anonymous"
FREQ_WINDOW_SECONDS = 86400
HOUR = 3600.0
TIERS = ("green", "gold", "reserve")
TIER_BOOST = {"green": 1.0, "gold": 1.15, "reserve": 1.30}
ZERO_INTERESTS = np.zeros(64, dtype=np.float32)
ZERO_LOYALTY = np.zeros(8, dtype=np.float32)
ZERO_INTERESTS.setflags(write=False)
ZERO_LOYALTY.setflags(write=False)


def freq_key(user_id: str, *, cluster: bool = False) -> str:
    """The user's won impressions of the last 24 h (sorted set: member ``bid_id:campaign_id``, score
    the win's unix time). ``freq:<id>`` on a single Redis. On a Redis Cluster ``{profile:<id>}:freq``:
    hash-tagged by the name of the user's profile key, so both keys of an L1 miss live on one master
    and the read is one request to one server instead of one to each of two (measured in
    bench/README.md "Redis Cluster"). An id holding ``{`` or ``}`` may tag it elsewhere: its two keys
    may then sit on two masters, read just as correctly. ``legacy_freq_key`` is the cluster's old name
    (``migrate_legacy_freq`` folds it)."""
    return f"{{profile:{user_id}}}:freq" if cluster else f"freq:{user_id}"


LEGACY_FREQ_PATTERN = "freq:*"  # on a cluster: the names before the hash tag (single Redis: today's)


def legacy_freq_key(user_id: str) -> str:
    return f"freq:{user_id}"


class UserState:
    """What the bid path knows about one user. ``wins`` holds ``(unix_ts, campaign_id)`` pairs."""

    __slots__ = ("user_id", "tier", "interests", "segments", "loyalty", "recency", "wins", "loaded_at",
                 "known", "base_row")

    def __init__(self, user_id: str, *, tier: str = "green", interests=ZERO_INTERESTS, segments=(),
                 loyalty=ZERO_LOYALTY, recency: float = 0.0, wins=None, known: bool = False, loaded_at: float = 0.0):
        self.user_id = user_id
        self.tier = tier
        self.interests = interests
        self.segments = segments
        self.loyalty = loyalty
        self.recency = recency
        self.wins: list[tuple[float, int]] = wins if wins is not None else []
        self.known = known
        self.loaded_at = loaded_at
        self.base_row = None  # the profile part of the feature row, built on first use

    def counts(self, now: float) -> tuple[int, int]:
        """Impressions won in the last hour and the last 24 hours (old entries are pruned)."""
        wins = self.wins
        if not wins:
            return 0, 0
        day_ago = now - FREQ_WINDOW_SECONDS
        if wins[0][0] <= day_ago:
            wins[:] = [w for w in wins if w[0] > day_ago]
        hour_ago = now - HOUR
        last_hour = 0
        for ts, _ in wins:
            if ts > hour_ago:
                last_hour += 1
        return last_hour, len(wins)

    def campaign_counts(self, now: float) -> dict[int, tuple[int, int]]:
        """``{campaign_id: (last hour, last day)}`` for per-campaign caps."""
        out: dict[int, tuple[int, int]] = {}
        hour_ago = now - HOUR
        day_ago = now - FREQ_WINDOW_SECONDS
        for ts, cid in self.wins:
            if ts <= day_ago:
                continue
            h, d = out.get(cid, (0, 0))
            out[cid] = (h + (ts > hour_ago), d + 1)
        return out

    def add_win(self, ts: float, campaign_id: int) -> None:
        wins = self.wins
        if wins and ts < wins[-1][0]:
            wins.append((ts, campaign_id))
            wins.sort()
        else:
            wins.append((ts, campaign_id))


def default_state(user_id: str) -> UserState:
    """Green tier, no history (docs/RULES.md §1 step 2)."""
    return UserState(user_id)


def _floats(value, size: int, default: np.ndarray) -> np.ndarray:
    if not isinstance(value, list) or not value:
        return default
    try:
        arr = np.asarray(value[:size], dtype=np.float32)
    except (TypeError, ValueError):
        return default
    if arr.ndim != 1 or not np.isfinite(arr).all():
        return default
    if arr.shape[0] < size:
        arr = np.concatenate([arr, np.zeros(size - arr.shape[0], np.float32)])
    arr.setflags(write=False)
    return arr


def state_from_redis(user_id: str, profile: dict, freq: list, now: float) -> UserState:
    """Build a ``UserState`` from an ``HGETALL profile:{id}`` answer (already decoded) and a
    ``ZRANGEBYSCORE freq:{id} ... WITHSCORES`` answer (members ``bid_id:campaign_id``).
    Malformed fields fall back to defaults field by field: one bad writer never breaks bidding."""
    wins: list[tuple[float, int]] = []
    for member, score in freq:
        if isinstance(member, bytes):
            member = member.decode("utf-8", "replace")
        _, _, cid = member.rpartition(":")
        try:
            wins.append((float(score), int(cid)))
        except ValueError:
            continue
    wins.sort()
    if not profile:
        return UserState(user_id, wins=wins, known=False, loaded_at=now)
    tier = profile.get("loyalty_tier")
    tier = tier.lower() if isinstance(tier, str) and tier.lower() in TIERS else "green"
    segments = profile.get("segments")
    if isinstance(segments, list):
        segments = tuple(s for s in segments if isinstance(s, int) and not isinstance(s, bool) and s >= 0)
    else:
        segments = ()
    recency = profile.get("recency")
    recency = float(recency) if isinstance(recency, (int, float)) and not isinstance(recency, bool) and np.isfinite(recency) else 0.0
    return UserState(
        user_id,
        tier=tier,
        interests=_floats(profile.get("interests"), 64, ZERO_INTERESTS),
        segments=segments,
        loyalty=_floats(profile.get("loyalty"), 8, ZERO_LOYALTY),
        recency=recency,
        wins=wins,
        known=True,
        loaded_at=now,
    )


def decode_profile_hash(raw: dict) -> dict:
    """Like ``apps.core.profiles.profile_decode`` but a field that is not JSON is skipped, not fatal."""
    import orjson

    out: dict = {}
    for name, value in raw.items():
        key = name.decode() if isinstance(name, bytes) else name
        if key in PROFILE_FIELDS:
            try:
                out[key] = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
    return out


async def load_from_redis(aclient, user_id: str, now: float, *, timeout: float | None = None) -> UserState:
    """One round trip: the profile hash and the last 24 h of won impressions. ``aclient`` is the
    bid path's ``apps.bidding.l2.L2Client`` (or ``ClusterL2Client``) or a ``redis.asyncio`` client.
    ``timeout`` (seconds) bounds the read: ``asyncio.TimeoutError`` past it. ``L2Client`` bounds its
    own reply (one timer on the reply's future); the others run inside ``asyncio.timeout``."""
    if timeout is not None and getattr(aclient, "bounds_reads", False):
        raw_profile, freq = await aclient.profile_and_freq(user_id, now - FREQ_WINDOW_SECONDS, timeout=timeout)
        return state_from_redis(user_id, decode_profile_hash(raw_profile) if raw_profile else {}, freq, now)
    if timeout is not None:
        async with asyncio.timeout(timeout):
            return await load_from_redis(aclient, user_id, now)
    if hasattr(aclient, "profile_and_freq"):
        raw_profile, freq = await aclient.profile_and_freq(user_id, now - FREQ_WINDOW_SECONDS)
        return state_from_redis(user_id, decode_profile_hash(raw_profile) if raw_profile else {}, freq, now)
    pipe = aclient.pipeline(transaction=False)
    pipe.hgetall(profile_key(user_id))
    pipe.zrangebyscore(freq_key(user_id, cluster=redis_store.is_cluster(aclient)), now - FREQ_WINDOW_SECONDS,
                       "+inf", withscores=True)
    raw_profile, freq = await pipe.execute()
    return state_from_redis(user_id, decode_profile_hash(raw_profile) if raw_profile else {}, freq, now)


class L1Cache:
    """Bounded LRU of ``UserState`` with a TTL, plus in-flight tracking so an announcement that
    arrives while a user's L2 read is under way keeps the (possibly stale) result out of L1."""

    def __init__(self, *, max_entries: int, ttl_seconds: float):
        self.max_entries = max(1, max_entries)
        self.ttl = ttl_seconds
        self._data: OrderedDict[str, UserState] = OrderedDict()
        self._inflight: dict[str, bool] = {}

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._data

    def get(self, user_id: str, now: float) -> UserState | None:
        state = self._data.get(user_id)
        if state is None:
            return None
        if now - state.loaded_at > self.ttl:
            del self._data[user_id]
            return None
        self._data.move_to_end(user_id)
        return state

    def begin_load(self, user_id: str) -> None:
        self._inflight[user_id] = False

    def finish_load(self, user_id: str, state: UserState | None) -> None:
        """Store ``state`` unless an announcement for this user arrived during the load."""
        stale = self._inflight.pop(user_id, True)
        if state is not None and not stale:
            self.put(state)

    def put(self, state: UserState) -> None:
        data = self._data
        data[state.user_id] = state
        data.move_to_end(state.user_id)
        while len(data) > self.max_entries:
            data.popitem(last=False)

    def drop(self, user_id: str) -> None:
        self._data.pop(user_id, None)
        if user_id in self._inflight:
            self._inflight[user_id] = True

    def record_win(self, user_id: str, ts: float, campaign_id: int) -> None:
        state = self._data.get(user_id)
        if state is not None:
            state.add_win(ts, campaign_id)
        if user_id in self._inflight:
            self._inflight[user_id] = True

    def clear(self) -> None:
        """Forget everything (after a lost pub/sub connection we may have missed announcements)."""
        self._data.clear()
        for user_id in self._inflight:
            self._inflight[user_id] = True
