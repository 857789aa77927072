"""The one gateway per messaging provider: real HTTP clients (httpx) to configurable base URLs.

Each provider is off unless its settings are present (``*_configured()``); the cascade skips an
unconfigured channel rather than pretending to send. A send returns the provider's message id or
raises :class:`ProviderError`, which says whether trying again can help:

* retryable — network errors and timeouts, HTTP 5xx, and 429 (every one of these providers documents
  429 as "slow down and retry");
* permanent — any other 4xx (bad request, bad credentials, unknown recipient). ``invalid_recipient``
  marks answers that mean the address or token is dead (FCM ``UNREGISTERED``, APNs 410 / BadDeviceToken,
  Twilio 21211 / 21610), so the caller can forget it.

Formats: SendGrid v3 ``POST /v3/mail/send``; Twilio ``POST /2010-04-01/Accounts/{Sid}/Messages.json``
(form-encoded, basic auth); FCM HTTP v1 ``POST /v1/projects/{project}/messages:send``; APNs
``POST /3/device/{token}`` over HTTP/2 with a provider JWT.
"""
from __future__ import annotations

import html
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from django.conf import settings
from prometheus_client import Counter, Histogram

log = structlog.get_logger(__name__)

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


def _retryable_status(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def _request(provider: str, method: str, url: str, *, http2: bool = False, **kwargs) -> httpx.Response:
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
    outcome = "ok" if response.is_success else ("retryable" if _retryable_status(response.status_code) else "rejected")
    PROVIDER_REQUESTS.labels(provider, outcome).inc()
    return response


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _base(url: str) -> str:
    return url.rstrip("/")


# --- SendGrid ---------------------------------------------------------------------------------------
def sendgrid_configured() -> bool:
    return bool(settings.SENDGRID_API_KEY and settings.SENDGRID_FROM_EMAIL)


def sendgrid_payload(*, to_email: str, message: OutboundMessage) -> dict:
    """The v3 mail/send body: one personalization with our ids as custom_args (they come back in every
    Event Webhook event), text before HTML (SendGrid requires that order), open and click tracking on."""
    text = message.body + (f"\n\n{message.url}" if message.url else "")
    html_body = f"<p>{html.escape(message.body)}</p>"
    if message.url:
        html_body += f'<p><a href="{html.escape(message.url, quote=True)}">{html.escape(message.title)}</a></p>'
    return {
        "personalizations": [{"to": [{"email": to_email}], "custom_args": message.tracking()}],
        "from": {"email": settings.SENDGRID_FROM_EMAIL, "name": settings.SENDGRID_FROM_NAME},
        "subject": message.title,
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html_body}],
        "tracking_settings": {
            "click_tracking": {"enable": True, "enable_text": True},
            "open_tracking": {"enable": True},
        },
    }


def sendgrid_send(*, to_email: str, message: OutboundMessage) -> str:
    """Send one email; returns SendGrid's ``X-Message-Id`` (the prefix of every event's sg_message_id)."""
    response = _request(
        "sendgrid", "POST", f"{_base(settings.SENDGRID_API_URL)}/v3/mail/send",
        json=sendgrid_payload(to_email=to_email, message=message),
        headers={"Authorization": f"Bearer {settings.SENDGRID_API_KEY}"},
    )
    if response.status_code == 202 or response.is_success:
        return response.headers.get("X-Message-Id", "")
    errors = _json(response).get("errors") or []
    detail = "; ".join(
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message")) for e in errors
        if isinstance(e, dict)
    ) or response.text[:300]
    raise ProviderError(detail, provider="sendgrid", retryable=_retryable_status(response.status_code),
                        code=str(response.status_code), status_code=response.status_code)


# --- Twilio -----------------------------------------------------------------------------------------
# Twilio error codes that mean the number can never receive our messages.
TWILIO_INVALID_NUMBER = {"21211", "21614", "21610"}  # invalid 'To', not a mobile number, unsubscribed (STOP)
TWILIO_UNSUBSCRIBED = "21610"


def twilio_configured() -> bool:
    return bool(settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN and settings.TWILIO_FROM)


def twilio_form(*, to_phone: str, message: OutboundMessage) -> dict[str, str]:
    text = f"{message.title}: {message.body}" if message.title else message.body
    if message.url:
        text += f" {message.url}"
    form = {"To": to_phone, "From": settings.TWILIO_FROM, "Body": text}
    if settings.TWILIO_STATUS_CALLBACK_URL:
        form["StatusCallback"] = settings.TWILIO_STATUS_CALLBACK_URL
    return form


