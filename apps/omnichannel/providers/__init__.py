"""The one gateway per messaging provider: real HTTP clients (httpx) to configurable base URLs, one
module each, and the registry that both the cascade and the send path use.

* ``base`` — :class:`OutboundMessage`, :class:`ProviderError` (retryable or permanent) and the pooled
  HTTP plumbing;
* ``sendgrid`` — SendGrid v3 ``POST /v3/mail/send``; ``twilio`` — Twilio
  ``POST /2010-04-01/Accounts/{Sid}/Messages.json`` (form-encoded, basic auth); ``fcm`` — FCM HTTP v1
  ``POST /v1/projects/{project}/messages:send``; ``apns`` — APNs ``POST /3/device/{token}`` over HTTP/2
  with a provider JWT; ``inbox`` — in-app, web and in-store messages we store ourselves;
* ``registry`` — ``CHANNELS`` (channel → the providers that carry it: how to address the user, is it
  configured) and ``PROVIDERS`` (ledger provider → how to send).

Each provider is off unless its settings are present (``*_configured()``); the cascade skips an
unconfigured channel rather than pretending to send.
"""
from .apns import APNS_DEAD_TOKEN_REASONS, apns_configured, apns_payload, apns_send
from .base import OutboundMessage, ProviderError
from .fcm import FCM_RESERVED_KEYS, fcm_configured, fcm_payload, fcm_send
from .registry import CHANNELS, PAID_MEDIA_REASON, PROVIDERS
from .sendgrid import sendgrid_configured, sendgrid_payload, sendgrid_send, sendgrid_send_staff
from .spec import ChannelRoute, ProviderSpec
from .twilio import TWILIO_INVALID_NUMBER, TWILIO_UNSUBSCRIBED, twilio_configured, twilio_form, twilio_send

__all__ = [
    "APNS_DEAD_TOKEN_REASONS", "CHANNELS", "FCM_RESERVED_KEYS", "PAID_MEDIA_REASON", "PROVIDERS",
    "TWILIO_INVALID_NUMBER", "TWILIO_UNSUBSCRIBED", "ChannelRoute", "OutboundMessage", "ProviderError",
    "ProviderSpec", "apns_configured", "apns_payload", "apns_send", "fcm_configured", "fcm_payload", "fcm_send",
    "sendgrid_configured", "sendgrid_payload", "sendgrid_send", "sendgrid_send_staff", "twilio_configured", "twilio_form", "twilio_send",
]
