"""The one place that reads the process environment.

Every setting that can vary between machines is read here, once, when this module is imported: typed,
with a default that points at the local services on 127.0.0.1, and listed in the README's Environment
table (``tests/core/test_env.py`` checks both). A value that cannot be read as its type refuses to
start the process with the variable's name instead of being guessed at.

Who reads what: Django processes read ``django.conf.settings`` (``config/settings/*`` copies these
constants, and reads the Django-only variables through the readers below); the processes that do not
load Django settings on the hot path (the uvicorn bid workers and their supervisor) and the modules
they share with Django processes (``apps.bidding.conf.BidConfig``, ``apps.inference``, the analytics
emitter, ``apps.core.metrics``) read the typed constants of this module. Nothing in ``apps/`` reads
``os.environ``. Tests change configuration (the ``settings`` fixture, a built ``BidConfig``, or
``monkeypatch.setattr`` on a constant here), never the environment of the running process.
"""
from __future__ import annotations

import math
import os
import re
from urllib.parse import urlparse


class ImproperlyConfiguredEnv(RuntimeError):
    pass


def _raw(name: str) -> str | None:
    """The one read of the process environment: every reader below goes through it."""
    return os.environ.get(name)


def env_str(name: str, default: str = "") -> str:
    """A string, as given (an empty value stays empty: callers choose whether empty means default)."""
    raw = _raw(name)
    return default if raw is None else raw


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def env_bool(name: str, default: bool = False) -> bool:
    """A yes/no variable. Anything but the words below refuses to start: ``STAFF_2FA_REQUIRED=ture``
    must not quietly mean false."""
    raw = _raw(name)
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


