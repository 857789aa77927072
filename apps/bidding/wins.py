"""Win notices (``nurl``) and clicks: count the impression and the spend once per bid id.

Keys are hash-tagged by the campaign (``{c:<id>}``) whose atomicity they need: the win marker
``win:{c:<cid>}:<bid_id>``, the running total ``spend:{c:<cid>}:total`` and the not-yet-flushed
spend ``spend:{c:<cid>}:pending`` (integer micro-dollars) share one slot. A bid belongs to exactly
one campaign (the signed token says which), so the marker that makes a win count once can live in
the campaign's slot, atomic with the spend it guards.

On a single Redis a win is one Lua script, atomically: ``SET`` the marker ``NX`` (idempotency),
``INCRBY`` total and pending, ``SADD spend:dirty``, ``ZADD`` the impression to ``freq:{user_id}``
(frequency caps: last hour / last day), ``PUBLISH`` it on ``bidding:wins`` so every bidder updates
its L1 copy; when the total reaches the campaign's budget the campaign joins ``bidding:exhausted``
and ``bidding:budget`` announces it: every bidder stops bidding for it at once, with no Redis read
per bid request.

On a Redis Cluster those keys live in different slots (campaign, user, global), so the same win is
a sequence of single-slot steps, ordered so that a crash or a retried notice between any two of them
leaves every invariant intact (tests/bidding/test_cluster_wins.py):

1. campaign slot, one script: marker ``SET NX`` and, only if it was set, both ``INCRBY``. Spend is
   exact per campaign and idempotent per bid: the marker and the money move together or not at all.
2. after 1, concurrently: ``SADD spend:dirty`` (after the pending increment, so the flush, which
   removes a campaign from the set *before* claiming its pending spend, never strands it); the user
   slot script on ``{profile:<user_id>}:freq`` (the profile's slot, ``apps.bidding.cache.freq_key``:
   ``ZADD`` member ``bid_id:cid`` — the same member again is a no-op — trim, expire,
   and ``PUBLISH`` only when step 1 counted the win); the exhausted script (``SADD`` then ``PUBLISH``
   only when the campaign was not in the set yet).

A retried notice whose step 1 finds the marker is a duplicate: it counts nothing and announces
nothing, but re-runs the idempotent steps of 2, which completes a win a crash interrupted.

``apps.bidding.services.spend_flush`` later moves the pending spend to Postgres exactly once.
The key names changed with the cluster work (issue 20): ``spend:total:<cid>``,
``spend:pending:<cid>`` and ``win:<bid_id>`` are the legacy names — the spend flush and the snapshot
refresh fold legacy spend into the new keys (``migrate_legacy_spend``), and the single-Redis script
still honours a legacy ``win:<bid_id>`` marker, so a rolling deployment neither loses nor double
counts a win.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson
import structlog

from apps.bidding import metrics
from apps.bidding.cache import ANONYMOUS, FREQ_WINDOW_SECONDS, freq_key
from apps.bidding.snapshot import BUDGET_CHANNEL, EXHAUSTED_KEY, WINS_CHANNEL, spend_total_key
from apps.bidding.tokens import BadToken, WinToken, parse_win_token
from apps.core import redis as redis_store

log = structlog.get_logger(__name__)

SPEND_DIRTY_KEY = "spend:dirty"
WIN_KEY_TTL_SECONDS = 3 * 86400


def campaign_tag(campaign_id: int) -> str:
    """The hash tag of a campaign's keys: every one of them lands in the same cluster slot."""
    return f"{{c:{campaign_id}}}"


def spend_pending_key(campaign_id: int) -> str:
    return f"spend:{{c:{campaign_id}}}:pending"


def spend_inflight_key(campaign_id: int) -> str:
    """Hash batch id -> micros: the campaign's spend claimed by a flush but not yet in Postgres."""
    return f"spend:{{c:{campaign_id}}}:inflight"


def win_key(bid_id: str, campaign_id: int) -> str:
    return f"win:{{c:{campaign_id}}}:{bid_id}"


# The names before issue 20 (no hash tag); read only to fold what a running old version wrote.
def legacy_spend_total_key(campaign_id: int) -> str:
    return f"spend:total:{campaign_id}"


