"""Rate limits of the REST API: per token (its user) when authenticated, per client address otherwise.

DRF's ``SimpleRateThrottle`` keeps a list of timestamps per client in the cache and writes it back on
every request (a read-modify-write: concurrent requests lose each other's entries, and a 3,000/min
limit reads and writes a 3,000-element list per call). These count in fixed windows with one atomic
Redis ``INCR`` per request instead, on the Django cache's Redis (``CACHE_URL``).

Rates come from ``API_RATE_LIMIT_USER`` / ``_ANON`` / ``_WEBHOOK`` (``<n>/<s|m|h|d>`` or ``off``),
read in ``config.settings.api``. A throttled request answers 429 with ``Retry-After`` (seconds to the
end of the window) and the usual ``{"error": "throttled", "detail": ...}`` body (``apps.core.api``).

If the cache's Redis does not answer, requests are let through (logged): an outage of the limiter
must not take the API down with it.
"""
from __future__ import annotations

import math
import time

import structlog
from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from config.env import parse_rate

log = structlog.get_logger(__name__)

class FixedWindowRateThrottle(BaseThrottle):
    """At most N requests per client per window; ``scope`` names the rate in ``API_RATE_LIMITS``.

    A view may set ``throttle_scope`` to count its callers against another rate (webhooks do)."""

    scope: str = ""
    key_prefix = "ce:ratelimit"

    def __init__(self):
        self.retry_after: int | None = None

    def rate_scope(self, view) -> str:
        return getattr(view, "throttle_scope", None) or self.scope

    def get_ident_key(self, request, view) -> str | None:
        """Who is counted, or None when this throttle does not apply to the request."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        scope = self.rate_scope(view)
        limit = parse_rate(settings.API_RATE_LIMITS.get(scope))
        ident = self.get_ident_key(request, view)
        if limit is None or ident is None:
            return True
        num_requests, duration = limit
        now = time.time()
        window = int(now // duration)
        key = f"{self.key_prefix}:{scope}:{ident}:{duration}:{window}"
        try:
            count = _incr_with_expiry(key, duration)
        except (RedisError, OSError) as exc:  # the limiter's store is down: let the request through
            log.warning("rate_limit_unavailable", scope=scope, error=f"{type(exc).__name__}: {exc}")
            return True
        if count <= num_requests:
            return True
        self.retry_after = max(1, math.ceil((window + 1) * duration - now))
        return False

    def wait(self) -> int | None:
        return self.retry_after


def _incr_with_expiry(key: str, ttl_seconds: int) -> int:
    from django_redis import get_redis_connection

    pipe = get_redis_connection("default").pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, ttl_seconds + 1, nx=True)
    count, _ = pipe.execute()
    return int(count)


class TokenRateThrottle(FixedWindowRateThrottle):
    """Authenticated callers, counted per user (one Token per user: per token)."""

    scope = "user"

    def rate_scope(self, view) -> str:
        return self.scope

    def get_ident_key(self, request, view) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return f"u{user.pk}"


class AnonRateThrottle(FixedWindowRateThrottle):
    """Unauthenticated callers (schema, docs, provider webhooks), counted per client address.

    The address is ``REMOTE_ADDR`` unless ``API_TRUSTED_PROXIES`` (DRF ``NUM_PROXIES``) says how many
    proxies in front of us append to ``X-Forwarded-For``; a client cannot pick its own address."""

    scope = "anon"

    def get_ident_key(self, request, view) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return None
        return f"ip{self.get_ident(request)}"
