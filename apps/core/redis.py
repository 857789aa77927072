"""Plain Redis clients (profiles, counters, snapshots, streams) for sync Django code and asyncio,
and the names of our pub/sub channels.

A URL names one Redis (``redis://host:port/db``, ``rediss://``) or a Redis Cluster
(``redis+cluster://[user:pass@]host:port[,host:port...]``, ``rediss+cluster://`` with TLS): any
listed node is enough to discover the others. A cluster has database 0 only, so a path other than
``/0`` is refused. ``is_cluster(client)`` tells the code paths apart where they differ: a script or
transaction touches keys of one slot only (every multi-key one hash-tags its keys by the entity
whose atomicity it needs, e.g. ``spend:{c:42}:total``), and an invariant spanning entities is kept
by ordering idempotent steps (``apps.bidding.wins``, ``apps.bidding.services.spend_flush``).
"""
from __future__ import annotations

import functools
from urllib.parse import unquote, urlparse

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster as synccluster
from django.conf import settings

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS


def is_cluster_url(url: str | None) -> bool:
    return url is not None and url.split("://", 1)[0] in CLUSTER_SCHEMES


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], dict]:
    """The startup nodes of a ``redis+cluster://`` URL and the connection options it carries."""
    scheme, _, rest = url.partition("://")
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL: {scheme}://")
    netloc, _, path = rest.partition("/")
    path = path.split("?", 1)[0]
    if path not in ("", "0"):
        raise ValueError(f"a Redis Cluster has database 0 only, the URL names /{path}")
    options: dict = {}
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, sep, password = auth.partition(":")
        if sep:
            options["password"] = unquote(password)
            if user:
                options["username"] = unquote(user)
        elif user:
            options["password"] = unquote(user)
    if CLUSTER_SCHEMES[scheme]:
        options["ssl"] = True
    nodes = []
    for part in netloc.split(","):
        parsed = urlparse(f"redis://{part}")
        nodes.append((parsed.hostname or "127.0.0.1", parsed.port or 6379))
    return nodes, options


def sync_from_url(url: str, **kwargs) -> redis.Redis | synccluster.RedisCluster:
    """A sync client for ``url``: ``redis.Redis`` or, for a cluster URL, ``redis.cluster.RedisCluster``."""
    if is_cluster_url(url):
        nodes, options = cluster_nodes(url)
        return synccluster.RedisCluster(startup_nodes=[synccluster.ClusterNode(h, p) for h, p in nodes],
                                        **options, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


def async_from_url(url: str, **kwargs) -> aioredis.Redis | aiocluster.RedisCluster:
    """An asyncio client for ``url``: ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``."""
    if is_cluster_url(url):
        nodes, options = cluster_nodes(url)
        return aiocluster.RedisCluster(startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in nodes],
                                       **options, **kwargs)
    return aioredis.Redis.from_url(url, **kwargs)


def is_cluster(client) -> bool:
    """True for a Redis Cluster client (sync or asyncio)."""
    return isinstance(client, (synccluster.RedisCluster, aiocluster.RedisCluster))


@functools.lru_cache(maxsize=8)
def _sync_client(url: str) -> redis.Redis:
    if is_cluster_url(url):
        return sync_from_url(url, socket_connect_timeout=1, socket_timeout=2)  # type: ignore[return-value]
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2, health_check_interval=30)


def client(url: str | None = None) -> redis.Redis:
    """The process-wide sync client for ``settings.REDIS_URL`` (thread-safe connection pool). Code that
    runs without Django settings (the bid workers) passes its ``url`` (``BidConfig.redis_url``)."""
    return _sync_client(url or settings.REDIS_URL)


def async_client(url: str | None = None, **kwargs) -> aioredis.Redis:
    """A new asyncio client; create one per event loop and keep it."""
    return async_from_url(url or settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=2,  # type: ignore[return-value]
                          **kwargs)


def channel(name: str, client) -> str:
    """The pub/sub channel ``name`` for the database ``client`` (sync or asyncio) works in.

    Keys live in a numbered database, pub/sub channels do not: they are server-wide. Two
    environments on one Redis server (the test suite and a local platform, staging beside
    production) would otherwise hear each other's announcements — a campaign id whose budget ran out
    over there silencing the campaign with the same id here. So every channel carries the database
    number, as kombu does for Celery's fanout exchanges. A cluster has database 0 only."""
    pool = getattr(client, "connection_pool", None)
    return f"{name}@{pool.connection_kwargs.get('db', 0) if pool is not None else 0}"


def mget(client, keys: list[str]) -> list:
    """``MGET`` of keys in any slots: one command on a single Redis, one per node on a cluster."""
    nonatomic = getattr(client, "mget_nonatomic", None)  # cluster clients only
    return nonatomic(keys) if nonatomic is not None else client.mget(keys)


async def ready(client) -> None:
    """Load an asyncio cluster client's slot map now. Call it before the first pub/sub command (a
    cluster pub/sub picks its node by the channel's slot from that map) and before commands run
    concurrently (concurrent first commands on a fresh client race to load it and get ``MOVED``)."""
    if isinstance(client, aiocluster.RedisCluster):
        await client.initialize()
