"""Outbound HTTP to vendors (issues 11, 14, 18): one toolkit every adaptor uses.

* :mod:`.client` — ``OutboundClient`` / ``AsyncOutboundClient``: pooled httpx, timeouts, retries
  honouring ``Retry-After``, rate limit, circuit breaker, metrics, the call log.
* :mod:`.ratelimit` — ``TokenBucket`` (per process) and ``RedisTokenBucket`` (shared).
* :mod:`.breaker` — ``CircuitBreaker`` with its state in Redis.
* :mod:`.crypto` — ``encrypt``/``decrypt`` and ``EncryptedJSONField`` for credentials;
  :mod:`.secrets_admin` — ``SecretFieldsMixin``, the admin that shows "set / not set", never values.
* :mod:`.calllog` — the ``OutboundCall`` rows (model in ``apps.core.models``) and their purge.

Importing this package needs no Django settings (the bid workers use the client, buckets and breaker
with ``log_calls=False`` and an explicit Redis client); the field, the admin and the call log do.
See ``apps/core/outbound/README.md``.
"""
from apps.core.outbound.breaker import CircuitBreaker
from apps.core.outbound.client import AsyncOutboundClient, OutboundClient, join_url
from apps.core.outbound.errors import OutboundError, parse_rate_limit_reset, parse_retry_after, retryable_status
from apps.core.outbound.ratelimit import RedisTokenBucket, TokenBucket

__all__ = [
    "AsyncOutboundClient", "CircuitBreaker", "OutboundClient", "OutboundError", "RedisTokenBucket",
    "TokenBucket", "join_url", "parse_rate_limit_reset", "parse_retry_after", "retryable_status",
]