def legacy_spend_pending_key(campaign_id: int) -> str:
    return f"spend:pending:{campaign_id}"


def legacy_win_key(bid_id: str) -> str:
    return f"win:{bid_id}"


LEGACY_SPEND_INFLIGHT_KEY = "spend:inflight"  # one hash batch_id -> "campaign_id:micros" for every campaign


# Single Redis, one script.
# KEYS: win, spend total, spend pending, freq (or a dummy), dirty set, exhausted set, legacy win marker
# ARGV: ts, ttl, micros, member, budget micros, campaign id, track user (0/1), wins message, day window,
#       wins channel, budget channel (per database: apps.core.redis.channel)
_WIN_LUA = """
if redis.call('EXISTS', KEYS[7]) == 1 then return {0, 0, 0} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {0, 0, 0} end
local total = redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('INCRBY', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[5], ARGV[6])
if ARGV[7] == '1' then
  redis.call('ZADD', KEYS[4], ARGV[1], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[9])))
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[9]) + 3600)
  redis.call('PUBLISH', ARGV[10], ARGV[8])
end
local exhausted = 0
local budget = tonumber(ARGV[5])
if budget > 0 and total >= budget then
  if redis.call('SADD', KEYS[6], ARGV[6]) == 1 then
    redis.call('PUBLISH', ARGV[11], ARGV[6])
    exhausted = 1
  end
end
return {1, total, exhausted}
"""

# Cluster step 1, the campaign's slot. KEYS: win marker, spend total, spend pending. ARGV: ts, ttl, micros.
_WIN_CAMPAIGN_LUA = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return {0, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
local total = redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('INCRBY', KEYS[3], ARGV[3])
return {1, total}
"""

# Cluster step 2, the user's slot. KEYS: freq. ARGV: ts, member, day window, announce (0/1), channel, message.
_WIN_USER_LUA = """
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[3])))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) + 3600)
if ARGV[4] == '1' then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return 1
"""

# Cluster step 2, the exhausted set. KEYS: exhausted. ARGV: campaign id, budget channel.
_EXHAUST_LUA = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[1])
  return 1
end
return 0
"""


class WinRejected(ValueError):
    """A win notice we refuse; ``reason`` is a short code, the message says why."""

    def __init__(self, reason: str, message: str, status: int = 400):
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class WinResult:
    counted: bool  # False: the bid id was counted before (duplicate notice)
    token: WinToken
    win_price: Decimal
    spend_micros: int
    campaign_total_micros: int
    budget_exhausted: bool


def parse_price(raw: str | None) -> Decimal:
    """The clearing price the exchange substituted for ``${AUCTION_PRICE}`` (CPM, USD)."""
    if raw is None or raw == "":
        raise WinRejected("missing_price", "the win notice has no price")
    if "AUCTION_PRICE" in raw:
        raise WinRejected("macro_not_substituted", "the exchange did not substitute ${AUCTION_PRICE}")
    try:
        price = Decimal(raw)
    except InvalidOperation:
        raise WinRejected("bad_price", f"price {raw[:40]!r} is not a decimal number (encrypted prices are not supported)") from None
    if not price.is_finite() or price < 0:
        raise WinRejected("bad_price", f"price {raw[:40]!r} must be a finite number >= 0")
    return price


def spend_micros(win_price_cpm: Decimal) -> int:
    """One impression at a CPM clearing price, in micro-dollars: CPM / 1000 * 1e6."""
    return int((win_price_cpm * 1000).to_integral_value())


