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


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


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


def database_config(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfiguredEnv(f"DATABASE_URL must be a postgres:// URL, got {url!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.path.lstrip("/") or "campaign_express",
        "USER": parsed.username or "postgres",
        "PASSWORD": parsed.password or "",
        "HOST": parsed.hostname or "127.0.0.1",
        "PORT": str(parsed.port or 5432),
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }
