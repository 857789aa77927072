"""Twilio Messages API ``POST /2010-04-01/Accounts/{Sid}/Messages.json`` (form-encoded, basic auth).
Off unless the account SID, auth token and sender are set."""
from __future__ import annotations

from django.conf import settings

from ..models import Provider
from .base import OutboundMessage, ProviderError, base_url, json_body, request, retryable_status
from .spec import ProviderSpec

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
    response = request(
        "twilio", "POST", f"{base_url(settings.TWILIO_API_URL)}/2010-04-01/Accounts/{sid}/Messages.json",
        data=twilio_form(to_phone=to_phone, message=message),
        auth=(sid, settings.TWILIO_AUTH_TOKEN),
    )
    body = json_body(response)
    if response.is_success:
        return str(body.get("sid", ""))
    code = str(body.get("code", response.status_code))
    raise ProviderError(str(body.get("message") or response.text[:300]), provider="twilio",
                        retryable=retryable_status(response.status_code), code=code,
                        status_code=response.status_code, invalid_recipient=code in TWILIO_INVALID_NUMBER)


SPEC = ProviderSpec(
    name=Provider.TWILIO, label="Twilio",
    address_of=lambda contact, user_id, now: contact.phone if contact else "",
    is_configured=twilio_configured,
    send=lambda recipient, message: twilio_send(to_phone=recipient, message=message),
)
