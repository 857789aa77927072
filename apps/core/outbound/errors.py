"""What an outbound call that did not succeed says, and the rules for what may be retried."""
from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC, datetime

import httpx

__all__ = ["KINDS", "OutboundError", "parse_rate_limit_reset", "parse_retry_after", "retryable_status"]

#: timeout / network: the request may not have arrived; http: the vendor answered non-2xx;
#: breaker_open: refused before sending (vendor marked down); rate_limited: our bucket is empty.
KINDS = ("timeout", "network", "http", "breaker_open", "rate_limited")


class OutboundError(Exception):
    """An outbound call that did not succeed. ``retryable`` says whether the same call later may
    (network, timeout, 5xx, 408, 429, breaker open, rate limited); ``retry_after`` is the wait the
    vendor (or our bucket/breaker) asked for, in seconds, when known."""

    def __init__(self, message: str, *, name: str, kind: str, status_code: int | None = None,
                 retryable: bool, retry_after: float | None = None, response: httpx.Response | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        super().__init__(message)
        self.message = message
        self.name = name
        self.kind = kind
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after = retry_after
        self.response = response

    def __str__(self) -> str:
        status = f" HTTP {self.status_code}" if self.status_code else ""
        return f"{self.name} {self.kind}{status}: {self.message}"

    def __repr__(self) -> str:
        return (f"OutboundError({self.message!r}, name={self.name!r}, kind={self.kind!r}, "
                f"status_code={self.status_code!r}, retryable={self.retryable!r}, retry_after={self.retry_after!r})")

    def json(self) -> dict | list | None:
        """The vendor's error body as JSON, when there is one (for reading its error message)."""
        if self.response is None:
            return None
        try:
            return self.response.json()
        except ValueError:
            return None


def retryable_status(status: int) -> bool:
    """5xx, 408 Request Timeout and 429 Too Many Requests: the same request may succeed later."""
    return status >= 500 or status in (408, 429)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds (``"120"``) or an HTTP date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``); None when absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_rate_limit_reset(value: str | None, *, now: float | None = None) -> float | None:
    """``X-RateLimit-Reset`` as seconds from now. Jira Cloud sends an ISO 8601 timestamp to the
    minute (``2026-12-04T18:31Z``: "the request timestamp plus the Retry-After period"); seconds and
    offsets are read too, and so is a Unix epoch in seconds (other vendors' gateways). None when
    absent or unreadable; never negative (a reset already past is 0)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        epoch = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        epoch = when.timestamp()
    if not math.isfinite(epoch) or epoch < 1_000_000_000:
        return None  # not a point in time
    return max(0.0, epoch - (time.time() if now is None else now))
