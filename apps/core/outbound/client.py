"""The one way to call a vendor's HTTP API: pooled connections, per-attempt timeouts, bounded retries
that honour ``Retry-After``, a rate limit, a circuit breaker, metrics and the call log.

Retried (up to ``retries`` more attempts): network errors, timeouts, 5xx, 408 and 429 — except that
a POST or PATCH whose request may already have arrived (a read timeout, a dropped connection) is not
re-sent inside the call (``idempotent=True`` allows it): the error says ``retryable`` and the caller,
which can look for what the first attempt made, decides. Connect failures are always retried. The wait
before the next attempt is the vendor's ``Retry-After`` (seconds or an HTTP date) when it gives one,
else ``backoff × 2^(attempt-1)`` with jitter. A ``Retry-After`` longer than ``max_retry_wait`` is not
slept through inside the call: the call fails with ``retryable=True, retry_after=<seconds>`` so the
caller (a Celery task) retries that much later. Any other 4xx is final at once.

Rate-limit headers (Jira Cloud's, and the common ``X-RateLimit-*`` pair): a retryable answer without
``Retry-After`` but with ``X-RateLimit-Reset`` (an ISO 8601 timestamp, or a Unix epoch) waits until
that reset, bounded the same way; any answer with ``X-RateLimit-Remaining: 0`` and a reset ahead
holds this client's next requests until the reset (not sent before it; a hold longer than
``max_retry_wait`` or past the call's deadline refuses with ``kind="rate_limited"`` and the
``retry_after`` left, without sending).

The breaker counts network errors, timeouts, 5xx, 408 and 429 as failures; any other answer
(2xx-4xx) shows the vendor is up and counts as a success. Success is 2xx/3xx (redirects are not
followed). A final non-success raises :class:`OutboundError`; ``raise_for_status=False`` returns the
last response instead (when there is one).
"""
from __future__ import annotations

import asyncio
import os
import random
import time
import weakref
from typing import Any

import httpx
from prometheus_client import Counter, Histogram

from apps.core.outbound.breaker import CircuitBreaker
from apps.core.outbound.calllog import arecord_call, record_call
from apps.core.outbound.errors import OutboundError, parse_rate_limit_reset, parse_retry_after, retryable_status
from apps.core.outbound.ratelimit import RedisTokenBucket, TokenBucket

__all__ = ["AsyncOutboundClient", "OutboundClient", "join_url"]

OUTBOUND_REQUESTS = Counter(
    "outbound_requests_total", "Outbound vendor HTTP attempts by outcome", ["name", "outcome"])
