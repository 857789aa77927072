"""What every vendor adaptor shares: the connection's settings as plain data, the outbound client
(per-connection rate limit and breaker, call log tagged with the connection), and the plain-words
problem a "Test connection" or a task shows.

Adaptors are Django-free apart from what they are given: services load the ``Connection`` row and
pass a :class:`ConnectionConfig`; adaptors speak HTTP and return dataclasses.
"""
from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from apps.core.outbound import CircuitBreaker, OutboundClient, OutboundError, RedisTokenBucket

#: Our default request rate per kind (requests/s, burst), inside each vendor's published limit:
#: Asana 150/min per token on the free tier; Jira Cloud's cost-based limits, kept modest; Bynder
#: advises about 10/s (4,500 per 5 min); Power BI 120 POST-rows per minute; AEM and Aprimo publish none.
DEFAULT_RATES: dict[str, tuple[float, int]] = {
    "asana": (2.0, 10), "jira": (5.0, 10), "bynder": (8.0, 10), "powerbi": (1.5, 5), "aem": (10.0, 10),
    "aprimo": (5.0, 10),
}

#: "Test connection" answers within this many seconds whatever the vendor does.
TEST_DEADLINE_SECONDS = 5.0


class ConnectionProblem(Exception):
    """Something a person can act on, in plain words ("Jira refused the credentials")."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class ConnectionConfig:
    id: int
    kind: str
    name: str
    base_url: str
    credentials: dict = field(repr=False)
    options: dict
    rate_per_second: float | None = None
    version: str = ""  # changes when the row changes: adaptors are cached per version

    def option(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name, default)
        return default if value in (None, "") else value

    def credential(self, name: str) -> str:
        value = self.credentials.get(name)
        if not value:
            raise ConnectionProblem(f"The connection has no {name.replace('_', ' ')} set: enter it in the admin.")
        return str(value)


def plain_words(exc: OutboundError, vendor: str, *, what: str = "") -> ConnectionProblem:
    """An OutboundError as a person would say it."""
    if exc.kind == "timeout":
        text = f"{vendor} did not answer in time (unreachable or slow)"
    elif exc.kind == "network":
        text = f"{vendor} is unreachable at the configured base URL"
    elif exc.kind == "breaker_open":
        text = f"{vendor} failed repeatedly; calls are paused for a moment"
    elif exc.kind == "rate_limited":
        text = f"our rate limit for this {vendor} account is reached"
    elif exc.status_code in (401, 403):
        text = f"{vendor} refused the credentials (HTTP {exc.status_code})"
    elif exc.status_code == 404:
        text = f"{vendor} does not know {what or 'that resource'} (HTTP 404)"
    elif exc.status_code == 429:
        text = f"{vendor} is rate limiting this account (HTTP 429)"
    elif exc.status_code is not None and exc.status_code >= 500:
        text = f"{vendor} had an internal error (HTTP {exc.status_code})"
    else:
        text = f"{vendor} refused the request (HTTP {exc.status_code}): {exc.message[:200]}"
    return ConnectionProblem(text, retryable=exc.retryable, retry_after=exc.retry_after)


class Adaptor(abc.ABC):
    """Base: subclasses set ``kind``/``vendor`` and implement ``auth()`` and ``test()``."""

    kind: ClassVar[str] = ""
    vendor: ClassVar[str] = ""

    def __init__(self, config: ConnectionConfig):
        self.config = config
        rate, burst = DEFAULT_RATES.get(self.kind, (5.0, 10))
        if config.rate_per_second:
            rate = float(config.rate_per_second)
        self.client = OutboundClient(
            self.kind, config.base_url, timeout=float(config.option("timeout_seconds", 10.0)), retries=2,
            backoff=0.5, rate_limit=RedisTokenBucket(f"integrations:{config.id}", rate, burst),
            breaker=CircuitBreaker(f"integrations:{config.id}", failure_threshold=5, reset_seconds=30),
            headers=self.headers(), auth=self.auth(), log_context={"connection": str(config.id)})

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    def auth(self) -> Any:
        return None

    @abc.abstractmethod
    def test(self) -> str:
        """Check the credentials and the configured resource; a sentence on success, ConnectionProblem otherwise."""

    def quick(self, method: str, path: str, *, what: str = "", **kwargs):
        """One call for "Test connection": no retries, inside the test deadline, short timeout."""
        try:
            return self.client.request(method, path, retries=0, deadline=TEST_DEADLINE_SECONDS,
                                       timeout=min(self.client.timeout, TEST_DEADLINE_SECONDS / 2), **kwargs)
        except OutboundError as exc:
            raise plain_words(exc, self.vendor, what=what) from exc


_REGISTRY: dict[str, type[Adaptor]] = {}
_cache: dict[tuple[int, str], Adaptor] = {}
_cache_lock = threading.Lock()


def register(cls: type[Adaptor]) -> type[Adaptor]:
    _REGISTRY[cls.kind] = cls
    return cls


def adaptor_for(config: ConnectionConfig) -> Adaptor:
    """The adaptor of ``config``'s kind, reused while the connection is unchanged (its pool too)."""
    key = (config.id, config.version)
    adaptor = _cache.get(key)
    if adaptor is None:
        try:
            cls = _REGISTRY[config.kind]
        except KeyError:
            raise ConnectionProblem(f"No adaptor for connection kind {config.kind!r}.") from None
        with _cache_lock:
            for stale in [k for k in _cache if k[0] == config.id]:
                _cache.pop(stale).client.close()
            adaptor = _cache[key] = cls(config)
    return adaptor