def _in_range(name: str, value, minimum, maximum):
    if minimum is not None and value < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfiguredEnv(f"{name} must be at most {maximum}, got {value}")
    return value


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (``5``, ``-1``, ``100_000``); ``5.0``, ``5s`` or ``five`` refuse to start."""
    raw = _raw(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be an integer, got {raw!r}") from None
    return _in_range(name, value, minimum, maximum)


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite number (``0.5``, ``30``, ``1e-3``); ``nan``, ``inf`` or ``30s`` refuse to start."""
    raw = _raw(name)
    if raw is None or raw.strip() == "":
        return float(default)
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ImproperlyConfiguredEnv(f"{name} must be a finite number, got {raw!r}")
    return _in_range(name, value, minimum, maximum)


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """Comma-separated items (``a.example,b.example``); blanks around items and empty items are
    dropped. An item with whitespace inside (``a.example b.example``: a forgotten comma) refuses."""
    raw = _raw(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    items = [part.strip() for part in raw.split(",") if part.strip()]
    for item in items:
        if any(char.isspace() for char in item):
            raise ImproperlyConfiguredEnv(
                f"{name} is a comma-separated list and {item!r} contains whitespace (a missing comma?), got {raw!r}")
    return items


RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(
    r"(?P<num>[0-9]+)\s*/\s*(?P<unit>s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?)", re.ASCII)


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"3000/m"`` → ``(3000, 60)`` requests per seconds; ``None``, ``""`` or ``"off"`` → None (no limit).
    The period is ``s``, ``m``, ``h`` or ``d`` (or the word: ``minute``, ``hours``, ...)."""
    if rate is None or rate.strip().lower() in {"", "off"}:
        return None
    match = _RATE.fullmatch(rate.strip().lower())
    if match is None or int(match["num"]) < 1:
        raise ValueError(f"rate {rate!r} is not <requests>/<s|m|h|d> (e.g. 3000/m) or off")
    return int(match["num"]), RATE_PERIODS[match["unit"][0]]


def env_rate(name: str, default: str) -> str:
    """A rate limit such as ``3000/m`` (or ``off``), checked at start-up."""
    raw = _raw(name)
    value = default if raw is None or raw.strip() == "" else raw.strip()
    try:
        parse_rate(value)
    except ValueError as exc:
        raise ImproperlyConfiguredEnv(f"{name}: {exc}") from None
    return value


def env_exchange_keys(name: str) -> dict[str, str]:
    """``adx:k1,magnite:k2`` → ``{"k1": "adx", "k2": "magnite"}`` (a bare key is named "exchange")."""
    keys: dict[str, str] = {}
    for entry in env_list(name, []):
        exchange, sep, key = entry.partition(":")
        if not sep:
            exchange, key = "exchange", exchange
        if not key.strip():
            raise ImproperlyConfiguredEnv(f"{name} entry {entry!r} has an empty key")
        keys[key.strip()] = exchange.strip() or "exchange"
    return keys


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


# --- bid path (apps.bidding.conf.BidConfig; docs/RULES.md §1) -----------------------------------
# The bid workers do not load Django settings: BidConfig.from_env() copies these.
BID_TMAX_CAP_MS = env_int("BID_TMAX_CAP_MS", 100, minimum=1)
BID_NETWORK_BUFFER_MS = env_int("BID_NETWORK_BUFFER_MS", 20, minimum=0)
BID_BATCH_SIZE = env_int("BID_BATCH_SIZE", 64, minimum=1)
BID_L1_MAX_ENTRIES = env_int("BID_L1_MAX_ENTRIES", 100_000, minimum=1)
BID_L1_TTL_SECONDS = env_float("BID_L1_TTL_SECONDS", 1800.0, minimum=0)
BID_MAX_BODY_BYTES = env_int("BID_MAX_BODY_BYTES", 65536, minimum=1)
BID_FREQ_MAX_PER_HOUR = env_int("BID_FREQ_MAX_PER_HOUR", 10, minimum=0)
BID_FREQ_MAX_PER_DAY = env_int("BID_FREQ_MAX_PER_DAY", 50, minimum=0)
BID_SEAT = env_str("BID_SEAT", "campaign-express")
BID_MIN_BID_FRACTION = env_float("BID_MIN_BID_FRACTION", 0.5, minimum=0, maximum=1)
BID_REQUEST_SAMPLE_RATE = env_float("BID_REQUEST_SAMPLE_RATE", 0.01, minimum=0, maximum=1)
BID_SNAPSHOT_POLL_SECONDS = env_float("BID_SNAPSHOT_POLL_SECONDS", 5.0, minimum=0.01)
BID_GC_FREEZE_SECONDS = env_float("BID_GC_FREEZE_SECONDS", 10.0, minimum=0)  # 0 = never freeze
BID_WIN_MAX_AGE_SECONDS = env_int("BID_WIN_MAX_AGE_SECONDS", 86400, minimum=1)
# Empty: derived from DJANGO_SECRET_KEY in development; BidConfig refuses to start without it in production.
BID_WIN_SECRET = env_str("BID_WIN_SECRET", "")
BID_EXCHANGE_KEYS = env_exchange_keys("BID_EXCHANGE_KEYS")  # {key: exchange name}; empty = open
BID_NATS_SUBJECT = env_str("BID_NATS_SUBJECT", "campaign-bids.bid-requests")
BID_NATS_QUEUE = env_str("BID_NATS_QUEUE", "bid-agents")

# --- DSP fan-out (apps.dsp.conf.DspConfig; docs/RULES.md §6) -------------------------------------
DSP_TMAX_CAP_MS = env_int("DSP_TMAX_CAP_MS", 300, minimum=1)
DSP_NETWORK_BUFFER_MS = env_int("DSP_NETWORK_BUFFER_MS", 10, minimum=0)
DSP_MIN_PLATFORM_MS = env_int("DSP_MIN_PLATFORM_MS", 10, minimum=1)
DSP_LATE_GRACE_MS = env_int("DSP_LATE_GRACE_MS", 50, minimum=0)
DSP_HTTP_CLIENT = env_str("DSP_HTTP_CLIENT", "lean").strip().lower() or "lean"
if DSP_HTTP_CLIENT not in ("aiohttp", "httpx", "lean"):
    raise ImproperlyConfiguredEnv(f"DSP_HTTP_CLIENT must be aiohttp, httpx or lean, got {DSP_HTTP_CLIENT!r}")
DSP_POOL_SIZE = env_int("DSP_POOL_SIZE", 256, minimum=1)
DSP_QPS_WORKERS = env_int("DSP_QPS_WORKERS", 2, minimum=1)  # a platform's QPS cap is split over this many
DSP_SNAPSHOT_POLL_SECONDS = env_float("DSP_SNAPSHOT_POLL_SECONDS", 0.5, minimum=0.01)
DSP_AUCTION_TTL_SECONDS = env_int("DSP_AUCTION_TTL_SECONDS", 3600, minimum=1)
DSP_BREAKER_FAILURES = env_int("DSP_BREAKER_FAILURES", 5, minimum=1)
DSP_BREAKER_RESET_SECONDS = env_float("DSP_BREAKER_RESET_SECONDS", 10.0, minimum=0.01)
DSP_NOTICE_MAX_RETRIES = env_int("DSP_NOTICE_MAX_RETRIES", 5, minimum=0)
DSP_NOTICE_TIMEOUT_SECONDS = env_float("DSP_NOTICE_TIMEOUT_SECONDS", 5.0, minimum=0.01)

# --- inference (apps.inference: the bid workers and manage.py publish_model) --------------------
NPU_PROVIDER = env_str("CAMPAIGN_EXPRESS__NPU__PROVIDER", "cpu").strip().lower() or "cpu"
# A relative path is taken from the project root (apps.inference.registry.model_dir).
NPU_MODEL_DIR = env_str("CAMPAIGN_EXPRESS__NPU__MODEL_DIR", "var/models")
NPU_SEED = env_int("CAMPAIGN_EXPRESS__NPU__SEED", 42)
NPU_BATCHING = env_bool("CAMPAIGN_EXPRESS__NPU__BATCHING", False)
NPU_BATCH_MAX_ITEMS = env_int("CAMPAIGN_EXPRESS__NPU__BATCH_MAX_ITEMS", 16, minimum=1)
NPU_BATCH_MAX_WAIT_US = env_int("CAMPAIGN_EXPRESS__NPU__BATCH_MAX_WAIT_US", 500, minimum=0)
NPU_POLL_INTERVAL_S = env_float("CAMPAIGN_EXPRESS__NPU__POLL_INTERVAL_S", 2.0, minimum=0.01)

# --- analytics emitter (apps.analytics.emitter: every process, the bid workers included) ---------
ANALYTICS_REDIS_URL = env_str("ANALYTICS_REDIS_URL", "")  # empty = REDIS_URL
ANALYTICS_STREAM = env_str("ANALYTICS_STREAM", "") or "analytics:events"
ANALYTICS_BUFFER_SIZE = env_int("ANALYTICS_BUFFER_SIZE", 100_000, minimum=1)
ANALYTICS_FLUSH_INTERVAL_MS = env_int("ANALYTICS_FLUSH_INTERVAL_MS", 100, minimum=1)
ANALYTICS_STREAM_CHUNK = env_int("ANALYTICS_STREAM_CHUNK", 100, minimum=1)
ANALYTICS_EXIT_FLUSH_SECONDS = env_float("ANALYTICS_EXIT_FLUSH_SECONDS", 3.0, minimum=0)

# --- outbound HTTP to vendors (apps.core.outbound) ------------------------------------------------
# Fernet keys (urlsafe base64 of 32 bytes, ``Fernet.generate_key()``), comma-separated: the first
# encrypts, every one decrypts (rotation: put the new key first, re-encrypt, then drop the old one).
# Empty: derived from DJANGO_SECRET_KEY in development; production refuses to start without it
# (apps.core.outbound.crypto, and the core.E001 system check).
OUTBOUND_SECRET_KEYS = env_list("OUTBOUND_SECRET_KEYS", [])

# --- metrics (apps.core.metrics) ------------------------------------------------------------------
# prometheus_client's own variable, read by it when first imported: set before the process starts
# (the Procfile's worker line, docker/compose.yaml) or by run_bid_app for the workers it launches.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
