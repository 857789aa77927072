"""Win notices (``nurl``) and clicks: count the impression and the spend once per bid id.

A win is recorded by one Lua script, atomically: ``SET win:{bid_id} NX`` (idempotency), ``INCRBY``
the campaign's running spend total and its not-yet-flushed spend (integer micro-dollars), ``ZADD``
the impression to ``freq:{user_id}`` (frequency caps: last hour / last day), then ``PUBLISH`` it on
``bidding:wins`` so every bidder updates its L1 copy. When the running total reaches the campaign's
budget the campaign joins ``bidding:exhausted`` and ``bidding:budget`` announces it: every bidder
stops bidding for it at once, with no Redis read per bid request. ``apps.bidding.services.
spend_flush`` later moves the pending spend to Postgres exactly once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import orjson
import structlog

from apps.bidding import metrics
from apps.bidding.cache import ANONYMOUS, FREQ_WINDOW_SECONDS, freq_key
from apps.bidding.snapshot import BUDGET_CHANNEL, EXHAUSTED_KEY, WINS_CHANNEL
from apps.bidding.tokens import BadToken, WinToken, parse_win_token
from apps.core import redis as redis_store

log = structlog.get_logger(__name__)

SPEND_DIRTY_KEY = "spend:dirty"
WIN_KEY_TTL_SECONDS = 3 * 86400


def spend_total_key(campaign_id: int) -> str:
    return f"spend:total:{campaign_id}"


def spend_pending_key(campaign_id: int) -> str:
    return f"spend:pending:{campaign_id}"


def win_key(bid_id: str) -> str:
    return f"win:{bid_id}"


# KEYS: win, spend total, spend pending, freq (or a dummy), dirty set, exhausted set
# ARGV: ts, ttl, micros, member, budget micros, campaign id, track user (0/1), wins message, day window,
#       wins channel, budget channel (per database: apps.core.redis.channel)
_WIN_LUA = """
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
    counted, total, exhausted = await aclient.eval(
        _WIN_LUA, 6,
        win_key(t.bid_id), spend_total_key(t.campaign_id), spend_pending_key(t.campaign_id),
        freq_key(t.user_id) if track_user else "freq:-", SPEND_DIRTY_KEY, EXHAUSTED_KEY,
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
