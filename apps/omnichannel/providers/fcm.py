"""FCM HTTP v1 ``POST /v1/projects/{project}/messages:send`` (OAuth 2.0 bearer token)."""
from __future__ import annotations

from django.conf import settings

from ..models import Provider
from .base import OutboundMessage, ProviderError, base_url, json_body, request, retryable_status
from .spec import ProviderSpec


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
    response = request(
        "fcm", "POST", f"{base_url(settings.FCM_API_URL)}/v1/projects/{settings.FCM_PROJECT_ID}/messages:send",
        json=fcm_payload(token=token, message=message),
        headers={"Authorization": f"Bearer {settings.FCM_ACCESS_TOKEN}"},
    )
    body = json_body(response)
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
    raise ProviderError(message_text, provider="fcm", retryable=retryable_status(response.status_code), code=code,
                        status_code=response.status_code, invalid_recipient=dead_token)


SPEC = ProviderSpec(
    name=Provider.FCM, label="FCM",
    address_of=lambda contact, user_id, now: contact.fcm_token if contact else "",
    is_configured=fcm_configured,
    send=lambda recipient, message: fcm_send(token=recipient, message=message),
)
