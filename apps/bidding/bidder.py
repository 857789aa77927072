"""One bidder per process: the ``BidProcessor`` plus what keeps it fed.

``Bidder.start()`` loads the model (``apps.inference.runtime``) and the offer snapshot from Redis,
then runs background tasks: a pub/sub listener (snapshot versions, profile changes, won
impressions, exhausted budgets), a snapshot poll (in case an announcement was missed) and the
model hot-reload watcher. A lost pub/sub connection clears L1 — announcements may have been
missed — and reloads the snapshot once it is back.

Used by the ASGI bid app (one per uvicorn worker), the gRPC sidecar and the NATS agents.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc

import orjson
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from apps.analytics.emitter import default_emitter, emit
from apps.bidding import metrics
from apps.bidding.conf import BidConfig
from apps.bidding.l2 import ClusterL2Client, L2Client
from apps.bidding.processor import BidProcessor
from apps.bidding.snapshot import BUDGET_CHANNEL, SNAPSHOT_CHANNEL, SNAPSHOT_KEY, WINS_CHANNEL, fetch_snapshot
from apps.core import metrics as core_metrics
from apps.core import redis as redis_store
from apps.core.profiles import PROFILE_CHANNEL

log = structlog.get_logger(__name__)

CHANNELS = (SNAPSHOT_CHANNEL, PROFILE_CHANNEL, WINS_CHANNEL, BUDGET_CHANNEL)


def bid_redis(url: str, **kwargs) -> aioredis.Redis:
    """An asyncio Redis client for the bid path: fail fast, never retry (the deadline decides)."""
    options = dict(socket_connect_timeout=0.25, socket_timeout=2.0, retry=Retry(NoBackoff(), 0),
                   max_connections=256)
    options.update(kwargs)
    return redis_store.async_from_url(url, **options)  # type: ignore[return-value]


class Bidder:
    def __init__(self, config: BidConfig | None = None, *, inference=None, redis_url: str | None = None):
        self.config = config or BidConfig.from_env()
        url = redis_url or self.config.redis_url
        self.redis = bid_redis(url)
        # pub/sub reads block indefinitely by design: a separate client without a socket timeout.
        self.redis_pubsub = bid_redis(url, socket_timeout=None, health_check_interval=5)
        if inference is None:
            from apps.inference.runtime import InferenceRuntime

            inference = InferenceRuntime.from_env()
        self.inference = inference
        # L1 misses read through a lean pipelined connection (apps.bidding.l2); wins and snapshots use redis-py.
        self.l2 = (L2Client(url) if url.startswith("redis://")
                   else ClusterL2Client(url) if url.startswith("redis+cluster://") else self.redis)
        self.processor = BidProcessor(config=self.config, inference=inference, redis=self.l2)
        if hasattr(inference, "buffer_metrics"):  # its latency histogram off the metric's lock, as the hot path's
            inference.buffer_metrics()
        self._tasks: list[asyncio.Task] = []
        self._flushes_analytics = False
        self._snapshot_lock = asyncio.Lock()
        self._subscribed = asyncio.Event()
        self.started = False

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        if not self.inference.ready:
            await asyncio.to_thread(self.inference.load)
        try:  # a cluster client's slot map, before concurrent requests race to load it
            await redis_store.ready(self.redis)
        except Exception as exc:  # noqa: BLE001 - Redis down: the first command retries
            log.warning("bid_redis_not_ready", error=f"{type(exc).__name__}: {exc}")
        await self.refresh_snapshot(reason="startup")
        if hasattr(self.l2, "warm"):  # a cluster's slot map and masters, before the first L1 miss
            try:
                await self.l2.warm()
            except (ConnectionError, asyncio.TimeoutError) as exc:
                log.warning("bid_l2_warm_failed", error=f"{type(exc).__name__}: {exc}")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="bid-announcements"),
            loop.create_task(self._poll_snapshot(), name="bid-snapshot-poll"),
            loop.create_task(self.inference.watch(self.redis_pubsub), name="bid-model-watch"),
        ]
        if self.config.gc_freeze_seconds > 0:
            self._tasks.append(loop.create_task(self._freeze_long_lived(), name="bid-gc-freeze"))
        # the hot path's metric updates are buffered (apps.bidding.metrics._Hot): written every FLUSH_SECONDS
        self._tasks.append(loop.create_task(self._flush_metrics(), name="bid-metrics-flush"))
        if self.processor.emit is emit:
            # analytics events are written from this loop, not by a thread contending for the GIL
            default_emitter().run_in_loop()
            self._flushes_analytics = True
        try:  # serve only once announcements reach us (bounded: with Redis down we start anyway)
            await asyncio.wait_for(self._subscribed.wait(), timeout=1.0)
        except asyncio.TimeoutError:
            log.warning("bid_announcements_not_subscribed", hint="Redis unreachable? retrying in the background")
        snap = self.processor.snapshot
        log.info("bidder_started", model_version=self.inference.model_version,
                 snapshot_version=snap.version if snap else None, offers=len(snap) if snap else 0,
                 ready=self.processor.ready, node=self.config.node_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.config.gc_freeze_seconds > 0:
            gc.unfreeze()  # hand frozen objects back to the collector (the process may go on without us)
        self._tasks = []
        if self._flushes_analytics:
            self._flushes_analytics = False
            await default_emitter().stop_in_loop()
        core_metrics.flush_buffered()
        for client in {id(c): c for c in (self.l2, self.redis, self.redis_pubsub)}.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self.started = False

    @property
    def ready(self) -> bool:
        return self.processor.ready

    def status(self) -> dict:
        snap = self.processor.snapshot
        return {
            "status": "ready" if self.ready else "unavailable",
            "model_loaded": bool(self.inference.ready),
            "model_version": self.inference.model_version,
            "snapshot_loaded": snap is not None,
            "snapshot_version": snap.version if snap else None,
            "offers": len(snap) if snap else 0,
            "exhausted_campaigns": sorted(self.processor.exhausted),
            "l1_entries": len(self.processor.cache),
        }

    # --- snapshot ----------------------------------------------------------------------------------
    async def refresh_snapshot(self, *, reason: str) -> bool:
        """Load the stored snapshot if it is newer than ours. Errors are logged, never raised."""
        async with self._snapshot_lock:
            current = self.processor.snapshot
            try:
                snap = await fetch_snapshot(self.redis, newer_than=current.version if current else -1)
            except Exception as exc:  # noqa: BLE001 - Redis down or a bad blob: keep the current snapshot
                log.warning("bid_snapshot_load_failed", error=f"{type(exc).__name__}: {exc}", reason=reason)
                return False
            if snap is None:
                if current is None:
                    log.warning("bid_snapshot_missing", key=SNAPSHOT_KEY, reason=reason,
                                hint="run `manage.py refresh_offer_snapshot` (make run does it)")
                return False
            self.processor.set_snapshot(snap)
            log.info("bid_snapshot_loaded", version=snap.version, offers=len(snap),
                     exhausted=len(snap.exhausted), reason=reason)
            return True

    async def _freeze_long_lived(self) -> None:
        """Keep CPython's full collections short. The L1 cache holds up to ``BID_L1_MAX_ENTRIES`` users;
        a full (generation 2) collection walks every one of them: measured 20-35 ms with 25k entries and
        ~70 ms with 100k, a pause every request in flight waits for. ``gc.freeze()`` moves what is alive
        now out of the collector's view; it is still freed by reference counting when dropped (L1
        eviction, snapshot swap), only cycles among frozen objects would stay, and the bid path's
        long-lived objects form none."""
        gc.freeze()
        while True:
            await asyncio.sleep(self.config.gc_freeze_seconds)
            gc.freeze()

    async def _flush_metrics(self) -> None:
        """Write the hot path's buffered metric updates (multiprocess mode, see apps.core.metrics)."""
        while True:
            await asyncio.sleep(metrics.FLUSH_SECONDS)
            core_metrics.flush_buffered()

    async def _poll_snapshot(self) -> None:
        while True:
            await asyncio.sleep(self.config.snapshot_poll_seconds)
            await self.refresh_snapshot(reason="poll")

    # --- announcements -----------------------------------------------------------------------------
    def handle_message(self, channel: str, data: bytes) -> None:
        """One announcement; ``channel`` is one of ``CHANNELS`` (the database's name for it is mapped
        back by ``_listen``)."""
        processor = self.processor
        if channel == PROFILE_CHANNEL:
            processor.cache.drop(data.decode("utf-8", "replace"))
        elif channel == WINS_CHANNEL:
            try:
                user_id, ts, campaign_id = orjson.loads(data)
                processor.cache.record_win(str(user_id), float(ts), int(campaign_id))
            except (orjson.JSONDecodeError, TypeError, ValueError):
                log.warning("bid_bad_win_announcement", data=data[:200])
        elif channel == BUDGET_CHANNEL:
            try:
                processor.mark_exhausted(int(data))
            except ValueError:
                log.warning("bid_bad_budget_announcement", data=data[:200])
        elif channel == SNAPSHOT_CHANNEL:
            try:
                version = int(data)
            except ValueError:
                return
            current = processor.snapshot
            if current is None or version > current.version:
                asyncio.get_running_loop().create_task(self.refresh_snapshot(reason="announced"))

    async def _listen(self) -> None:
        backoff = 0.1
        reconnect = False
        # our database's channels (pub/sub is server-wide): their names back to CHANNELS
        names = {redis_store.channel(name, self.redis_pubsub): name for name in CHANNELS}
        while True:
            pubsub = self.redis_pubsub.pubsub(ignore_subscribe_messages=True)
            try:
                await redis_store.ready(self.redis_pubsub)
                await pubsub.subscribe(*names)
                if reconnect:
                    # Announcements sent while we were away are lost: forget what they would have changed.
                    self.processor.cache.clear()
                    log.info("bid_announcements_resubscribed")
                # A snapshot announced between our last load and the subscription would be missed: check now.
                await self.refresh_snapshot(reason="resubscribed" if reconnect else "subscribed")
                self._subscribed.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    channel = message["channel"]
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    self.handle_message(names.get(channel, channel), message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect with back-off
                if not reconnect or backoff >= 1.0:
                    log.warning("bid_announcements_lost", error=f"{type(exc).__name__}: {exc}", retry_in=backoff)
                self.processor.cache.clear()
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            reconnect = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
