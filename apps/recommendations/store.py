"""Where built models live: one Redis blob per version and a pointer to the served one, and, in each
serving process, the last model loaded, swapped whole.

Why a rebuild never answers from a half-built model: the builder writes the blob completely and only
then moves the pointer, in one MULTI/EXEC; a process loads a new version into a fresh ``RecModel``
and only then replaces its reference (one assignment); a request reads the reference once and uses
that model throughout. The previous version's blob is kept ``KEEP_PREVIOUS_SECONDS`` so a process that
read the old pointer just before the swap can still load it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
import structlog

from . import engine

log = structlog.get_logger(__name__)

KEEP_PREVIOUS_SECONDS = 600


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class ModelStore:
    def __init__(self, client: Callable[[], redis.Redis], *, prefix: str = "recs", poll_seconds: float = 1.0):
        self._client = client
        self._prefix = prefix
        self._poll = poll_seconds
        self._lock = threading.Lock()
        self._model: engine.RecModel | None = None
        self._model_checked = -1e18
        self._trending: engine.Trending | None = None
        self._trending_checked = -1e18

    # keys: the model blobs and the pointer are swapped in one MULTI, so they share a hash tag (one
    # Redis Cluster slot). Before issue 20 they were ``recs:model:...`` without one: a store that has
    # no tagged pointer yet still serves the legacy one until the next publish writes the new keys.
    def _model_key(self, version: str) -> str:
        return f"{{{self._prefix}}}:model:{version}"

    @property
    def _pointer(self) -> str:
        return f"{{{self._prefix}}}:model:current"

    def _legacy_model_key(self, version: str) -> str:
        return f"{self._prefix}:model:{version}"

    @property
    def _legacy_pointer(self) -> str:
        return f"{self._prefix}:model:current"

    @property
    def _trending_key(self) -> str:
        return f"{self._prefix}:trending"

    # writes
    def publish(self, model: engine.RecModel) -> int:
        """Store ``model`` and make it the served one atomically; returns the blob's size in bytes."""
        blob = engine.dumps(model)
        client = self._client()
        raw = client.get(self._pointer)
        previous = _bytes(raw).decode() if raw is not None else None
        with client.pipeline(transaction=True) as pipe:
            pipe.set(self._model_key(model.version), blob)
            pipe.set(self._pointer, model.version)
            if previous and previous != model.version:
                pipe.expire(self._model_key(previous), KEEP_PREVIOUS_SECONDS)
            pipe.execute()
        log.info("recs_model_published", version=model.version, size_bytes=len(blob))
        return len(blob)

    def publish_trending(self, trending: engine.Trending) -> None:
        self._client().set(self._trending_key, trending.dumps())

    # reads
    def current(self) -> engine.RecModel | None:
        """The served model (at most ``poll_seconds`` old), or None before the first build. With Redis
        unreachable, the model already in memory keeps being served."""
        now = time.monotonic()
        if now - self._model_checked < self._poll:
            return self._model
        with self._lock:
            if now - self._model_checked < self._poll:
                return self._model
            try:
                client = self._client()
                raw, model_key = client.get(self._pointer), self._model_key
                if raw is None:
                    raw, model_key = client.get(self._legacy_pointer), self._legacy_model_key
                version = _bytes(raw).decode() if raw is not None else None
                if version is not None and (self._model is None or version != self._model.version):
                    blob = client.get(model_key(version))
                    if blob is not None:
                        loaded = engine.loads(_bytes(blob))  # complete before it becomes visible
                        self._model = loaded
                        log.info("recs_model_loaded", version=loaded.version)
            except redis.RedisError as exc:
                log.warning("recs_model_poll_failed", error=str(exc))
            self._model_checked = now
            return self._model

    def trending(self) -> engine.Trending | None:
        now = time.monotonic()
        if now - self._trending_checked < self._poll:
            return self._trending
        with self._lock:
            try:
                blob = self._client().get(self._trending_key)
                if blob is not None:
                    self._trending = engine.Trending.loads(_bytes(blob))
            except redis.RedisError as exc:
                log.warning("recs_trending_poll_failed", error=str(exc))
            self._trending_checked = now
            return self._trending

    def forget(self) -> None:
        """Drop what this process holds (tests; a process after a fork)."""
        with self._lock:
            self._model, self._trending = None, None
            self._model_checked = self._trending_checked = -1e18


_store: ModelStore | None = None


def get_store() -> ModelStore:
    """The process-wide store for ``settings.REDIS_URL``."""
    global _store
    if _store is None:
        from django.conf import settings

        from apps.core.redis import client

        _store = ModelStore(client, poll_seconds=settings.RECS_MODEL_POLL_SECONDS)
    return _store
