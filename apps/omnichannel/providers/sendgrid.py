"""SendGrid v3 ``POST /v3/mail/send`` (bearer API key). Off unless SENDGRID_API_KEY and the sender are set."""
from __future__ import annotations

import html

from django.conf import settings

from ..models import Provider
from .base import OutboundMessage, ProviderError, base_url, json_body, request, retryable_status
from .spec import ProviderSpec


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
    return _mail_send(sendgrid_payload(to_email=to_email, message=message))


def sendgrid_staff_payload(*, to_email: str, subject: str, text: str, url: str = "", message_id: str = "") -> dict:
    """A staff notification (not a marketing activation): no custom_args and no open or click
    tracking, so no Event Webhook event of it can be attributed to a campaign's analytics.
    ``message_id`` (``<...@...>``) is sent as the email's ``Message-ID``: the caller keeps it the same
    across retries of one notification, so mail systems see a resent copy as the same message."""
    body = text + (f"\n\n{url}" if url else "")
    html_body = f"<p>{html.escape(text)}</p>"
    if url:
        html_body += f'<p><a href="{html.escape(url, quote=True)}">Open in Campaign Express</a></p>'
    return {
        "personalizations": [{"to": [{"email": to_email}]}],
        "from": {"email": settings.SENDGRID_FROM_EMAIL, "name": settings.SENDGRID_FROM_NAME},
        "subject": subject,
        "content": [{"type": "text/plain", "value": body}, {"type": "text/html", "value": html_body}],
        "tracking_settings": {
            "click_tracking": {"enable": False, "enable_text": False},
            "open_tracking": {"enable": False},
        },
        **({"headers": {"Message-ID": message_id}} if message_id else {}),
    }


def sendgrid_send_staff(*, to_email: str, subject: str, text: str, url: str = "", message_id: str = "") -> str:
    """Send one staff notification email directly (see :func:`sendgrid_staff_payload`)."""
    return _mail_send(sendgrid_staff_payload(to_email=to_email, subject=subject, text=text, url=url,
                                             message_id=message_id))


def _mail_send(payload: dict) -> str:
    response = request(
        "sendgrid", "POST", f"{base_url(settings.SENDGRID_API_URL)}/v3/mail/send",
        json=payload, headers={"Authorization": f"Bearer {settings.SENDGRID_API_KEY}"},
    )
    if response.status_code == 202 or response.is_success:
        return response.headers.get("X-Message-Id", "")
    errors = json_body(response).get("errors") or []
    detail = "; ".join(
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message")) for e in errors
        if isinstance(e, dict)
    ) or response.text[:300]
    raise ProviderError(detail, provider="sendgrid", retryable=retryable_status(response.status_code),
                        code=str(response.status_code), status_code=response.status_code)


SPEC = ProviderSpec(
    name=Provider.SENDGRID, label="SendGrid",
    address_of=lambda contact, user_id, now: contact.email if contact else "",
    is_configured=sendgrid_configured,
    send=lambda recipient, message: sendgrid_send(to_email=recipient, message=message),
)
