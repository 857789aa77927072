"""The per-process inference runtime: current weights + provider, optional batcher, hot reload.

One ``InferenceRuntime`` per process (``get_runtime()``, or ``InferenceRuntime.from_env()`` kept by
the caller). ``load()`` at start-up loads the newest published model from the model directory (see
``apps.inference.registry``), or the documented seeded initialisation when none is published, and
fails fast with ``ProviderUnavailable`` if the configured provider cannot run here.

Hot reload (``watch``): a task subscribed to ``models:published`` that also polls the model
directory every ``poll_interval_s`` (2 s) in case an announcement was missed or Redis is down. A
new file is loaded and validated completely, off the event loop, into a new provider; only then is
the runtime's provider reference replaced (one assignment). Requests already scoring hold the old
provider and finish on the old weights; no request can see a half-loaded model. A file that fails
validation is logged, remembered (not retried until it changes) and ignored; the old model stays.

Environment (read once by ``config.env``, which refuses malformed values; ``from_env`` copies its
``NPU_*`` constants):

==============================================  =========  ==============================================
``CAMPAIGN_EXPRESS__NPU__PROVIDER``             ``cpu``    cpu, groq, inferentia2, inferentia3, ampere, tenstorrent
``CAMPAIGN_EXPRESS__NPU__MODEL_DIR``            var/models where published ``colanet-<version>.npz`` live
``CAMPAIGN_EXPRESS__NPU__SEED``                 ``42``     seed of the initialisation used when none is published
``CAMPAIGN_EXPRESS__NPU__BATCHING``             ``0``      1 = merge concurrent requests (``score_async``)
``CAMPAIGN_EXPRESS__NPU__BATCH_MAX_ITEMS``      ``16``     flush a batch at this many requests
``CAMPAIGN_EXPRESS__NPU__BATCH_MAX_WAIT_US``    ``500``    ... or this long after its first request
``CAMPAIGN_EXPRESS__NPU__POLL_INTERVAL_S``      ``2.0``    model-directory poll period of ``watch``
==============================================  =========  ==============================================
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import numpy as np
import structlog
from prometheus_client import Counter, Gauge, Histogram
from redis.exceptions import RedisError

from apps.core import redis as redis_store
from apps.inference import registry
from apps.inference.batcher import DEFAULT_MAX_ITEMS, DEFAULT_MAX_WAIT_US, InferenceBatcher
from apps.inference.model import CoLaNetWeights, ModelFileError, validate_version
from apps.inference.providers import (
    InferenceProvider,
    ProviderUnavailable,
    RankResult,
    ScoreResult,
    get_provider,
    provider_name_from_env,
)
from config import env

log = structlog.get_logger(__name__)

INFERENCE_LATENCY_US = Histogram(
    "inference_latency_us",
    "CoLaNet scoring time per request in microseconds (mode=direct: provider call; "
    "mode=batched: including the wait for the batch)",
    ["provider", "mode"],
    buckets=(5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000),
)
MODEL_INFO = Gauge(
    "inference_model_info",
    "1 for the model version this process scores with, 0 for versions it replaced",
    ["version", "provider"],
    multiprocess_mode="liveall",
)
MODEL_RELOADS = Counter("inference_model_reloads_total", "Model hot reloads by result", ["result"])

DEFAULT_POLL_INTERVAL_S = 2.0
DEFAULT_SEED = 42


class InferenceRuntime:
    """Holds the current provider (bound to immutable weights) and swaps it on hot reload."""

    def __init__(
        self,
        *,
        provider_name: str = "cpu",
        model_dir: Path | str | None = None,
        seed: int = DEFAULT_SEED,
        batching: bool = False,
        batch_max_items: int = DEFAULT_MAX_ITEMS,
        batch_max_wait_us: int = DEFAULT_MAX_WAIT_US,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        channel: str = registry.MODEL_CHANNEL,
    ) -> None:
        self.provider_name = provider_name
        self.model_dir = Path(model_dir) if model_dir is not None else registry.model_dir()
        self.seed = seed
        self.poll_interval_s = poll_interval_s
        self.channel = channel
        self._provider: InferenceProvider | None = None
        self._rejected: set[tuple[str, int, int]] = set()
        self.subscribed = False  # True while watch() holds a live subscription to the channel
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._latency_direct = INFERENCE_LATENCY_US.labels(provider=provider_name, mode="direct")
        self._latency_batched = INFERENCE_LATENCY_US.labels(provider=provider_name, mode="batched")
        self.batcher = (
            InferenceBatcher(self._current_provider, max_items=batch_max_items, max_wait_us=batch_max_wait_us)
            if batching
            else None
        )

    def buffer_metrics(self) -> None:
        """Count the latency histogram through ``apps.core.metrics.buffered`` (in either metrics mode:
        the caller must run ``flush_buffered`` periodically, as the Bidder does). Only for a runtime
        scored from one thread."""
        from apps.core.metrics import buffered

        self._latency_direct = buffered(self._latency_direct, always=True)
        self._latency_batched = buffered(self._latency_batched, always=True)

    @classmethod
    def from_env(cls) -> "InferenceRuntime":
        """Build a runtime from the ``CAMPAIGN_EXPRESS__NPU__*`` variables (see module docstring)."""
        return cls(
            provider_name=provider_name_from_env(),
            model_dir=registry.model_dir(),
            seed=env.NPU_SEED,
            batching=env.NPU_BATCHING,
            batch_max_items=env.NPU_BATCH_MAX_ITEMS,
            batch_max_wait_us=env.NPU_BATCH_MAX_WAIT_US,
            poll_interval_s=env.NPU_POLL_INTERVAL_S,
        )

    # --- state ---------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once a model is loaded."""
        return self._provider is not None

    @property
    def model_version(self) -> str | None:
        provider = self._provider
        return provider.weights.version if provider is not None else None

    @property
    def provider(self) -> InferenceProvider:
        """The current provider (hold the returned reference to score several times on one model)."""
        return self._current_provider()

    def _current_provider(self) -> InferenceProvider:
        provider = self._provider
        if provider is None:
            raise RuntimeError("inference runtime is not loaded: call load() at start-up")
        return provider

    def status(self) -> dict:
        """A small dict for readiness endpoints and logs."""
        return {
            "ready": self.ready,
            "model_version": self.model_version,
            "provider": self.provider_name,
            "batching": self.batcher is not None,
        }

    # --- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Load the newest valid published model, else the seeded initialisation (sync, start-up).

        Raises ``ProviderUnavailable`` if the configured provider cannot run on this machine.
        """
        for model in reversed(registry.published_models(self.model_dir)):
            try:
                provider = self._build_from_file(model.path, model.version)
            except ModelFileError as exc:
                self._reject(model.path, exc, trigger="startup")
                continue
            self._install(provider, source=str(model.path), trigger="startup")
            return
        weights = CoLaNetWeights.seeded(seed=self.seed)
        self._install(get_provider(self.provider_name, weights=weights), source=f"seeded init (seed {self.seed})",
                      trigger="startup")

    def _build_from_file(self, path: Path, version: str) -> InferenceProvider:
        weights = CoLaNetWeights.from_npz(path)
        if weights.version != version:
            raise ModelFileError(f"{path}: file name says version {version!r} but the weights say {weights.version!r}")
        return get_provider(self.provider_name, weights=weights)

    def _install(self, provider: InferenceProvider, *, source: str, trigger: str) -> None:
        previous = self._provider
        self._provider = provider  # the swap: one reference assignment
        if previous is not None:
            MODEL_INFO.labels(version=previous.weights.version, provider=self.provider_name).set(0)
        MODEL_INFO.labels(version=provider.weights.version, provider=self.provider_name).set(1)
        log.info(
            "inference_model_loaded",
            version=provider.weights.version,
            previous_version=previous.weights.version if previous is not None else None,
            provider=self.provider_name,
            hidden=provider.weights.hidden,
            source=source,
            trigger=trigger,
        )

    def _reject(self, path: Path, exc: Exception, *, trigger: str) -> None:
        key = _file_key(path)
        if key is not None:
            self._rejected.add(key)
        MODEL_RELOADS.labels(result="rejected").inc()
        log.error("inference_model_rejected", path=str(path), error=str(exc), trigger=trigger,
                  kept_version=self.model_version)

    async def reload(self, path: Path, version: str, *, trigger: str) -> bool:
        """Load ``path`` off the event loop and swap it in; False (old model kept) if it is invalid."""
        key = _file_key(path)
        if key is None:
            log.warning("inference_model_missing", path=str(path), version=version, trigger=trigger)
            return False
        async with self._reload_lock():  # the listener and the poller never load at the same time
            if key in self._rejected or version == self.model_version:
                return False
            try:
                provider = await asyncio.to_thread(self._build_from_file, path, version)
            except (ModelFileError, ProviderUnavailable) as exc:
                self._reject(path, exc, trigger=trigger)
                return False
            self._install(provider, source=str(path), trigger=trigger)
        MODEL_RELOADS.labels(result="loaded").inc()
        return True

    def _reload_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:  # an asyncio.Lock belongs to one event loop
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    # --- scoring -------------------------------------------------------------------------------
    def score(self, user_row: np.ndarray, offer_features: np.ndarray, positions: np.ndarray) -> ScoreResult:
        """Score one request's candidates now (no batching): (score float32[n], predicted_ctr float32[n])."""
        provider = self._current_provider()
        start = time.perf_counter_ns()
        result = provider.score(user_row, offer_features, positions)
        self._latency_direct.observe((time.perf_counter_ns() - start) / 1000.0)
        return result

    async def score_async(self, user_row: np.ndarray, offer_features: np.ndarray, positions: np.ndarray) -> ScoreResult:
        """Score through the batcher when batching is on, else directly (same result either way)."""
        if self.batcher is None:
            return self.score(user_row, offer_features, positions)
        self._current_provider()  # fail before queueing if nothing is loaded
        start = time.perf_counter_ns()
        result = await self.batcher.score(user_row, offer_features, positions)
        self._latency_batched.observe((time.perf_counter_ns() - start) / 1000.0)
        return result

    async def score_indexed_async(self, user_row: np.ndarray, offer_features: np.ndarray, index: np.ndarray,
                                  positions: np.ndarray) -> ScoreResult:
        """``score_async(user_row, offer_features[index], positions)`` where ``offer_features`` is a
        whole table of offers (e.g. a snapshot's) and ``index`` the candidates' rows. Without batching,
        a provider with ``score_indexed`` (the CPU ones) scores from its per-table cache of the offers'
        layer-1 share; otherwise the rows are gathered and scored as usual. Same result either way."""
        if self.batcher is None:
            provider = self._current_provider()
            scorer = getattr(provider, "score_indexed", None)
            if scorer is not None:
                start = time.perf_counter_ns()
                result = scorer(user_row, offer_features, index, positions)
                self._latency_direct.observe((time.perf_counter_ns() - start) / 1000.0)
                return result
        return await self.score_async(user_row, offer_features[index], positions)

    async def rank_indexed_async(self, user_row: np.ndarray, offer_features: np.ndarray, candidates: list[int],
                                 positions: np.ndarray) -> RankResult:
        """``score_indexed_async`` as the bid path consumes it: ``(order, scores, ctrs)`` lists — the
        candidates' positions best score first (a stable sort), score and predicted CTR per candidate.
        A CPU provider without batching answers in one call (``CpuProvider.rank_indexed``); otherwise
        the scores come from ``score_indexed_async`` and are ranked here. Same result either way."""
        if self.batcher is None:
            provider = self._current_provider()
            ranker = getattr(provider, "rank_indexed", None)
            if ranker is not None:
                start = time.perf_counter_ns()
                result = ranker(user_row, offer_features, candidates, positions)
                self._latency_direct.observe((time.perf_counter_ns() - start) / 1000.0)
                return result
        score, ctr = await self.score_indexed_async(user_row, offer_features, np.array(candidates, dtype=np.intp),
                                                    positions)
        return np.argsort(-score, kind="stable").tolist(), score.tolist(), ctr.tolist()

    # --- hot reload ----------------------------------------------------------------------------
    async def watch(self, redis_client=None, *, poll_interval_s: float | None = None) -> None:
        """Run until cancelled: load models announced on ``models:published`` and poll the model
        directory every ``poll_interval_s``. ``redis_client`` is a ``redis.asyncio.Redis`` (or
        ``None`` to poll only). Listening and polling are separate tasks, so a Redis outage (logged,
        subscription retried every period) never delays the polling fallback."""
        interval = self.poll_interval_s if poll_interval_s is None else poll_interval_s
        log.info("inference_model_watch_started", model_dir=str(self.model_dir), channel=self.channel,
                 poll_interval_s=interval, pubsub=redis_client is not None)
        tasks = [asyncio.create_task(self._poll_forever(interval), name="inference-model-poll")]
        if redis_client is not None:
            tasks.append(asyncio.create_task(self._listen_forever(redis_client, interval), name="inference-model-listen"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll_forever(self, interval: float) -> None:
        while True:
            try:
                await self.poll_model_dir()
            except Exception:  # noqa: BLE001 - e.g. an unreadable directory: keep serving, keep polling
                log.exception("inference_model_poll_failed", model_dir=str(self.model_dir))
            await asyncio.sleep(interval)

    async def _listen_forever(self, redis_client, retry_s: float) -> None:
        failing = False
        while True:
            pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
            try:
                await redis_store.ready(redis_client)
                await pubsub.subscribe(redis_store.channel(self.channel, redis_client))
                self.subscribed = True
                if failing:
                    log.info("inference_model_watch_resubscribed", channel=self.channel)
                failing = False
                while True:
                    # a bounded wait: redis-py would treat an unbounded one as a socket timeout
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                    if message is not None and message.get("type") == "message":
                        await self.load_announced(message["data"])
            except (RedisError, OSError) as exc:
                if not failing:  # once per outage, not every retry
                    log.warning("inference_model_watch_redis_error", channel=self.channel, error=str(exc),
                                retry_s=retry_s)
                failing = True
            except Exception:  # noqa: BLE001 - a bug must not end hot reload for the process's lifetime
                log.exception("inference_model_watch_failed", channel=self.channel)
                failing = True
            finally:
                self.subscribed = False
                await _close_pubsub(pubsub)
            await asyncio.sleep(retry_s)

    async def load_announced(self, data: bytes | str) -> bool:
        """Handle one ``models:published`` message (the version). Invalid or unknown versions are logged."""
        version = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        try:
            validate_version(version)  # the message names a file: never let it escape the model dir
        except ModelFileError as exc:
            log.warning("inference_model_announce_invalid", error=str(exc))
            return False
        if version == self.model_version:
            return False
        return await self.reload(registry.model_path(self.model_dir, version), version, trigger="announce")

    async def poll_model_dir(self) -> bool:
        """Load the newest published file if it is not the current version (and not rejected before)."""
        newest = registry.newest_model(self.model_dir)
        if newest is None or newest.version == self.model_version:
            return False
        if (str(newest.path), newest.mtime_ns, newest.size) in self._rejected:
            return False
        return await self.reload(newest.path, newest.version, trigger="poll")


def _file_key(path: Path) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return str(path), stat.st_mtime_ns, stat.st_size


async def _close_pubsub(pubsub) -> None:
    try:
        await pubsub.aclose()
    except (RedisError, OSError) as exc:
        log.debug("inference_model_watch_close_failed", error=str(exc))


_runtime: InferenceRuntime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> InferenceRuntime:
    """The process-wide runtime, built from the environment and loaded on first use."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                runtime = InferenceRuntime.from_env()
                runtime.load()
                _runtime = runtime
    return _runtime