OUTBOUND_SECONDS = Histogram(
    "outbound_request_seconds", "Outbound vendor HTTP attempt time", ["name"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

# outcomes (metric label and OutboundCall.outcome)
OK, REJECTED, RETRYABLE, TIMEOUT, NETWORK, BREAKER_OPEN, RATE_LIMITED = (
    "ok", "rejected", "retryable", "timeout", "network", "breaker_open", "rate_limited")


def join_url(base_url: str, path_or_url: str) -> str:
    """``join_url("https://x.atlassian.net/", "/rest/api/3/issue")`` → ``https://x.atlassian.net/rest/api/3/issue``.

    An absolute ``http(s)://`` URL is returned as it is (a vendor's ``next_page`` link); otherwise
    the path is appended to the base, which keeps its own path (``https://app.asana.com/api/1.0``)."""
    if path_or_url.startswith(("http://", "https://")):
        return path_or_url
    if not base_url:
        raise ValueError(f"a relative path {path_or_url!r} needs a base_url")
    if not path_or_url:
        return base_url.rstrip("/")
    return f"{base_url.rstrip('/')}/{path_or_url.lstrip('/')}"


_live_sync: weakref.WeakSet = weakref.WeakSet()
_live_async: weakref.WeakSet = weakref.WeakSet()


def _drop_pools_after_fork() -> None:
    # Sockets must not be shared with the parent: the child opens its own connections.
    for client in list(_live_sync):
        client._http = None
    for client in list(_live_async):
        client._http = None


os.register_at_fork(after_in_child=_drop_pools_after_fork)


class _Attempt:
    """What one attempt came to: a response (any status) or a transport failure."""

    __slots__ = ("error", "kind", "outcome", "response", "retry_after", "sent")

    def __init__(self, *, response: httpx.Response | None = None, kind: str = "", error: str = "", sent: bool = True):
        self.response = response
        self.kind = kind
        self.error = error
        self.sent = sent  # False when the request cannot have reached the vendor (connect failed)
        self.retry_after: float | None = None
        if response is None:
            self.outcome = TIMEOUT if kind == "timeout" else NETWORK
        elif response.is_success or response.is_redirect:
            self.outcome = OK
        elif retryable_status(response.status_code):
            self.outcome = RETRYABLE
            self.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if self.retry_after is None:
                reset = parse_rate_limit_reset(response.headers.get(RATE_LIMIT_RESET))
                self.retry_after = reset or None  # a reset already past: our own backoff
        else:
            self.outcome = REJECTED

    @property
    def status_code(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def exhausted_for(self) -> float | None:
        """Seconds until the vendor's window resets when it says none are left (``X-RateLimit-Remaining: 0``)."""
        if self.response is None or self.response.headers.get(RATE_LIMIT_REMAINING, "").strip() != "0":
            return None
        return parse_rate_limit_reset(self.response.headers.get(RATE_LIMIT_RESET)) or None

    @property
    def breaker_failure(self) -> bool:
        return self.outcome in (RETRYABLE, TIMEOUT, NETWORK)


RATE_LIMIT_RESET, RATE_LIMIT_REMAINING = "X-RateLimit-Reset", "X-RateLimit-Remaining"

#: failures before any byte of the request left: safe to send again whatever the method
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _transport_failure(exc: httpx.TransportError, timeout: float) -> _Attempt:
    sent = not isinstance(exc, _NOT_SENT)
    if isinstance(exc, httpx.TimeoutException):
        return _Attempt(kind="timeout", error=f"timed out after {timeout:g} s: {exc!r}", sent=sent)
    return _Attempt(kind="network", error=f"network error: {exc!r}", sent=sent)


def _error_text(attempt: _Attempt) -> str:
    if attempt.response is None:
        return attempt.error
    if attempt.outcome == OK:
        return ""
    try:
        body = attempt.response.text
    except Exception:  # noqa: BLE001 - an undecodable body still gets its status logged
        body = ""
    return f"HTTP {attempt.response.status_code}: {body[:400]}".strip()


class _Base:
    def __init__(self, name: str, base_url: str = "", *, timeout: float = 5.0, retries: int = 2, backoff: float = 0.2,
                 rate_limit: TokenBucket | RedisTokenBucket | None = None, breaker: CircuitBreaker | None = None,
                 headers: dict[str, str] | None = None, auth: Any = None, log_calls: bool = True,
                 log_context: dict | None = None, max_retry_wait: float = 30.0, rate_limit_wait: float = 2.0,
                 http2: bool = False, verify: bool | str = True):
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.name = name
        self.base_url = base_url
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.rate_limit = rate_limit
        self.breaker = breaker
        self.headers = dict(headers or {})
        self.auth = auth
        self.log_calls = log_calls
        self.log_context = dict(log_context or {})
        self.max_retry_wait = float(max_retry_wait)
        self.rate_limit_wait = float(rate_limit_wait)
        self.http2 = http2
        self.verify = verify
        self._http: Any = None
        self._hold_until = 0.0  # monotonic: the vendor said no requests are left until then

    def url(self, path_or_url: str) -> str:
        return join_url(self.base_url, path_or_url)

    def _client_kwargs(self) -> dict:
        return {"timeout": httpx.Timeout(self.timeout), "headers": self.headers, "auth": self.auth,
                "follow_redirects": False, "http2": self.http2, "verify": self.verify,
                "limits": httpx.Limits(max_connections=100, max_keepalive_connections=20)}

    def _backoff(self, attempt_no: int) -> float:
        base = self.backoff * (2 ** (attempt_no - 1))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not security

    def _next_wait(self, attempt: _Attempt, attempt_no: int, attempts: int, deadline_at: float | None,
                   idempotent: bool) -> float | None:
        """Seconds to wait before the next attempt, or None when this attempt's outcome is final."""
        if attempt.outcome in (OK, REJECTED) or attempt_no >= attempts:
            return None
        if attempt.response is None and attempt.sent and not idempotent:
            return None  # a POST that may have arrived is not sent again blindly: the caller can look first
        wait = attempt.retry_after if attempt.retry_after is not None else self._backoff(attempt_no)
        if wait > self.max_retry_wait:
            return None
        if deadline_at is not None and time.monotonic() + wait >= deadline_at:
            return None
        return wait

    def _note_window(self, attempt: _Attempt) -> None:
        left = attempt.exhausted_for()
        if left is not None:
            self._hold_until = max(self._hold_until, time.monotonic() + left)

    def _hold(self, method: str, url: str, attempt_no: int, log_context: dict | None,
              deadline_at: float | None) -> tuple[float, dict | None]:
        """Seconds to wait before sending while the vendor's window is exhausted (0: none); the
        fields to log and refuse with instead when that wait is too long."""
        wait = self._hold_until - time.monotonic()
        if wait <= 0:
            return 0.0, None
        if wait > self.max_retry_wait or (deadline_at is not None and time.monotonic() + wait >= deadline_at):
            self._count(RATE_LIMITED)
            return wait, self._log_fields(method, url, attempt_no, RATE_LIMITED, None, 0,
                                          f"vendor rate limit exhausted for {wait:.1f} s more", log_context)
        return wait, None

    def _held_error(self, wait: float) -> OutboundError:
        return OutboundError(f"the vendor's rate limit window is exhausted; it resets in {wait:.1f} s", name=self.name,
                             kind="rate_limited", retryable=True, retry_after=wait)

    def _count(self, outcome: str, seconds: float | None = None) -> None:
        OUTBOUND_REQUESTS.labels(self.name, outcome).inc()
        if seconds is not None:
            OUTBOUND_SECONDS.labels(self.name).observe(seconds)

    def _log_fields(self, method: str, url: str, attempt_no: int, outcome: str, status_code: int | None,
                    seconds: float, error: str, log_context: dict | None) -> dict:
        return {"name": self.name, "method": method, "url": url, "status_code": status_code, "outcome": outcome,
                "attempt": attempt_no, "duration_ms": seconds * 1000, "error": error,
                "context": {**self.log_context, **(log_context or {})}}

    def _final_error(self, attempt: _Attempt) -> OutboundError:
        if attempt.response is None:
            return OutboundError(attempt.error, name=self.name, kind=attempt.kind, retryable=True)
        status = attempt.response.status_code
        return OutboundError(_error_text(attempt), name=self.name, kind="http", status_code=status,
                             retryable=attempt.outcome == RETRYABLE, retry_after=attempt.retry_after,
                             response=attempt.response)

    def _refusal(self, kind: str, retry_after: float | None) -> OutboundError:
        text = ("circuit breaker open: the vendor failed repeatedly, calls resume after its reset"
                if kind == "breaker_open" else "rate limit reached (our bucket for this vendor is empty)")
        return OutboundError(text, name=self.name, kind=kind, retryable=True, retry_after=retry_after)


class OutboundClient(_Base):
    """Sync client over one pooled ``httpx.Client`` per instance and process (thread-safe)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _live_sync.add(self)

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(**self._client_kwargs())
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _log(self, **fields) -> None:
        if self.log_calls:
            record_call(**fields)

    def _gate(self, method: str, url: str, attempt_no: int, log_context: dict | None,
              deadline_at: float | None = None) -> None:
        wait, refused = self._hold(method, url, attempt_no, log_context, deadline_at)
        if refused is not None:
            self._log(**refused)
            raise self._held_error(wait)
        if wait:
            time.sleep(wait)
        if self.breaker is not None and not self.breaker.allow():
            self._count(BREAKER_OPEN)
            self._log(**self._log_fields(method, url, attempt_no, BREAKER_OPEN, None, 0, "circuit breaker open",
                                         log_context))
            raise self._refusal("breaker_open", self.breaker.reset_seconds)
        if self.rate_limit is not None and not self.rate_limit.try_acquire():
            waited_until = time.monotonic() + self.rate_limit_wait
            while True:
                wait = self.rate_limit.wait_time()
                if time.monotonic() + wait > waited_until:
                    self._count(RATE_LIMITED)
                    self._log(**self._log_fields(method, url, attempt_no, RATE_LIMITED, None, 0, "rate limited",
                                                 log_context))
                    raise self._refusal("rate_limited", wait)
                time.sleep(max(wait, 0.001))
                if self.rate_limit.try_acquire():
                    return

    def request(self, method: str, path_or_url: str, *, log_context: dict | None = None, retries: int | None = None,
                deadline: float | None = None, raise_for_status: bool = True, idempotent: bool | None = None,
                **kwargs) -> httpx.Response:
        """Send ``method`` to ``path_or_url`` (joined to ``base_url``) with httpx's ``kwargs``
        (``json=``, ``params=``, ``headers=``, ``timeout=``...). ``deadline`` bounds the whole call,
        waits included (seconds); ``retries`` overrides the client's for this call. ``idempotent``
        (default: by method, POST and PATCH are not) allows re-sending after a timeout or a dropped
        connection once the request may have arrived."""
        idempotent = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        url = self.url(path_or_url)
        attempts = 1 + (self.retries if retries is None else retries)
        deadline_at = None if deadline is None else time.monotonic() + deadline
        attempt_no = 0
        while True:
            attempt_no += 1
            self._gate(method, url, attempt_no, log_context, deadline_at)
            started = time.perf_counter()
            try:
                attempt = _Attempt(response=self.http.request(method, url, **kwargs))
            except httpx.TransportError as exc:
                attempt = _transport_failure(exc, self.timeout)
            seconds = time.perf_counter() - started
            self._note_window(attempt)
            self._count(attempt.outcome, seconds)
            if self.breaker is not None:
                (self.breaker.record_failure if attempt.breaker_failure else self.breaker.record_success)()
            self._log(**self._log_fields(method, url, attempt_no, attempt.outcome, attempt.status_code, seconds,
                                         _error_text(attempt), log_context))
            wait = self._next_wait(attempt, attempt_no, attempts, deadline_at, idempotent)
            if wait is None:
                break
            time.sleep(wait)
        if attempt.outcome == OK or (not raise_for_status and attempt.response is not None):
            return attempt.response  # type: ignore[return-value]
        raise self._final_error(attempt)

    def get(self, path_or_url: str, **kwargs) -> httpx.Response:
        return self.request("GET", path_or_url, **kwargs)

    def post(self, path_or_url: str, **kwargs) -> httpx.Response:
        return self.request("POST", path_or_url, **kwargs)

    def put(self, path_or_url: str, **kwargs) -> httpx.Response:
        return self.request("PUT", path_or_url, **kwargs)

    def patch(self, path_or_url: str, **kwargs) -> httpx.Response:
        return self.request("PATCH", path_or_url, **kwargs)

    def delete(self, path_or_url: str, **kwargs) -> httpx.Response:
        return self.request("DELETE", path_or_url, **kwargs)


class AsyncOutboundClient(_Base):
    """The asyncio twin over one ``httpx.AsyncClient`` (make one per event loop and keep it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _live_async.add(self)

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(**self._client_kwargs())
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _log(self, **fields) -> None:
        if self.log_calls:
            await arecord_call(**fields)

    async def _gate(self, method: str, url: str, attempt_no: int, log_context: dict | None,
                    deadline_at: float | None = None) -> None:
        wait, refused = self._hold(method, url, attempt_no, log_context, deadline_at)
        if refused is not None:
            await self._log(**refused)
            raise self._held_error(wait)
        if wait:
            await asyncio.sleep(wait)
        if self.breaker is not None and not await self.breaker.allow_async():
            self._count(BREAKER_OPEN)
            await self._log(**self._log_fields(method, url, attempt_no, BREAKER_OPEN, None, 0,
                                               "circuit breaker open", log_context))
            raise self._refusal("breaker_open", self.breaker.reset_seconds)
        if self.rate_limit is not None and not await self.rate_limit.try_acquire_async():
            waited_until = time.monotonic() + self.rate_limit_wait
            while True:
                wait = await self.rate_limit.wait_time_async()
                if time.monotonic() + wait > waited_until:
                    self._count(RATE_LIMITED)
                    await self._log(**self._log_fields(method, url, attempt_no, RATE_LIMITED, None, 0,
                                                       "rate limited", log_context))
                    raise self._refusal("rate_limited", wait)
                await asyncio.sleep(max(wait, 0.001))
                if await self.rate_limit.try_acquire_async():
                    return

    async def request(self, method: str, path_or_url: str, *, log_context: dict | None = None,
                      retries: int | None = None, deadline: float | None = None, raise_for_status: bool = True,
                      idempotent: bool | None = None, **kwargs) -> httpx.Response:
        idempotent = method.upper() in IDEMPOTENT_METHODS if idempotent is None else idempotent
        url = self.url(path_or_url)
        attempts = 1 + (self.retries if retries is None else retries)
        deadline_at = None if deadline is None else time.monotonic() + deadline
        attempt_no = 0
        while True:
            attempt_no += 1
            await self._gate(method, url, attempt_no, log_context, deadline_at)
            started = time.perf_counter()
            try:
                attempt = _Attempt(response=await self.http.request(method, url, **kwargs))
            except httpx.TransportError as exc:
                attempt = _transport_failure(exc, self.timeout)
            seconds = time.perf_counter() - started
            self._note_window(attempt)
            self._count(attempt.outcome, seconds)
            if self.breaker is not None:
                if attempt.breaker_failure:
                    await self.breaker.record_failure_async()
                else:
                    await self.breaker.record_success_async()
            await self._log(**self._log_fields(method, url, attempt_no, attempt.outcome, attempt.status_code,
                                               seconds, _error_text(attempt), log_context))
            wait = self._next_wait(attempt, attempt_no, attempts, deadline_at, idempotent)
            if wait is None:
                break
            await asyncio.sleep(wait)
        if attempt.outcome == OK or (not raise_for_status and attempt.response is not None):
            return attempt.response  # type: ignore[return-value]
        raise self._final_error(attempt)

    async def get(self, path_or_url: str, **kwargs) -> httpx.Response:
        return await self.request("GET", path_or_url, **kwargs)

    async def post(self, path_or_url: str, **kwargs) -> httpx.Response:
        return await self.request("POST", path_or_url, **kwargs)

    async def put(self, path_or_url: str, **kwargs) -> httpx.Response:
        return await self.request("PUT", path_or_url, **kwargs)

    async def patch(self, path_or_url: str, **kwargs) -> httpx.Response:
        return await self.request("PATCH", path_or_url, **kwargs)

    async def delete(self, path_or_url: str, **kwargs) -> httpx.Response:
        return await self.request("DELETE", path_or_url, **kwargs)