def twilio_send(*, to_phone: str, message: OutboundMessage) -> str:
    """Create a Message resource; returns its SID (``SM…``), which status callbacks carry as MessageSid."""
    sid = settings.TWILIO_ACCOUNT_SID
    response = _request(
        "twilio", "POST", f"{_base(settings.TWILIO_API_URL)}/2010-04-01/Accounts/{sid}/Messages.json",
        data=twilio_form(to_phone=to_phone, message=message),
        auth=(sid, settings.TWILIO_AUTH_TOKEN),
    )
    body = _json(response)
    if response.is_success:
        return str(body.get("sid", ""))
    code = str(body.get("code", response.status_code))
    raise ProviderError(str(body.get("message") or response.text[:300]), provider="twilio",
                        retryable=_retryable_status(response.status_code), code=code,
                        status_code=response.status_code, invalid_recipient=code in TWILIO_INVALID_NUMBER)


# --- FCM HTTP v1 ------------------------------------------------------------------------------------
def fcm_configured() -> bool:
    return bool(settings.FCM_PROJECT_ID and settings.FCM_ACCESS_TOKEN)


# Keys FCM reserves for itself in the data payload (a message using one is refused with 400).
FCM_RESERVED_KEYS = {"from", "notification", "message_type", "collapse_key"}


def _fcm_data_key_allowed(key: str) -> bool:
    return key not in FCM_RESERVED_KEYS and not key.startswith(("google", "gcm"))


def fcm_payload(*, token: str, message: OutboundMessage) -> dict:
    data = {key: str(value) for key, value in message.data.items() if _fcm_data_key_allowed(str(key))}
    data.update(message.tracking())
    if message.url:
        data["url"] = message.url
    return {"message": {"token": token, "notification": {"title": message.title, "body": message.body}, "data": data}}


def fcm_send(*, token: str, message: OutboundMessage) -> str:
    """Send to one registration token; returns the message name ``projects/…/messages/…``."""
    response = _request(
        "fcm", "POST", f"{_base(settings.FCM_API_URL)}/v1/projects/{settings.FCM_PROJECT_ID}/messages:send",
        json=fcm_payload(token=token, message=message),
        headers={"Authorization": f"Bearer {settings.FCM_ACCESS_TOKEN}"},
    )
    body = _json(response)
    if response.is_success:
        return str(body.get("name", ""))
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    status = str(error.get("status") or response.status_code)
    # The FCM-specific code (UNREGISTERED, SENDER_ID_MISMATCH, …) is in details[].errorCode.
    fcm_code = next((d.get("errorCode") for d in error.get("details") or [] if isinstance(d, dict) and d.get("errorCode")), "")
    code = fcm_code or status
    message_text = str(error.get("message") or response.text[:300])
    dead_token = code in ("UNREGISTERED", "SENDER_ID_MISMATCH") or (
        code == "INVALID_ARGUMENT" and "registration token" in message_text.lower())
    raise ProviderError(message_text, provider="fcm", retryable=_retryable_status(response.status_code), code=code,
                        status_code=response.status_code, invalid_recipient=dead_token)


# --- APNs -------------------------------------------------------------------------------------------
APNS_DEAD_TOKEN_REASONS = {"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"}


def apns_configured() -> bool:
    return bool(settings.APNS_TOPIC and settings.APNS_AUTH_TOKEN)


def apns_payload(*, message: OutboundMessage) -> dict:
    payload: dict[str, Any] = {"aps": {"alert": {"title": message.title, "body": message.body}, "sound": "default"}}
    payload.update({key: value for key, value in message.data.items() if key != "aps"})
    payload.update(message.tracking())
    if message.url:
        payload["url"] = message.url
    return payload


def apns_send(*, token: str, message: OutboundMessage) -> str:
    """Send one alert notification; returns the ``apns-id``.

    APNs accepts only HTTP/2, so the client is built with ``http2=True`` (needs ``h2``); against a
    plain ``http://`` URL (a local test server) httpx falls back to HTTP/1.1 — same method, path,
    headers and body.
    """
    apns_id = str(uuid.uuid4())
    response = _request(
        "apns", "POST", f"{_base(settings.APNS_API_URL)}/3/device/{token}", http2=True,
        json=apns_payload(message=message),
        headers={
            "authorization": f"bearer {settings.APNS_AUTH_TOKEN}",
            "apns-topic": settings.APNS_TOPIC,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-id": apns_id,
        },
    )
    if response.is_success:
        return response.headers.get("apns-id", apns_id)
    reason = str(_json(response).get("reason") or response.status_code)
    raise ProviderError(reason, provider="apns", retryable=_retryable_status(response.status_code), code=reason,
                        status_code=response.status_code,
                        invalid_recipient=response.status_code == 410 or reason in APNS_DEAD_TOKEN_REASONS)
