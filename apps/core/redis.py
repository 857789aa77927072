"""Plain Redis clients (profiles, counters, snapshots, streams) for sync Django code and asyncio,
and the names of our pub/sub channels."""
from __future__ import annotations

import functools

import redis
import redis.asyncio as aioredis
from django.conf import settings


@functools.lru_cache(maxsize=8)
def _sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30)


def client(url: str | None = None) -> redis.Redis:
    """The process-wide sync client for ``settings.REDIS_URL`` (thread-safe connection pool). Code that
    runs without Django settings (the bid workers) passes its ``url`` (``BidConfig.redis_url``)."""
    return _sync_client(url or settings.REDIS_URL)


def async_client(url: str | None = None, **kwargs) -> aioredis.Redis:
    """A new asyncio client; create one per event loop and keep it."""
    return aioredis.Redis.from_url(
        url or settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2, **kwargs
    )


def channel(name: str, client) -> str:
    """The pub/sub channel ``name`` for the database ``client`` (sync or asyncio) works in.

    Keys live in a numbered database, pub/sub channels do not: they are server-wide. Two
    environments on one Redis server (the test suite and a local platform, staging beside
    production) would otherwise hear each other's announcements — a campaign id whose budget ran out
    over there silencing the campaign with the same id here. So every channel carries the database
    number, as kombu does for Celery's fanout exchanges."""
    return f"{name}@{client.connection_pool.connection_kwargs.get('db', 0)}"
