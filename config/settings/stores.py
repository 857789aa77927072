from config import env

DATABASES = {"default": env.database_config(env.DATABASE_URL)}

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": env.CACHE_URL,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
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

NATS_URL = env.NATS_URL
