"""DSP fan-out configuration: a frozen copy of ``config.env``'s typed ``DSP_*`` constants.

The fan-out runs in the bid workers, which do not load Django settings on the hot path (as
``apps.bidding.conf.BidConfig``); tests build variants with ``dataclasses.replace``.
"""
from __future__ import annotations

import dataclasses

from config import env


@dataclasses.dataclass(frozen=True)
class DspConfig:
    tmax_cap_ms: int = 300
    network_buffer_ms: int = 10
    min_platform_ms: int = 10
    late_grace_ms: int = 50
    http_client: str = "lean"
    pool_size: int = 256
    qps_workers: int = 2
    snapshot_poll_seconds: float = 0.5
    auction_ttl_seconds: int = 3600
    breaker_failures: int = 5
    breaker_reset_seconds: float = 10.0
    max_body_bytes: int = 65536
    redis_url: str = "redis://127.0.0.1:6379/0"

    @classmethod
    def from_env(cls) -> "DspConfig":
        return cls(
            tmax_cap_ms=env.DSP_TMAX_CAP_MS,
            network_buffer_ms=env.DSP_NETWORK_BUFFER_MS,
            min_platform_ms=env.DSP_MIN_PLATFORM_MS,
            late_grace_ms=env.DSP_LATE_GRACE_MS,
            http_client=env.DSP_HTTP_CLIENT,
            pool_size=env.DSP_POOL_SIZE,
            qps_workers=env.DSP_QPS_WORKERS,
            snapshot_poll_seconds=env.DSP_SNAPSHOT_POLL_SECONDS,
            auction_ttl_seconds=env.DSP_AUCTION_TTL_SECONDS,
            breaker_failures=env.DSP_BREAKER_FAILURES,
            breaker_reset_seconds=env.DSP_BREAKER_RESET_SECONDS,
            max_body_bytes=env.BID_MAX_BODY_BYTES,
            redis_url=env.REDIS_URL,
        )
