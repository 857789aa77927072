"""The one place that reads the process environment.

Every setting that can vary between machines is read here, typed, with a default that points at the
local services on 127.0.0.1. Settings modules and the bid app import from this module, never from
``os.environ`` directly.
"""
from __future__ import annotations

import os
from urllib.parse import urlparse


class ImproperlyConfiguredEnv(RuntimeError):
    pass


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def env_bool(name: str, default: bool = False) -> bool:
    """A yes/no variable. Anything but the words below refuses to start: ``STAFF_2FA_REQUIRED=ture``
    must not quietly mean false."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfiguredEnv(
        f"{name} must be one of {', '.join(sorted(TRUE_WORDS | FALSE_WORDS))}, got {raw!r}"
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"{name} must be a number, got {raw!r}") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return list(default or [])
    return [part.strip() for part in raw.split(",") if part.strip()]


RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"3000/m"`` → ``(3000, 60)`` requests per seconds; ``None``, ``""`` or ``"off"`` → None (no limit)."""
    if rate is None or rate.strip().lower() in {"", "off"}:
        return None
    num, _, period = rate.strip().partition("/")
    unit = period.strip().lower()[:1]
    if not num.strip().isdigit() or int(num) < 1 or unit not in RATE_PERIODS:
        raise ValueError(f"rate {rate!r} is not <requests>/<s|m|h|d> (e.g. 3000/m) or off")
    return int(num), RATE_PERIODS[unit]


def env_rate(name: str, default: str) -> str:
    """A rate limit such as ``3000/m`` (or ``off``), checked at start-up."""
    raw = os.environ.get(name) or default
    try:
        parse_rate(raw)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"{name}: {exc}") from None
    return raw


# --- process ------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
IS_PRODUCTION = env_str("CAMPAIGN_EXPRESS_ENV", "development") == "production"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ImproperlyConfiguredEnv("DJANGO_SECRET_KEY must be set when CAMPAIGN_EXPRESS_ENV=production")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["*"] if not IS_PRODUCTION else [])
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "console")  # console | json
NODE_ID = env_str("NODE_ID", os.uname().nodename)
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8080")
BID_PUBLIC_BASE_URL = env_str("BID_PUBLIC_BASE_URL", "http://127.0.0.1:8081")

# --- stores -------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/campaign_express")
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHE_URL = env_str("CACHE_URL", "redis://127.0.0.1:6379/1")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")
CHANNEL_LAYER_URL = env_str("CHANNEL_LAYER_URL", "redis://127.0.0.1:6379/3")
CLICKHOUSE_URL = env_str("CLICKHOUSE_URL", "clickhouse://default@127.0.0.1:9000/campaign_express")
NATS_URL = env_str("NATS_URL", "nats://127.0.0.1:4222")


# --- database connections -----------------------------------------------------------------------
# Every process that runs Django code gets a psycopg connection pool of its own (Django's
# ``OPTIONS["pool"]``) with ``CONN_MAX_AGE=0``: a request, task or message borrows a connection and gives
# it back when it ends, so a process never holds more than ``DATABASE_POOL_MAX_SIZE`` connections, however
# its threads come and go (under ASGI every request runs in a thread of its own, and a persistent
# connection left in a finished thread stays open until the garbage collector finds it). The Procfile
# sizes the pool per process; README "Database connections" adds the budgets up.
DATABASE_POOL = env_bool("DATABASE_POOL", True)
DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 1)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 4)
DATABASE_POOL_TIMEOUT = env_float("DATABASE_POOL_TIMEOUT", 10.0)
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 3)
DATABASE_APPLICATION_NAME = env_str("DATABASE_APPLICATION_NAME", "campaign-express")


def database_config(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfiguredEnv(f"DATABASE_URL must be a postgres:// URL, got {url!r}")
    options: dict = {"connect_timeout": DATABASE_CONNECT_TIMEOUT, "application_name": DATABASE_APPLICATION_NAME}
    if DATABASE_POOL:
        if not 0 <= DATABASE_POOL_MIN_SIZE <= DATABASE_POOL_MAX_SIZE or DATABASE_POOL_MAX_SIZE < 1:
            raise ImproperlyConfiguredEnv(
                "DATABASE_POOL_MIN_SIZE and DATABASE_POOL_MAX_SIZE need 0 <= min <= max and max >= 1, got "
                f"{DATABASE_POOL_MIN_SIZE} and {DATABASE_POOL_MAX_SIZE}")
        options["pool"] = {"min_size": DATABASE_POOL_MIN_SIZE, "max_size": DATABASE_POOL_MAX_SIZE,
                           "timeout": DATABASE_POOL_TIMEOUT, "name": DATABASE_APPLICATION_NAME}
        # Pooled connections are handed back at the end of each request/task: never persistent.
        conn_max_age = 0
    else:
        # Without a pool, 0 is the only safe value under ASGI; a sync process may opt into more.
        conn_max_age = env_int("DATABASE_CONN_MAX_AGE", 0)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.path.lstrip("/") or "campaign_express",
        "USER": parsed.username or "postgres",
        "PASSWORD": parsed.password or "",
        "HOST": parsed.hostname or "127.0.0.1",
        "PORT": str(parsed.port or 5432),
        "CONN_MAX_AGE": conn_max_age,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }
