"""Token buckets: ``rate_per_s`` tokens a second, at most ``burst`` saved up.

:class:`TokenBucket` is per process (thread-safe; the bid workers' per-process QPS share);
:class:`RedisTokenBucket` is one bucket shared by every process (a vendor's published limit per
account), refilled and taken from in one Lua script on one key, ``{outbound:<name>}:bucket``, with the
Redis server's clock, so it stays exact under concurrency and across hosts. Neither sleeps:
``try_acquire`` answers at once and ``wait_time`` says how long until ``n`` tokens are there.

If Redis cannot be reached the shared bucket lets the call through (counted in
``outbound_ratelimit_redis_errors_total``): the vendor's own 429 still protects the account, while
refusing every outbound call because our Redis hiccupped would turn one outage into two.
"""
from __future__ import annotations

import asyncio
import threading
import time
import weakref

import redis as redis_lib
import structlog
from prometheus_client import Counter

__all__ = ["RedisTokenBucket", "TokenBucket"]

log = structlog.get_logger(__name__)

RATELIMIT_REDIS_ERRORS = Counter(
    "outbound_ratelimit_redis_errors_total", "Shared token bucket calls that could not reach Redis", ["name"])


def _check(rate_per_s: float, burst: int) -> None:
    if not rate_per_s > 0:
        raise ValueError(f"rate_per_s must be > 0, got {rate_per_s!r}")
    if int(burst) < 1:
        raise ValueError(f"burst must be at least 1, got {burst!r}")


class TokenBucket:
    """In-process token bucket (monotonic clock, one lock)."""

    def __init__(self, rate_per_s: float, burst: int):
        _check(rate_per_s, burst)
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._stamp = now

    def try_acquire(self, n: int = 1) -> bool:
        """Take ``n`` tokens if they are there; False (taking nothing) if not."""
        with self._lock:
            self._refill(time.monotonic())
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False

    async def try_acquire_async(self, n: int = 1) -> bool:
        return self.try_acquire(n)

    def wait_time(self, n: int = 1) -> float:
        """Seconds until ``n`` tokens are available (0 when they are now); inf when ``n`` > burst."""
        if n > self.burst:
            return float("inf")
        with self._lock:
            self._refill(time.monotonic())
            missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate_per_s

    async def wait_time_async(self, n: int = 1) -> float:
        return self.wait_time(n)

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_s={self.rate_per_s:g}, burst={self.burst})"


# KEYS[1] the bucket hash; ARGV: rate per s, burst, n, ttl ms, take (1) or only look (0).
# Returns {taken (0|1), seconds until n tokens, as a string (Lua numbers reach Redis as integers)}.
_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local take = ARGV[5] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local taken = 0
if take and tokens >= n then
  tokens = tokens - n
  taken = 1
end
local wait = 0
if taken == 0 and tokens < n then
  wait = (n - tokens) / rate
end
if take then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {taken, tostring(wait)}
"""


class RedisTokenBucket:
    """One token bucket shared by every process through Redis.

    ``redis`` is a sync client (default: ``apps.core.redis.client()``) or an asyncio one; the async
    methods use an asyncio client (the one given, else one per event loop from ``REDIS_URL``)."""

    def __init__(self, name: str, rate_per_s: float, burst: int, redis=None):
        _check(rate_per_s, burst)
        self.name = name
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)
        self.key = f"{{outbound:{name}}}:bucket"
        # a full refill plus a margin: an idle bucket's key goes away (it would read as full anyway)
        self._ttl_ms = int(1000 * (self.burst / self.rate_per_s)) + 1000
        is_async = isinstance(redis, redis_lib.asyncio.Redis)
        self._redis = None if is_async else redis
        self._aredis_given = redis if is_async else None
        self._sync_script = None
        self._async_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    # --- sync ---------------------------------------------------------------------------------------
    def _script(self):
        if self._sync_script is None:
            client = self._redis
            if client is None:
                from apps.core import redis as redis_store

                client = redis_store.client()
            self._sync_script = client.register_script(_BUCKET_LUA)
        return self._sync_script

    def _call(self, n: int, take: bool) -> tuple[bool, float]:
        try:
            taken, wait = self._script()(
                keys=[self.key], args=[self.rate_per_s, self.burst, n, self._ttl_ms, int(take)])
        except redis_lib.RedisError as exc:
            RATELIMIT_REDIS_ERRORS.labels(self.name).inc()
            log.warning("outbound_ratelimit_redis_error", name=self.name, error=repr(exc))
            return True, 0.0
        return bool(int(taken)), float(wait)

    def try_acquire(self, n: int = 1) -> bool:
        """Take ``n`` tokens if they are there (one round trip); False, taking nothing, if not."""
        if n < 1:
            raise ValueError("n must be at least 1")
        return self._call(n, True)[0]

    def wait_time(self, n: int = 1) -> float:
        """Seconds until ``n`` tokens are there (0 = now); inf when ``n`` > burst. Takes nothing."""
        if n > self.burst:
            return float("inf")
        return self._call(n, False)[1]

    # --- asyncio ------------------------------------------------------------------------------------
    def _async_script(self):
        loop = asyncio.get_running_loop()
        script = self._async_scripts.get(loop)
        if script is None:
            client = self._aredis_given
            if client is None:
                from apps.core import redis as redis_store

                client = redis_store.async_client()
            script = client.register_script(_BUCKET_LUA)
            self._async_scripts[loop] = script
        return script

    async def _acall(self, n: int, take: bool) -> tuple[bool, float]:
        try:
            taken, wait = await self._async_script()(
                keys=[self.key], args=[self.rate_per_s, self.burst, n, self._ttl_ms, int(take)])
        except redis_lib.RedisError as exc:
            RATELIMIT_REDIS_ERRORS.labels(self.name).inc()
            log.warning("outbound_ratelimit_redis_error", name=self.name, error=repr(exc))
            return True, 0.0
        return bool(int(taken)), float(wait)

    async def try_acquire_async(self, n: int = 1) -> bool:
        if n < 1:
            raise ValueError("n must be at least 1")
        return (await self._acall(n, True))[0]

    async def wait_time_async(self, n: int = 1) -> float:
        if n > self.burst:
            return float("inf")
        return (await self._acall(n, False))[1]

    def reset(self) -> None:
        """Forget the bucket (it reads as full): tests and an admin's "reset limits"."""
        client = self._redis
        if client is None:
            from apps.core import redis as redis_store

            client = redis_store.client()
        client.delete(self.key)

    def __repr__(self) -> str:
        return f"RedisTokenBucket({self.name!r}, rate_per_s={self.rate_per_s:g}, burst={self.burst})"
