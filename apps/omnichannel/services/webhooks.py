"""Provider callbacks: the SendGrid Event Webhook (stored raw, applied by a task, idempotent on
sg_event_id) and Twilio message status callbacks, each checked against the provider's signature."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from apps.core.exceptions import Forbidden, ServiceError

from .. import providers, signatures
from ..models import (
    Activation,
    Channel,
    EmailEvent,
    EmailRecipient,
    EmailStats,
    Provider,
    SendGridBatch,
    SendLedger,
)
from ..tasks import process_sendgrid_batch
from ._common import _after_commit, _emit, _suppress, task_options
from .sends import send_mark_delivered, send_mark_failed

log = structlog.get_logger(__name__)

SENDGRID_EVENTS = Counter("omnichannel_sendgrid_events_total", "SendGrid events processed", ["event", "outcome"])


# =====================================================================================================
# SendGrid Event Webhook
# =====================================================================================================
class WebhookRejected(ServiceError):
    status_code = 401
    code = "invalid_signature"


def sendgrid_webhook_receive(*, body: bytes, signature: str | None, timestamp: str | None) -> SendGridBatch:
    """Check the signed-webhook signature, store the raw batch and queue its processing after commit.

    Refuses (401) unsigned, otherwise-signed or stale posts. With no verification key configured
    nothing is accepted (403 ``not_configured``, like the Twilio callback): an unsigned event could
    plant a permanent suppression for any address. Only ``SENDGRID_WEBHOOK_ALLOW_UNSIGNED`` (refused
    in production) accepts unsigned events, stored with ``signature_verified=False``."""
    key = settings.SENDGRID_WEBHOOK_VERIFICATION_KEY
    verified = False
    if not key and not settings.SENDGRID_WEBHOOK_ALLOW_UNSIGNED:
        raise Forbidden(
            "SendGrid events are not accepted: SENDGRID_WEBHOOK_VERIFICATION_KEY is not configured",
            code="not_configured",
        )
    if key:
        if not signature or not timestamp:
            raise WebhookRejected(f"missing {signatures.SENDGRID_SIGNATURE_HEADER} / {signatures.SENDGRID_TIMESTAMP_HEADER}")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise WebhookRejected("timestamp header is not unix seconds") from None
        if abs(time.time() - sent_at) > settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS:
            raise WebhookRejected(f"timestamp is older than {settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS} s (or in the future)")
        if not signatures.sendgrid_signature_valid(key_b64=key, payload=body, signature_b64=signature, timestamp=timestamp):
            raise WebhookRejected("signature does not match the body and timestamp")
        verified = True
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ServiceError("body is not JSON", field="body") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ServiceError("body must be a JSON array of event objects", field="body")
    with transaction.atomic():
        batch = SendGridBatch.objects.create(body=body.decode(), signature_verified=verified, event_count=len(events))
        batch_id = batch.pk
        _after_commit(lambda: sendgrid_batch_enqueue(batch_id=batch_id))
    return batch


def sendgrid_batch_enqueue(*, batch_id: int) -> None:
    process_sendgrid_batch.apply_async(args=[batch_id], **task_options())


_SUPPRESS_ON = {"unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe", "spamreport": "spam_report"}
_COUNTER = {"delivered": "delivered", "open": "opens", "click": "clicks", "bounce": "bounces",
            "spamreport": "spam_reports", "unsubscribe": "unsubscribes", "group_unsubscribe": "unsubscribes",
            "dropped": "dropped", "deferred": "deferred"}
_EMAIL_ANALYTICS = {"delivered": "email_delivered", "open": "email_open", "click": "email_click",
                    "bounce": "email_bounce", "spamreport": "email_spamreport", "unsubscribe": "email_unsubscribe",
                    "group_unsubscribe": "email_unsubscribe"}


def _activation_for_event(event: dict) -> tuple[Activation | None, SendLedger | None]:
    raw = event.get("activation_id")
    activation = None
    if raw is not None:
        try:
            activation = Activation.objects.filter(pk=int(str(raw))).first()
        except ValueError:
            activation = None
    send = None
    if activation is not None:
        send = activation.sends.filter(channel=Channel.EMAIL).first()
    elif event.get("sg_message_id"):
        # sg_message_id starts with the X-Message-Id mail/send answered with.
        prefix = str(event["sg_message_id"]).split(".")[0]
        send = SendLedger.objects.filter(provider=Provider.SENDGRID, provider_message_id=prefix).select_related("activation").first()
        activation = send.activation if send else None
    return activation, send


def _sendgrid_event_apply(event: dict, batch_id: int) -> str:
    """Store and count one SendGrid event (its own transaction). Returns new / duplicate / invalid."""
    kind = str(event.get("event") or "")
    sg_event_id = str(event.get("sg_event_id") or "")
    email = str(event.get("email") or "").strip().lower()
    if not sg_event_id or not kind:
        return "invalid"
    try:
        occurred_at = datetime.fromtimestamp(int(event.get("timestamp")), tz=dt_timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        occurred_at = timezone.now()
    with transaction.atomic():
        activation, send = _activation_for_event(event)
        try:
            with transaction.atomic():
                EmailEvent.objects.create(
                    sg_event_id=sg_event_id[:200], event=kind[:20], email=email[:320], occurred_at=occurred_at,
                    sg_message_id=str(event.get("sg_message_id") or "")[:200], activation=activation,
                    batch_id=batch_id, url=str(event.get("url") or "")[:2000],
                    bounce_type=str(event.get("type") or "")[:20] if kind == "bounce" else "",
                    reason=str(event.get("reason") or event.get("response") or "")[:2000], payload=event,
                )
        except IntegrityError:
            return "duplicate"
        if activation is not None and kind in _COUNTER:
            stats_qs = EmailStats.objects.filter(activation=activation)
            if not stats_qs.exists():
                EmailStats.objects.get_or_create(activation=activation)
            updates = {_COUNTER[kind]: F(_COUNTER[kind]) + 1}
            if kind in ("open", "click") and email:
                EmailRecipient.objects.get_or_create(activation=activation, email=email)
                first = "first_open_at" if kind == "open" else "first_click_at"
                if EmailRecipient.objects.filter(activation=activation, email=email, **{f"{first}__isnull": True}
                                                 ).update(**{first: occurred_at}):
                    unique = "unique_opens" if kind == "open" else "unique_clicks"
                    updates[unique] = F(unique) + 1
            stats_qs.update(**updates)
        if send is not None:
            if kind in ("delivered", "open", "click"):
                send_mark_delivered(send=send, source="sendgrid")
            elif kind in ("bounce", "dropped"):
                send_mark_failed(send=send, source="sendgrid", error_code=kind,
                                 error=f"{kind}: {event.get('reason') or event.get('type') or ''}".strip())
        if email and (kind in _SUPPRESS_ON or (kind == "bounce" and event.get("type", "bounce") == "bounce")):
            _suppress(identifier=email, channel="email", reason=_SUPPRESS_ON.get(kind, "bounce"), source=f"sendgrid:{kind}")
        if kind in _EMAIL_ANALYTICS:
            # Our own record wins; the custom args SendGrid echoes back are the fallback.
            fields = {"user_id": getattr(activation, "user_id", None) or event.get("user_id"),
                      "offer_id": getattr(activation, "offer_id", None) or event.get("offer_id"),
                      "campaign_id": getattr(activation, "campaign_id", None) or event.get("campaign_id"),
                      "activation_id": getattr(activation, "pk", None) or event.get("activation_id"),
                      "channel": "email", "reason": str(event.get("type") or "")[:100] or None}
            fields = {k: (str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else None) for k, v in fields.items()}
            analytics_type = _EMAIL_ANALYTICS[kind]
            _after_commit(lambda: _emit(analytics_type, **fields))
    return "new"


def sendgrid_batch_process(*, batch_id: int) -> int:
    """Apply every event of a stored batch; idempotent (events already seen are skipped). Returns the
    number of new events."""
    batch = SendGridBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return 0
    events = json.loads(batch.body)
    new = 0
    for event in events:
        if not isinstance(event, dict):
            continue
        outcome = _sendgrid_event_apply(event, batch_id)
        SENDGRID_EVENTS.labels(str(event.get("event") or "unknown")[:20], outcome).inc()
        new += outcome == "new"
    SendGridBatch.objects.filter(pk=batch_id).update(processed_at=timezone.now(), new_events=F("new_events") + new)
    log.info("sendgrid_batch_processed", batch_id=batch_id, events=len(events), new=new)
    return new


def sendgrid_batches_requeue_unprocessed(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    ids = list(SendGridBatch.objects.filter(processed_at__isnull=True, received_at__lt=timezone.now() - older_than)
               .values_list("pk", flat=True)[:500])
    for batch_id in ids:
        sendgrid_batch_enqueue(batch_id=batch_id)
    return len(ids)


# =====================================================================================================
# Twilio status callback
# =====================================================================================================
TWILIO_DELIVERED = {"delivered", "read"}
TWILIO_FAILED = {"undelivered", "failed"}


def twilio_status_record(*, url: str, params: list[tuple[str, str]], signature: str | None) -> str:
    """Apply one Twilio message status callback after checking ``X-Twilio-Signature``. Returns what happened."""
    token = settings.TWILIO_AUTH_TOKEN
    if not token:
        raise Forbidden("Twilio is not configured", code="not_configured")
    if not signatures.twilio_signature_valid(auth_token=token, url=url, params=params, signature=signature or ""):
        raise WebhookRejected("X-Twilio-Signature does not match")
    form = dict(params)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    send = SendLedger.objects.filter(provider=Provider.TWILIO, provider_message_id=sid).first() if sid else None
    if send is None:
        log.info("twilio_status_unknown_message", message_sid=sid, status=status)
        return "unknown message"
    error_code = form.get("ErrorCode") or ""
    with transaction.atomic():
        if status in TWILIO_DELIVERED:
            send_mark_delivered(send=send, source="twilio")
        elif status in TWILIO_FAILED:
            send_mark_failed(send=send, source="twilio", error_code=error_code or status,
                             error=f"Twilio reported {status}" + (f" (error {error_code})" if error_code else ""))
            if error_code == providers.TWILIO_UNSUBSCRIBED:
                _suppress(identifier=send.recipient, channel="sms", reason="unsubscribe", source="twilio:21610")
    log.info("twilio_status", message_sid=sid, status=status, send_id=send.pk, error_code=error_code)
    return status