async def record_win(aclient, *, secret: bytes, token: str, price: str | None, now: float, max_age: int,
                     budget_for: Callable[[int], int | None] = lambda campaign_id: None) -> WinResult:
    """Verify and count one win notice. Raises ``WinRejected`` for a forged, stale or bad notice.

    ``budget_for(campaign_id)`` gives the campaign's budget in micro-dollars from the bidder's
    snapshot (None when unknown: then only the spend flush notices the budget is spent)."""
    try:
        t = parse_win_token(secret, token)
    except BadToken as exc:
        raise WinRejected("bad_token", f"win notice token rejected: {exc}", status=403) from None
    if now - t.issued_at > max_age:
        raise WinRejected("expired", f"win notice for bid {t.bid_id} is older than {max_age} s", status=410)
    win_price = parse_price(price)
    if win_price * 1_000_000 > t.bid_price_micros:
        raise WinRejected("price_above_bid", f"clearing price {win_price} is above our bid "
                                             f"{Decimal(t.bid_price_micros) / 1_000_000}")
    micros = spend_micros(win_price)
    budget_micros = budget_for(t.campaign_id)
    track_user = t.user_id != ANONYMOUS
    ts = repr(float(now))
    message = orjson.dumps([t.user_id, float(now), t.campaign_id]) if track_user else b""
    if redis_store.is_cluster(aclient):
        counted, total, exhausted = await _record_win_cluster(
            aclient, t, ts=ts, micros=micros, budget_micros=int(budget_micros or 0), message=message)
    else:
        counted, total, exhausted = await aclient.eval(
            _WIN_LUA, 7,
            win_key(t.bid_id, t.campaign_id), spend_total_key(t.campaign_id), spend_pending_key(t.campaign_id),
            freq_key(t.user_id) if track_user else "freq:-", SPEND_DIRTY_KEY, EXHAUSTED_KEY,
            legacy_win_key(t.bid_id),
            ts, WIN_KEY_TTL_SECONDS, micros, f"{t.bid_id}:{t.campaign_id}", int(budget_micros or 0), t.campaign_id,
            "1" if track_user else "0", message, FREQ_WINDOW_SECONDS,
            redis_store.channel(WINS_CHANNEL, aclient), redis_store.channel(BUDGET_CHANNEL, aclient),
        )
    if counted:
        metrics.WINS.inc()
        if exhausted:
            log.info("campaign_budget_exhausted", campaign_id=t.campaign_id, spent_micros=int(total),
                     budget_micros=budget_micros)
    else:
        metrics.WIN_DUPLICATES.inc()
    return WinResult(bool(counted), t, win_price, micros, int(total), bool(exhausted))


async def _record_win_cluster(aclient, t: WinToken, *, ts: str, micros: int, budget_micros: int,
                              message: bytes) -> tuple[int, int, int]:
    """The win as ordered single-slot steps (module docstring)."""
    counted, total = await win_campaign_step(aclient, t, ts=ts, micros=micros)
    exhausted = await win_follower_steps(aclient, t, counted=counted, total=total, ts=ts,
                                         budget_micros=budget_micros, message=message)
    return counted, total if counted else 0, exhausted


async def win_campaign_step(aclient, t: WinToken, *, ts: str, micros: int) -> tuple[int, int]:
    """Step 1, the campaign's slot: ``(counted, running total)``."""
    counted, total = await aclient.eval(
        _WIN_CAMPAIGN_LUA, 3, win_key(t.bid_id, t.campaign_id), spend_total_key(t.campaign_id),
        spend_pending_key(t.campaign_id), ts, WIN_KEY_TTL_SECONDS, micros)
    return int(counted), int(total)


async def win_follower_steps(aclient, t: WinToken, *, counted: int, total: int, ts: str, budget_micros: int,
                             message: bytes) -> int:
    """Step 2, after step 1 (also for a duplicate: each is idempotent, and a crash may have skipped
    them): the dirty mark, the user's frequency (announced only when counted), the exhausted set.
    Returns 1 when this win exhausted the campaign's budget."""
    channel_of = redis_store.channel
    followers = [aclient.sadd(SPEND_DIRTY_KEY, t.campaign_id)]
    if t.user_id != ANONYMOUS:
        followers.append(aclient.eval(
            _WIN_USER_LUA, 1, freq_key(t.user_id, cluster=redis_store.is_cluster(aclient)), ts,
            f"{t.bid_id}:{t.campaign_id}", FREQ_WINDOW_SECONDS, "1" if counted else "0",
            channel_of(WINS_CHANNEL, aclient), message))
    exhausting = budget_micros > 0 and total >= budget_micros
    if exhausting:
        followers.append(aclient.eval(_EXHAUST_LUA, 1, EXHAUSTED_KEY, t.campaign_id,
                                      channel_of(BUDGET_CHANNEL, aclient)))
    results = await asyncio.gather(*followers)
    return int(results[-1]) if exhausting and counted else 0
