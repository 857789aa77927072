"""APNs ``POST /3/device/{token}`` over HTTP/2 with a provider JWT."""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings

from ..models import Provider
from .base import OutboundMessage, ProviderError, base_url, json_body, request, retryable_status
from .spec import ProviderSpec

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
    response = request(
        "apns", "POST", f"{base_url(settings.APNS_API_URL)}/3/device/{token}", http2=True,
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
    reason = str(json_body(response).get("reason") or response.status_code)
    raise ProviderError(reason, provider="apns", retryable=retryable_status(response.status_code), code=reason,
                        status_code=response.status_code,
                        invalid_recipient=response.status_code == 410 or reason in APNS_DEAD_TOKEN_REASONS)


SPEC = ProviderSpec(
    name=Provider.APNS, label="APNs",
    address_of=lambda contact, user_id, now: contact.apns_token if contact else "",
    is_configured=apns_configured,
    send=lambda recipient, message: apns_send(token=recipient, message=message),
)
