"""Bid-path configuration, read once per process through ``config.env`` (never ``os.environ``).

The bid app, the gRPC sidecar and the agents do not load Django settings on the hot path, so their
knobs live here as a frozen dataclass; tests build variants with ``dataclasses.replace``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac

from config import env


def _exchange_keys(entries: list[str]) -> dict[str, str]:
    """``BID_EXCHANGE_KEYS=adx:k1,magnite:k2`` -> ``{"k1": "adx", "k2": "magnite"}`` (a bare key is "exchange")."""
    keys: dict[str, str] = {}
    for entry in entries:
        name, sep, key = entry.partition(":")
        if not sep:
            name, key = "exchange", name
        if not key.strip():
            raise env.ImproperlyConfiguredEnv(f"BID_EXCHANGE_KEYS entry {entry!r} has an empty key")
        keys[key.strip()] = name.strip() or "exchange"
    return keys


def _win_secret() -> bytes:
    secret = env.env_str("BID_WIN_SECRET", "")
    if secret:
        return secret.encode()
    if env.IS_PRODUCTION:
        raise env.ImproperlyConfiguredEnv("BID_WIN_SECRET must be set when CAMPAIGN_EXPRESS_ENV=production")
    # Development: derive from the Django secret so every local process agrees without extra setup.
    return hmac.new(env.SECRET_KEY.encode(), b"campaign-express bid win notices", hashlib.sha256).digest()


@dataclasses.dataclass(frozen=True)
class BidConfig:
    tmax_cap_ms: int = 100
    network_buffer_ms: int = 20
    batch_size: int = 64
    l1_max_entries: int = 100_000
    l1_ttl_seconds: float = 1800.0
    max_body_bytes: int = 65536
    freq_max_per_hour: int = 10
    freq_max_per_day: int = 50
    seat: str = "campaign-express"
    min_bid_fraction: float = 0.5
    request_sample_rate: float = 0.01
    snapshot_poll_seconds: float = 5.0
    gc_freeze_seconds: float = 10.0
    win_max_age_seconds: int = 86400
    public_base_url: str = "http://127.0.0.1:8081"
    win_secret: bytes = b""
    exchange_keys: dict = dataclasses.field(default_factory=dict)
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    nats_subject: str = "campaign-bids.bid-requests"
    nats_queue: str = "bid-agents"
    node_id: str = "local"

    @classmethod
    def from_env(cls) -> "BidConfig":
        return cls(
            tmax_cap_ms=env.env_int("BID_TMAX_CAP_MS", 100),
            network_buffer_ms=env.env_int("BID_NETWORK_BUFFER_MS", 20),
            batch_size=env.env_int("BID_BATCH_SIZE", 64),
            l1_max_entries=env.env_int("BID_L1_MAX_ENTRIES", 100_000),
            l1_ttl_seconds=env.env_float("BID_L1_TTL_SECONDS", 1800.0),
            max_body_bytes=env.env_int("BID_MAX_BODY_BYTES", 65536),
            freq_max_per_hour=env.env_int("BID_FREQ_MAX_PER_HOUR", 10),
            freq_max_per_day=env.env_int("BID_FREQ_MAX_PER_DAY", 50),
            seat=env.env_str("BID_SEAT", "campaign-express"),
            min_bid_fraction=env.env_float("BID_MIN_BID_FRACTION", 0.5),
            request_sample_rate=env.env_float("BID_REQUEST_SAMPLE_RATE", 0.01),
            snapshot_poll_seconds=env.env_float("BID_SNAPSHOT_POLL_SECONDS", 5.0),
            gc_freeze_seconds=env.env_float("BID_GC_FREEZE_SECONDS", 10.0),
            win_max_age_seconds=env.env_int("BID_WIN_MAX_AGE_SECONDS", 86400),
            public_base_url=env.env_str("BID_PUBLIC_BASE_URL", env.BID_PUBLIC_BASE_URL).rstrip("/"),
            win_secret=_win_secret(),
            exchange_keys=_exchange_keys(env.env_list("BID_EXCHANGE_KEYS", [])),
            redis_url=env.env_str("REDIS_URL", env.REDIS_URL),
            nats_url=env.env_str("NATS_URL", env.NATS_URL),
            nats_subject=env.env_str("BID_NATS_SUBJECT", "campaign-bids.bid-requests"),
            nats_queue=env.env_str("BID_NATS_QUEUE", "bid-agents"),
            node_id=env.NODE_ID,
        )

    def exchange_for_key(self, key: str | None) -> str | None:
        """The exchange name for an ``X-Exchange-Key`` value; None when keys are configured and it is wrong.

        With no keys configured every caller is accepted (development) and named "open".
        """
        if not self.exchange_keys:
            return "open"
        if not key:
            return None
        return self.exchange_keys.get(key)
