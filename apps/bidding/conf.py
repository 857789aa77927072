"""Bid-path configuration: a frozen copy of ``config.env``'s typed ``BID_*`` constants.

The bid app, the gRPC sidecar and the agents do not load Django settings on the hot path, so their
knobs live here as a frozen dataclass. The environment is read (and checked: a malformed value
refuses to start, naming the variable) once, in ``config/env.py``; tests build variants with
``dataclasses.replace`` or ``BidConfig(...)``, never by setting environment variables.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac

from config import env


def _win_secret() -> bytes:
    secret = env.BID_WIN_SECRET
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
        """This process's configuration, from the constants ``config.env`` read at start-up."""
        return cls(
            tmax_cap_ms=env.BID_TMAX_CAP_MS,
            network_buffer_ms=env.BID_NETWORK_BUFFER_MS,
            batch_size=env.BID_BATCH_SIZE,
            l1_max_entries=env.BID_L1_MAX_ENTRIES,
            l1_ttl_seconds=env.BID_L1_TTL_SECONDS,
            max_body_bytes=env.BID_MAX_BODY_BYTES,
            freq_max_per_hour=env.BID_FREQ_MAX_PER_HOUR,
            freq_max_per_day=env.BID_FREQ_MAX_PER_DAY,
            seat=env.BID_SEAT,
            min_bid_fraction=env.BID_MIN_BID_FRACTION,
            request_sample_rate=env.BID_REQUEST_SAMPLE_RATE,
            snapshot_poll_seconds=env.BID_SNAPSHOT_POLL_SECONDS,
            gc_freeze_seconds=env.BID_GC_FREEZE_SECONDS,
            win_max_age_seconds=env.BID_WIN_MAX_AGE_SECONDS,
            public_base_url=env.BID_PUBLIC_BASE_URL.rstrip("/"),
            win_secret=_win_secret(),
            exchange_keys=dict(env.BID_EXCHANGE_KEYS),
            redis_url=env.REDIS_URL,
            nats_url=env.NATS_URL,
            nats_subject=env.BID_NATS_SUBJECT,
            nats_queue=env.BID_NATS_QUEUE,
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
