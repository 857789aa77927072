"""A circuit breaker whose state lives in Redis, so every process sees the same vendor as down.

closed ──(``failure_threshold`` consecutive failures)──▶ open ──(``reset_seconds``)──▶ half-open:
exactly ONE caller is let through as the probe (others are refused) ──success──▶ closed, or
──failure──▶ open again for another ``reset_seconds``. A probe that never reports back (its process
died) is given up after another ``reset_seconds`` and a new probe is let through.

Each step is one Lua script on one hash, ``{outbound:<name>}:breaker`` (hash-tagged by name for
Redis Cluster), using the server's clock. Closed with no failures is "no key". If Redis cannot be
reached the breaker lets calls through and records nothing (``outbound_breaker_redis_errors_total``):
a breaker that fails closed would turn a Redis blip into a vendor outage.
"""
from __future__ import annotations

import asyncio
import weakref

import redis as redis_lib
import structlog
from prometheus_client import Counter

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]

log = structlog.get_logger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

BREAKER_TRANSITIONS = Counter("outbound_breaker_transitions_total", "Circuit breaker state changes", ["name", "to"])
BREAKER_REDIS_ERRORS = Counter(
    "outbound_breaker_redis_errors_total", "Circuit breaker calls that could not reach Redis", ["name"])

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# allow: ARGV reset ms. Returns {allowed 0|1, state after, transitioned-to or ''}.
_ALLOW = _NOW + """
local reset = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {1, 'closed', ''} end
local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
if now - since < reset then return {0, state, ''} end
-- open long enough, or a half-open probe that never reported back: this caller is the probe
redis.call('HSET', KEYS[1], 'state', 'half_open', 'since', now)
local moved = ''
if state ~= 'half_open' then moved = 'half_open' end
return {1, 'half_open', moved}
"""

# success: back to closed (the key goes). Returns the previous state.
_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'closed' end
redis.call('DEL', KEYS[1])
return state
"""

# failure: ARGV threshold, ttl ms. Returns {state after, transitioned-to or ''}.
_FAILURE = _NOW + """
local threshold = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'since', now, 'failures', threshold)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'open', 'open'}
end
if state == 'open' then return {'open', ''} end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'state', 'closed')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if failures >= threshold then
  redis.call('HSET', KEYS[1], 'state', 'open', 'since', now)
  return {'open', 'open'}
end
return {'closed', ''}
"""

# state: ARGV reset ms. An open breaker past its reset reads as half-open (the next allow() probes).
_STATE = _NOW + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'closed' end
if state == 'open' then
  local since = tonumber(redis.call('HGET', KEYS[1], 'since') or '0')
  if now - since >= tonumber(ARGV[1]) then return 'half_open' end
end
return state
"""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CircuitBreaker:
    """Shared breaker for one outbound target. ``redis`` is a sync or asyncio client (default: the
    process-wide ones for ``REDIS_URL``)."""

    def __init__(self, name: str, failure_threshold: int = 5, reset_seconds: float = 30, redis=None):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_seconds <= 0:
            raise ValueError("reset_seconds must be > 0")
        self.name = name
        self.failure_threshold = int(failure_threshold)
        self.reset_seconds = float(reset_seconds)
        self.key = f"{{outbound:{name}}}:breaker"
        self._reset_ms = int(self.reset_seconds * 1000)
        # failures older than a day are forgotten; an open state is refreshed by every failure
        self._ttl_ms = max(86_400_000, 4 * self._reset_ms)
        is_async = isinstance(redis, redis_lib.asyncio.Redis)
        self._redis = None if is_async else redis
        self._aredis_given = redis if is_async else None
        self._scripts: dict[str, object] = {}
        self._async_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- plumbing -----------------------------------------------------------------------------------
    def _sync_client(self):
        if self._redis is None:
            from apps.core import redis as redis_store

            self._redis = redis_store.client()
        return self._redis

    def _run(self, which: str, source: str, args: list):
        script = self._scripts.get(which)
        if script is None:
            script = self._scripts[which] = self._sync_client().register_script(source)
        return script(keys=[self.key], args=args)  # type: ignore[operator]

    async def _arun(self, which: str, source: str, args: list):
        loop = asyncio.get_running_loop()
        scripts = self._async_scripts.get(loop)
        if scripts is None:
            client = self._aredis_given
            if client is None:
                from apps.core import redis as redis_store

                client = redis_store.async_client()
            scripts = self._async_scripts[loop] = {"client": client}
        script = scripts.get(which)
        if script is None:
            script = scripts[which] = scripts["client"].register_script(source)
        return await script(keys=[self.key], args=args)

    def _redis_error(self, exc: Exception) -> None:
        BREAKER_REDIS_ERRORS.labels(self.name).inc()
        log.warning("outbound_breaker_redis_error", name=self.name, error=repr(exc))

    def _moved(self, to) -> None:
        to = _text(to)
        if to:
            BREAKER_TRANSITIONS.labels(self.name, to).inc()
            log.info("outbound_breaker_state", name=self.name, state=to)

    # --- sync ---------------------------------------------------------------------------------------
    def allow(self) -> bool:
        """May a call go out now? In half-open, True for exactly one caller (the probe)."""
        try:
            allowed, _state, moved = self._run("allow", _ALLOW, [self._reset_ms])
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return True
        self._moved(moved)
        return bool(int(allowed))

    def record_success(self) -> None:
        try:
            previous = _text(self._run("success", _SUCCESS, []))
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return
        if previous != CLOSED:
            self._moved(CLOSED)

    def record_failure(self) -> None:
        try:
            _state, moved = self._run("failure", _FAILURE, [self.failure_threshold, self._ttl_ms])
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return
        self._moved(moved)

    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (open past its reset: the next call is the probe)."""
        try:
            return _text(self._run("state", _STATE, [self._reset_ms]))
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return CLOSED

    def reset(self) -> None:
        """Close the breaker by hand (an admin action, tests)."""
        self._sync_client().delete(self.key)

    # --- asyncio ------------------------------------------------------------------------------------
    async def allow_async(self) -> bool:
        try:
            allowed, _state, moved = await self._arun("allow", _ALLOW, [self._reset_ms])
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return True
        self._moved(moved)
        return bool(int(allowed))

    async def record_success_async(self) -> None:
        try:
            previous = _text(await self._arun("success", _SUCCESS, []))
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return
        if previous != CLOSED:
            self._moved(CLOSED)

    async def record_failure_async(self) -> None:
        try:
            _state, moved = await self._arun("failure", _FAILURE, [self.failure_threshold, self._ttl_ms])
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return
        self._moved(moved)

    async def state_async(self) -> str:
        try:
            return _text(await self._arun("state", _STATE, [self._reset_ms]))
        except redis_lib.RedisError as exc:
            self._redis_error(exc)
            return CLOSED

    def __repr__(self) -> str:
        return (f"CircuitBreaker({self.name!r}, failure_threshold={self.failure_threshold}, "
                f"reset_seconds={self.reset_seconds:g})")
