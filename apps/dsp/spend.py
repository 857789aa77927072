"""Wins and spend in Redis: exact under concurrency, one Lua script per win notice.

``dsp:{p:<pid>}:win:<bid_id>`` is set once (``SET NX``): a repeated notice for the same bid is a
duplicate and counts nothing. A counted win adds to the platform's hour (``dsp:{p:<pid>}:spend:<hour>``:
``wins``, ``spend_micros``), marks the hour dirty for the Postgres flush, and when the hour's spend
reaches the hourly budget sets ``dsp:{p:<pid>}:over:<hour>`` and announces it on ``dsp:budget@<db>``:
every bid worker skips the platform (reason ``budget``) until the next hour.

The platform's keys share the hash tag ``{p:<pid>}``; on a Redis Cluster the script touches only
those, and the global ``dsp:spend:dirty`` is added after it (the flush pops the set *before* reading
the counters, so whichever way a win and a flush interleave the hour is copied now or stays dirty; the
copy is idempotent). On a single Redis the script also honours and folds in what a pre-issue-20
version wrote under ``dsp:win:<pid>:<bid>``, ``dsp:spend:<pid>:<hour>`` and ``dsp:over:<pid>:<hour>``.
"""
from __future__ import annotations

import dataclasses

from apps.core import redis as redis_store
from apps.dsp import platforms as keys

WIN_TTL_SECONDS = 8 * 86400
SPEND_TTL_SECONDS = 8 * 86400

# KEYS: win, spend hour, dirty set, over flag[, legacy win, legacy spend hour, legacy over flag (single Redis)]
# ARGV: hour, ttl, micros, dirty member, budget micros, budget channel, platform id
_WIN_LUA = """
if #KEYS > 4 then
  if redis.call('EXISTS', KEYS[5]) == 1 then
    redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
  end
  local old = redis.call('HMGET', KEYS[6], 'wins', 'spend_micros')
  if old[1] or old[2] then
    redis.call('HINCRBY', KEYS[2], 'wins', tonumber(old[1] or '0'))
    redis.call('HINCRBY', KEYS[2], 'spend_micros', tonumber(old[2] or '0'))
    redis.call('EXPIRE', KEYS[2], ARGV[2])
    redis.call('DEL', KEYS[6])
  end
  if redis.call('EXISTS', KEYS[7]) == 1 then
    redis.call('SET', KEYS[4], '1', 'NX', 'EX', 7200)
  end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  local h = redis.call('HMGET', KEYS[2], 'wins', 'spend_micros')
  return {0, tonumber(h[1] or '0'), tonumber(h[2] or '0'), 0}
end
local wins = redis.call('HINCRBY', KEYS[2], 'wins', 1)
local spend = redis.call('HINCRBY', KEYS[2], 'spend_micros', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if KEYS[3] ~= KEYS[2] then redis.call('SADD', KEYS[3], ARGV[4]) end
local over = 0
local budget = tonumber(ARGV[5])
if budget > 0 and spend >= budget then
  over = 1
  if redis.call('SET', KEYS[4], '1', 'NX', 'EX', 7200) then
    redis.call('PUBLISH', ARGV[6], ARGV[7])
  end
end
return {1, wins, spend, over}
"""


@dataclasses.dataclass(frozen=True)
class WinCount:
    counted: bool
    wins: int
    spend_micros: int
    over_budget: bool


def count_win(*, platform_id: int, bid_id: str, hour: int, spend_micros: int, budget_micros: int, client=None) -> WinCount:
    client = client or redis_store.client()
    argv = (hour, WIN_TTL_SECONDS, spend_micros, f"{platform_id}:{hour}", budget_micros,
            redis_store.channel(keys.BUDGET_CHANNEL, client), platform_id)
    win, hour_key, over = keys.win_key(platform_id, bid_id), keys.spend_key(platform_id, hour), keys.over_key(platform_id, hour)
    if redis_store.is_cluster(client):
        # the dirty set lives in another slot: the script passes the hour's own key in its place (no SADD),
        # and the set is marked after the counters moved
        result = client.eval(_WIN_LUA, 4, win, hour_key, hour_key, over, *argv)
        client.sadd(keys.SPEND_DIRTY_KEY, f"{platform_id}:{hour}")
    else:
        result = client.eval(_WIN_LUA, 7, win, hour_key, keys.SPEND_DIRTY_KEY, over,
                             keys.legacy_win_key(platform_id, bid_id), keys.legacy_spend_key(platform_id, hour),
                             keys.legacy_over_key(platform_id, hour), *argv)
    counted, wins, spend, over_budget = (int(x) for x in result)
    return WinCount(bool(counted), wins, spend, bool(over_budget))


def hour_totals(*, platform_id: int, hour: int, client=None) -> tuple[int, int]:
    client = client or redis_store.client()
    wins, spend = client.hmget(keys.spend_key(platform_id, hour), "wins", "spend_micros")
    if not redis_store.is_cluster(client):  # an hour an old version counted and no new win folded in yet
        old_wins, old_spend = client.hmget(keys.legacy_spend_key(platform_id, hour), "wins", "spend_micros")
        return int(wins or 0) + int(old_wins or 0), int(spend or 0) + int(old_spend or 0)
    return int(wins or 0), int(spend or 0)


def dirty_hours(*, limit: int = 1000, client=None) -> list[tuple[int, int]]:
    """Take up to ``limit`` (platform id, hour) pairs whose counters changed since the last flush."""
    client = client or redis_store.client()
    members = client.spop(keys.SPEND_DIRTY_KEY, limit) or []
    out = []
    for member in members:
        pid, hour = member.decode().split(":")
        out.append((int(pid), int(hour)))
    return out


def mark_dirty(pairs, client=None) -> None:
    client = client or redis_store.client()
    if pairs:
        client.sadd(keys.SPEND_DIRTY_KEY, *(f"{pid}:{hour}" for pid, hour in pairs))
