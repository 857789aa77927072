"""What every provider shares: the message, the error that says whether a retry can help, and the
HTTP plumbing (one pooled httpx client per provider and process, metrics, timeouts).

A send returns the provider's message id or raises :class:`ProviderError`:

* retryable — network errors and timeouts, HTTP 5xx, and 429 (every one of these providers documents
  429 as "slow down and retry");
* permanent — any other 4xx (bad request, bad credentials, unknown recipient). ``invalid_recipient``
  marks answers that mean the address or token is dead (FCM ``UNREGISTERED``, APNs 410 / BadDeviceToken,
  Twilio 21211 / 21610), so the caller can forget it.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from prometheus_client import Counter, Histogram

PROVIDER_REQUESTS = Counter(
    "omnichannel_provider_requests_total", "Provider API calls by outcome", ["provider", "outcome"]
)
PROVIDER_SECONDS = Histogram("omnichannel_provider_request_seconds", "Provider API call time", ["provider"])


@dataclass(frozen=True)
class OutboundMessage:
    """What an activation says, whatever the channel."""

    activation_id: int
    user_id: str
    title: str
    body: str
    url: str = ""
    offer_id: int | None = None
    campaign_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def tracking(self) -> dict[str, str]:
        """Ids that travel with the message and come back in callbacks (strings: providers need them so)."""
        out = {"activation_id": str(self.activation_id), "user_id": self.user_id}
        if self.offer_id is not None:
            out["offer_id"] = str(self.offer_id)
        if self.campaign_id is not None:
            out["campaign_id"] = str(self.campaign_id)
        return out


class ProviderError(Exception):
    def __init__(self, message: str, *, provider: str, retryable: bool, code: str = "",
                 status_code: int | None = None, invalid_recipient: bool = False):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retryable = retryable
        self.code = code
        self.status_code = status_code
        self.invalid_recipient = invalid_recipient

    def __str__(self) -> str:
        status = f" HTTP {self.status_code}" if self.status_code else ""
        return f"{self.provider}{status} {self.code}: {self.message}".strip()


# --- shared HTTP plumbing ---------------------------------------------------------------------------
_clients: dict[tuple[str, bool], httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(provider: str, *, http2: bool = False) -> httpx.Client:
    """One pooled client per provider and process (connections are reused; APNs wants one long
    HTTP/2 connection). Dropped in a forked child: sockets must not be shared across processes."""
    key = (provider, http2)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                timeout = float(settings.OMNICHANNEL_PROVIDER_TIMEOUT_SECONDS)
                client = httpx.Client(http2=http2, timeout=httpx.Timeout(timeout), follow_redirects=False)
                _clients[key] = client
    return client


def _reset_clients_after_fork() -> None:
    _clients.clear()


os.register_at_fork(after_in_child=_reset_clients_after_fork)


def retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def request(provider: str, method: str, url: str, *, http2: bool = False, **kwargs) -> httpx.Response:
    """Send one request; transport failures become a retryable :class:`ProviderError`."""
    started = time.perf_counter()
    try:
        response = _client(provider, http2=http2).request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        PROVIDER_REQUESTS.labels(provider, "timeout").inc()
        raise ProviderError(f"timed out: {exc!r}", provider=provider, retryable=True, code="timeout") from exc
    except httpx.TransportError as exc:
        PROVIDER_REQUESTS.labels(provider, "network_error").inc()
        raise ProviderError(f"network error: {exc!r}", provider=provider, retryable=True, code="network") from exc
    finally:
        PROVIDER_SECONDS.labels(provider).observe(time.perf_counter() - started)
    outcome = "ok" if response.is_success else ("retryable" if retryable_status(response.status_code) else "rejected")
    PROVIDER_REQUESTS.labels(provider, outcome).inc()
    return response


def json_body(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def base_url(url: str) -> str:
    return url.rstrip("/")
