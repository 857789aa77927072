"""What a bid worker knows of the platforms: the snapshot, who is over budget this hour, and each
platform's QPS bucket and circuit breaker (``PlatformBook``). Kept fresh by announcements plus a
poll (``apps.dsp.platforms``), never read from Postgres.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from apps.core import redis as redis_store
from apps.core.outbound import CircuitBreaker, TokenBucket
from apps.dsp import platforms as store
from apps.dsp.adapters.base import PlatformConf
from apps.dsp.conf import DspConfig

log = structlog.get_logger(__name__)


def _default_bucket(rate_per_s: float, burst: int):
    return TokenBucket(rate_per_s, burst)


def _default_breaker(name: str, failure_threshold: int, reset_seconds: float, redis=None):
    return CircuitBreaker(name, failure_threshold, reset_seconds, redis=redis)


def breaker_name(platform_name: str) -> str:
    """The shared breaker of a platform (its state is in Redis under this name)."""
    return f"dsp:{platform_name}"


class Gate:
    """One platform's QPS bucket and breaker in this worker.

    The breaker's state lives in Redis (shared by every worker); asking Redis on every call would cost
    each fan-out a round trip per platform, so a closed breaker is taken from the state this worker
    last saw (refreshed with the snapshot poll and after each failure), and only an open or half-open
    one is asked (``allow_async``: the probe after the reset time)."""

    def __init__(self, platform: PlatformConf, config: DspConfig, bucket_factory, breaker_factory, redis=None):
        self.platform = platform
        # the cap is over every bid worker: each takes its share (DSP_QPS_WORKERS), a second's worth of burst
        rate = platform.qps_cap / max(1, config.qps_workers)
        self.bucket = bucket_factory(rate, max(1, int(rate))) if platform.qps_cap > 0 and bucket_factory else None
        self.breaker = (breaker_factory(breaker_name(platform.name), config.breaker_failures,
                                        config.breaker_reset_seconds, redis=redis)
                        if breaker_factory else None)
        self.breaker_state = "closed"
        self.failures_since_success = 0
        self.reset_seconds = config.breaker_reset_seconds
        self.ask_after = 0.0  # while open: no Redis round trip before this (monotonic)

    def try_acquire(self) -> bool:
        return self.bucket is None or self.bucket.try_acquire()

    async def allow(self) -> bool:
        if self.breaker is None or self.breaker_state == "closed":
            return True
        now = time.monotonic()
        if now < self.ask_after:  # open, and its reset time has not come: refuse without asking Redis
            return False
        allowed = await self.breaker.allow_async()
        self.breaker_state = await self.breaker.state_async()
        if not allowed:  # still open, or another worker holds the probe: ask again a little later
            self.ask_after = now + min(0.2, self.reset_seconds)
        return bool(allowed)

    def needs_record(self, ok: bool) -> bool:
        """Whether this outcome changes anything in the breaker's store (a success while closed with
        no failure since the last success does not: no round trip for it)."""
        if self.breaker is None:
            return False
        return not ok or bool(self.failures_since_success) or self.breaker_state != "closed"

    async def record(self, ok: bool) -> None:
        if self.breaker is None:
            return
        if ok:
            if self.failures_since_success or self.breaker_state != "closed":
                self.failures_since_success = 0
                await self.breaker.record_success_async()
                self.breaker_state = await self.breaker.state_async()
        else:
            self.failures_since_success += 1
            await self.breaker.record_failure_async()
            state = await self.breaker.state_async()
            if state == "open" and self.breaker_state != "open":
                self.ask_after = time.monotonic() + self.reset_seconds
            self.breaker_state = state

    async def refresh(self) -> None:
        if self.breaker is not None:
            self.breaker_state = await self.breaker.state_async()


class PlatformBook:
    def __init__(self, config: DspConfig, redis, *, pubsub_redis=None,
                 bucket_factory: Callable[..., Any] | None = _default_bucket,
                 breaker_factory: Callable[..., Any] | None = _default_breaker):
        self.config = config
        self.redis = redis
        self.pubsub_redis = pubsub_redis
        self.bucket_factory = bucket_factory
        self.breaker_factory = breaker_factory
        self.version = -1
        self.platforms: tuple[PlatformConf, ...] = ()
        self.gates: dict[int, Gate] = {}
        self.over: frozenset[int] = frozenset()
        self.over_hour = -1
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()

    def set_platforms(self, version: int, platforms: tuple[PlatformConf, ...]) -> None:
        gates: dict[int, Gate] = {}
        for p in platforms:
            old = self.gates.get(p.id)
            keep = old is not None and (old.platform.qps_cap, old.platform.name) == (p.qps_cap, p.name)
            gate = old if keep and old is not None else Gate(p, self.config, self.bucket_factory, self.breaker_factory,
                                                             redis=self.redis)
            gate.platform = p
            gates[p.id] = gate
        self.version, self.platforms, self.gates = version, platforms, gates

    def is_over_budget(self, platform_id: int, hour: int) -> bool:
        return hour == self.over_hour and platform_id in self.over

    async def refresh(self, *, reason: str) -> None:
        """Load a newer snapshot, this hour's over-budget set and the breaker states. Never raises."""
        async with self._lock:
            try:
                found = await store.fetch(self.redis, newer_than=self.version)
                if found is not None:
                    self.set_platforms(*found)
                    log.info("dsp_platforms_loaded", version=self.version, platforms=len(self.platforms), reason=reason)
                hour = store.hour_of(time.time())
                self.over = await store.over_budget(self.redis, self.platforms, hour)
                self.over_hour = hour
                for gate in self.gates.values():
                    await gate.refresh()
            except Exception as exc:  # noqa: BLE001 - Redis down: keep what we have
                log.warning("dsp_platforms_refresh_failed", error=f"{type(exc).__name__}: {exc}", reason=reason)

    async def start(self) -> None:
        await self.refresh(reason="startup")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._poll(), name="dsp-platforms-poll")]
        if self.pubsub_redis is not None:
            self._tasks.append(loop.create_task(self._listen(), name="dsp-announcements"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a task stuck in a store call must not hold the shutdown
            await asyncio.wait(self._tasks, timeout=1.0)
        self._tasks = []

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.snapshot_poll_seconds)
            await self.refresh(reason="poll")

    async def _listen(self) -> None:
        names = [redis_store.channel(n, self.pubsub_redis) for n in (store.PLATFORMS_CHANNEL, store.BUDGET_CHANNEL)]
        while True:
            pubsub = self.pubsub_redis.pubsub(ignore_subscribe_messages=True)
            try:
                await redis_store.ready(self.pubsub_redis)
                await pubsub.subscribe(*names)
                await self.refresh(reason="subscribed")
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self.refresh(reason="announced")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect; the poll covers the gap
                log.warning("dsp_announcements_lost", error=f"{type(exc).__name__}: {exc}")
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(0.5)
