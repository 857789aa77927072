"""The Django cache on a Redis Cluster: ``CACHE_URL=redis+cluster://host:port[,host:port...]``.

django-redis builds a ``redis.Redis`` per ``LOCATION`` entry from a shared connection pool, and
splits a ``LOCATION`` string at commas (its replica list). A cluster client manages its own
connections per node, and a cluster URL lists startup nodes at commas, so this client keeps the URL
whole and connects through ``apps.core.redis.sync_from_url`` (redis-py's ``RedisCluster``, the same
URL grammar as ``REDIS_URL``).

What differs on a cluster, and how each is kept:

* ``get_many`` is one ``MGET`` on a single Redis; keys of different slots cannot share one, so it
  reads per node (``mget_nonatomic``): each key's value is still read atomically, the set of them
  is not a snapshot — as with ``get`` called per key, which is all Django's cache API promises.
* ``keys`` sends ``KEYS`` to one node on a cluster; here it scans every master (``SCAN``, as
  ``iter_keys`` and ``delete_pattern`` do through redis-py's cluster routing).
* ``delete_many`` and ``clear`` (``FLUSHDB`` on every master) work through that routing unchanged.
* The API rate limiter (``apps.core.throttling``) runs ``INCR`` + ``EXPIRE`` in a one-key
  ``MULTI``: one slot, so it stays atomic on a cluster.

Celery's broker (kombu) and the Channels layer (channels_redis) have no Redis Cluster client: they
stay on plain Redis URLs (docs/DESIGN.md "Redis Cluster").
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django_redis.client.default import DefaultClient, _main_exceptions
from django_redis.exceptions import ConnectionInterrupted

from apps.core import redis as redis_store


class ClusterCacheClient(DefaultClient):
    def __init__(self, server, params: dict[str, Any], backend) -> None:
        if isinstance(server, str):
            server = [server]  # one cluster URL; its commas list startup nodes, not replicas
        super().__init__(server, params, backend)

    def connect(self, index: int = 0):
        options = self._options
        kwargs = {}
        if "SOCKET_CONNECT_TIMEOUT" in options:
            kwargs["socket_connect_timeout"] = options["SOCKET_CONNECT_TIMEOUT"]
        if "SOCKET_TIMEOUT" in options:
            kwargs["socket_timeout"] = options["SOCKET_TIMEOUT"]
        return redis_store.sync_from_url(self._server[index], **kwargs)

    def disconnect(self, index: int = 0, client=None) -> None:
        client = client if client is not None else self._clients[index]
        if client is not None:
            client.close()

    def get_many(self, keys: Collection[str], version: int | None = None, client=None) -> dict:
        if client is None:
            client = self.get_client(write=False)
        if not keys:
            return {}
        map_keys = {self.make_key(k, version=version): k for k in keys}
        try:
            results = client.mget_nonatomic(list(map_keys))
        except _main_exceptions as e:
            raise ConnectionInterrupted(connection=client) from e
        return {map_keys[key]: self.decode(value)
                for key, value in zip(map_keys, results, strict=True) if value is not None}


    def keys(self, search: str, version: int | None = None, client=None) -> list:
        try:
            return list(self.iter_keys(search, version=version, client=client))
        except _main_exceptions as e:
            raise ConnectionInterrupted(connection=client) from e
