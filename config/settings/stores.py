from config import env

DATABASES = {"default": env.database_config(env.DATABASE_URL)}

_CACHE_OPTIONS: dict[str, object] = {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}
_CACHE_LOCATION: str | list[str] = env.CACHE_URL
if env.CACHE_URL.split("://", 1)[0] in ("redis+cluster", "rediss+cluster"):  # apps.core.redis.CLUSTER_SCHEMES
    # One cluster URL (its commas list startup nodes), through redis-py's RedisCluster.
    _CACHE_LOCATION = [env.CACHE_URL]
    _CACHE_OPTIONS["CLIENT_CLASS"] = "apps.core.cache_cluster.ClusterCacheClient"
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": _CACHE_LOCATION,
        "OPTIONS": _CACHE_OPTIONS,
        "KEY_PREFIX": "ce",
    }
}

# Plain Redis (profiles, counters, offer snapshot, analytics stream) — not the Django cache.
REDIS_URL = env.REDIS_URL

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [env.CHANNEL_LAYER_URL]},
    }
}

CLICKHOUSE_URL = env.CLICKHOUSE_URL
CLICKHOUSE_CONNECT_TIMEOUT = env.env_float("CLICKHOUSE_CONNECT_TIMEOUT", 2.0)
CLICKHOUSE_QUERY_TIMEOUT = env.env_float("CLICKHOUSE_QUERY_TIMEOUT", 30.0)
# Sharded analytics (docs/CLICKHOUSE_CLUSTER.md): the ``remote_servers`` cluster the node of
# CLICKHOUSE_URL names. Empty: one node, plain tables. Set: ``<table>_local`` on every shard plus a
# ``Distributed`` table under the table's own name, which inserts and reports use.
CLICKHOUSE_CLUSTER = env.env_str("CLICKHOUSE_CLUSTER", "").strip()
# How the migration runner reaches the shards: ``per_shard`` (default; no Keeper needed) connects to every
# host of ``system.clusters`` itself, ``on_cluster`` sends ``ON CLUSTER`` DDL once (needs Keeper/ZooKeeper).
CLICKHOUSE_CLUSTER_DDL = env.env_str("CLICKHOUSE_CLUSTER_DDL", "per_shard").strip().lower()
if CLICKHOUSE_CLUSTER_DDL not in ("per_shard", "on_cluster"):
    raise env.ImproperlyConfiguredEnv(f"CLICKHOUSE_CLUSTER_DDL must be per_shard or on_cluster, got {CLICKHOUSE_CLUSTER_DDL!r}")
# Local tables as Replicated*MergeTree (needs Keeper and the {shard}/{replica} macros on every server).
CLICKHOUSE_REPLICATED = env.env_bool("CLICKHOUSE_REPLICATED", False)

NATS_URL = env.NATS_URL
