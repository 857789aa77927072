"""Sends (docs/RULES.md §5): the send ledger, one attempt per task run under a claim, and the
activation status that follows its send (queued → sent → delivered, or failed).

The claim makes a send happen at most once per ledger row: a worker that dies during the provider
call leaves the row "sending"; the redelivered task sees its own claim and does not send again
(the provider may already have the message), so the row fails with ``outcome_unknown``; a SendGrid
delivery event can still prove it delivered later.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from prometheus_client import Counter

from .. import cascade, providers
from ..models import (
    Activation,
    ActivationStatus,
    ActivationTransition,
    Channel,
    Contact,
    EmailStats,
    InboxMessage,
    SendLedger,
    SendStatus,
)
from ..tasks import send_activation
from ._common import _after_commit, _emit, _suppress, task_options
from .contacts import contact_forget_push_token

log = structlog.get_logger(__name__)

SENDS = Counter("omnichannel_sends_total", "Send attempts by channel and outcome", ["channel", "outcome"])


# =====================================================================================================
# Activation status: moved along by its send
# =====================================================================================================
ALLOWED_TRANSITIONS = {
    ActivationStatus.QUEUED: {ActivationStatus.SENT, ActivationStatus.FAILED, ActivationStatus.DELIVERED},
    ActivationStatus.SENT: {ActivationStatus.DELIVERED, ActivationStatus.FAILED},
    # A send whose outcome was unknown (worker lost) can still be proven delivered by the provider.
    ActivationStatus.FAILED: {ActivationStatus.DELIVERED},
    ActivationStatus.DELIVERED: set(),
    ActivationStatus.SKIPPED: set(),
}
_ANALYTICS_EVENT = {
    ActivationStatus.SENT: "activation_sent",
    ActivationStatus.DELIVERED: "activation_delivered",
    ActivationStatus.FAILED: "activation_failed",
}


def _activation_transition(activation_id: int, *, to: str, reason: str = "", source: str) -> bool:
    """Move an activation to ``to`` if allowed from its current status (a conditional UPDATE, so two
    callbacks racing cannot both apply), leave an audit row, emit analytics after commit."""
    allowed_from = [status for status, targets in ALLOWED_TRANSITIONS.items() if to in targets]
    now = timezone.now()
    with transaction.atomic():
        current = (Activation.objects.select_for_update().filter(pk=activation_id, status__in=allowed_from)
                   .values("status", "user_id", "channel", "campaign_id", "offer_id").first())
        if current is None:
            return False
        extra: dict[str, Any] = {"status": to, "updated_at": now}
        if to == ActivationStatus.SENT:
            extra["sent_at"] = now
        elif to == ActivationStatus.DELIVERED:
            extra["delivered_at"] = now
        if reason and to == ActivationStatus.FAILED:
            extra["reason"] = reason[:300]
        Activation.objects.filter(pk=activation_id).update(**extra)
        ActivationTransition.objects.create(activation_id=activation_id, from_status=current["status"], to_status=to,
                                            reason=reason[:300], source=source)
        _after_commit(lambda: _emit(_ANALYTICS_EVENT[to], activation_id=activation_id, user_id=current["user_id"],
                                    channel=current["channel"], campaign_id=current["campaign_id"],
                                    offer_id=current["offer_id"], reason=reason[:200] or None))
    log.info("activation_" + to, activation_id=activation_id, channel=current["channel"], source=source, reason=reason)
    return True


# =====================================================================================================
# Sends
# =====================================================================================================
FINAL_SEND_STATUSES = {SendStatus.SENT, SendStatus.DELIVERED, SendStatus.FAILED, SendStatus.SUPPRESSED}


@dataclass(frozen=True)
class SendOutcome:
    status: str  # the ledger status after this run
    retry_in: float | None = None  # seconds until the task should run again, or None
    detail: str = ""


def send_enqueue(*, send_id: int, countdown: float | None = None) -> None:
    """Queue the send task for a ledger row (called after commit)."""
    options = task_options()
    if countdown:
        options["countdown"] = countdown
    send_activation.apply_async(args=[send_id], **options)


def _retry_delay(attempts: int) -> float:
    return min(settings.OMNICHANNEL_SEND_RETRY_MAX_SECONDS,
               settings.OMNICHANNEL_SEND_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0)))


def _message_for(send: SendLedger) -> providers.OutboundMessage:
    activation = send.activation
    return providers.OutboundMessage(
        activation_id=activation.pk, user_id=send.user_id, title=activation.title, body=activation.body,
        url=activation.url, offer_id=activation.offer_id, campaign_id=activation.campaign_id,
        data=activation.data or {},
    )


def _provider_call(send: SendLedger) -> str:
    """Call the ledger row's provider through the registry (``providers.PROVIDERS``); returns its message id."""
    message = _message_for(send)
    spec = providers.PROVIDERS.get(send.provider)
    if spec is None or spec.send is None:
        raise providers.ProviderError(f"no provider call for {send.provider}", provider=send.provider, retryable=False)
    if not spec.is_configured():
        raise providers.ProviderError(f"{spec.label} is no longer configured", provider=send.provider, retryable=False,
                                      code="not_configured")
    return spec.send(send.recipient, message)


def _stored_by_us(send: SendLedger) -> bool:
    """Our own inbox (in-app, web, in-store): the message is stored, no provider is called."""
    spec = providers.PROVIDERS.get(send.provider)
    return spec is not None and spec.send is None


def _store_inbox_message(send: SendLedger) -> InboxMessage:
    activation = send.activation
    return InboxMessage.objects.create(
        send=send, activation=activation, user_id=send.user_id, channel=send.channel,
        store_id=send.recipient if send.channel == Channel.IN_STORE else "",
        title=activation.title, body=activation.body, url=activation.url,
        data={**(activation.data or {}), "activation_id": activation.pk, "offer_id": activation.offer_id},
        expires_at=timezone.now() + timedelta(hours=settings.OMNICHANNEL_INBOX_TTL_HOURS),
    )


def _send_finish(send: SendLedger, *, status: str, source: str, error_code: str = "", error: str = "",
                 provider_message_id: str = "") -> None:
    """Record the end of a send (inside the caller's transaction) and move the activation along."""
    now = timezone.now()
    send.status = status
    send.error_code = error_code[:60]
    send.error = error[:500]
    fields = ["status", "error_code", "error", "updated_at"]
    if provider_message_id:
        send.provider_message_id = provider_message_id[:200]
        fields.append("provider_message_id")
    if status == SendStatus.SENT:
        send.sent_at = now
        fields.append("sent_at")
    send.save(update_fields=fields)
    SENDS.labels(send.channel, "outcome_unknown" if error_code == "outcome_unknown" else status).inc()
    if status == SendStatus.SENT:
        if send.channel == Channel.EMAIL:
            EmailStats.objects.filter(activation_id=send.activation_id).update(total_sent=F("total_sent") + 1)
        _activation_transition(send.activation_id, to=ActivationStatus.SENT, source=source)
    elif status in (SendStatus.FAILED, SendStatus.SUPPRESSED):
        reason = error or status
        _activation_transition(send.activation_id, to=ActivationStatus.FAILED, reason=reason, source=source)


def _after_permanent_error(send: SendLedger, exc: providers.ProviderError) -> None:
    if not exc.invalid_recipient:
        return
    if send.channel == Channel.PUSH:
        contact_forget_push_token(user_id=send.user_id, token=send.recipient)
    elif send.channel == Channel.SMS and exc.code == providers.TWILIO_UNSUBSCRIBED:
        _suppress(identifier=send.recipient, channel="sms", reason="unsubscribe", source="twilio:21610")


def send_execute(*, send_id: int, claim_token: str) -> SendOutcome:
    """Run one attempt of a ledger row's send (the worker calls this; safe to call any number of times).

    Suppression and consent are checked again right before sending. Returns the ledger status and,
    for a retryable provider error with attempts left, the delay before the next attempt.
    """
    now = timezone.now()
    with transaction.atomic():
        send = SendLedger.objects.select_for_update().select_related("activation").filter(pk=send_id).first()
        if send is None:
            return SendOutcome(status="missing", detail=f"send {send_id} does not exist")
        if send.status in FINAL_SEND_STATUSES:
            return SendOutcome(status=send.status, detail="already finished")
        if send.status == SendStatus.SENDING:
            claim_age = (now - send.claimed_at).total_seconds() if send.claimed_at else float("inf")
            if send.claim_token == claim_token or claim_age > settings.OMNICHANNEL_SEND_CLAIM_TIMEOUT_SECONDS:
                # This task already claimed the row (its worker died during the provider call), or the claim
                # was abandoned. The provider may have the message: a second call could duplicate it, and
                # the ledger promises one send, so the row ends here.
                _send_finish(send, status=SendStatus.FAILED, source="worker", error_code="outcome_unknown",
                             error="worker lost during the provider call; not resent to avoid a duplicate")
                log.warning("send_outcome_unknown", send_id=send_id, activation_id=send.activation_id)
                return SendOutcome(status=SendStatus.FAILED, detail="outcome_unknown")
            return SendOutcome(status=SendStatus.SENDING, detail="another worker holds the send")
        contact = Contact.objects.filter(user_id=send.user_id).first()
        blocked = cascade.send_blocked_reason(channel=send.channel, user_id=send.user_id, recipient=send.recipient,
                                              contact=contact)
        if blocked:
            status = SendStatus.SUPPRESSED if blocked.startswith("suppressed") else SendStatus.FAILED
            _send_finish(send, status=status, source="worker", error_code="blocked_at_send",
                         error=f"not sent: {blocked}")
            log.info("send_blocked", send_id=send_id, activation_id=send.activation_id, reason=blocked)
            return SendOutcome(status=status, detail=blocked)
        send.attempts += 1
        if _stored_by_us(send):
            # Our own store: writing the message and marking it sent is one transaction, nothing can duplicate.
            send.save(update_fields=["attempts"])
            _store_inbox_message(send)
            _send_finish(send, status=SendStatus.SENT, source="worker")
            return SendOutcome(status=SendStatus.SENT)
        send.status = SendStatus.SENDING
        send.claim_token = claim_token[:64]
        send.claimed_at = now
        send.save(update_fields=["status", "claim_token", "claimed_at", "attempts", "updated_at"])

    started = time.perf_counter()
    try:
        message_id = _provider_call(send)
    except providers.ProviderError as exc:
        attempts_left = send.attempts < 1 + settings.OMNICHANNEL_SEND_MAX_RETRIES
        with transaction.atomic():
            locked = SendLedger.objects.select_for_update().select_related("activation").get(pk=send_id)
            if locked.status != SendStatus.SENDING or locked.claim_token != send.claim_token:
                return SendOutcome(status=locked.status, detail="claim lost")
            if exc.retryable and attempts_left:
                delay = _retry_delay(locked.attempts)
                locked.status = SendStatus.QUEUED
                locked.claim_token = ""
                locked.error_code = exc.code[:60]
                locked.error = str(exc)[:500]
                locked.next_attempt_at = timezone.now() + timedelta(seconds=delay)
                locked.save(update_fields=["status", "claim_token", "error_code", "error", "next_attempt_at", "updated_at"])
                SENDS.labels(locked.channel, "retry").inc()
                log.warning("send_retry", send_id=send_id, provider=exc.provider, error=str(exc),
                            attempt=locked.attempts, retry_in=delay)
                return SendOutcome(status=SendStatus.QUEUED, retry_in=delay, detail=str(exc))
            why = "retries exhausted: " if exc.retryable else ""
            _send_finish(locked, status=SendStatus.FAILED, source="worker", error_code=exc.code or "error",
                         error=why + str(exc))
            _after_permanent_error(locked, exc)
        log.warning("send_failed", send_id=send_id, provider=exc.provider, error=str(exc), attempts=send.attempts,
                    permanent=not exc.retryable)
        return SendOutcome(status=SendStatus.FAILED, detail=str(exc))
    with transaction.atomic():
        locked = SendLedger.objects.select_for_update().get(pk=send_id)
        if locked.status == SendStatus.SENDING and locked.claim_token == send.claim_token:
            _send_finish(locked, status=SendStatus.SENT, source="worker", provider_message_id=message_id)
    log.info("send_sent", send_id=send_id, activation_id=send.activation_id, provider=send.provider,
             provider_message_id=message_id, ms=round((time.perf_counter() - started) * 1000, 1))
    return SendOutcome(status=SendStatus.SENT)


def send_mark_delivered(*, send: SendLedger, source: str) -> bool:
    """A provider (or the app fetching its message) confirmed delivery."""
    # A row that failed only because its outcome was unknown (worker lost) may still be proven delivered.
    updated = SendLedger.objects.filter(
        Q(status__in=[SendStatus.SENDING, SendStatus.SENT]) | Q(status=SendStatus.FAILED, error_code="outcome_unknown"),
        pk=send.pk,
    ).update(status=SendStatus.DELIVERED, delivered_at=timezone.now(), updated_at=timezone.now())
    if updated:
        _activation_transition(send.activation_id, to=ActivationStatus.DELIVERED, source=source)
    return bool(updated)


def send_mark_failed(*, send: SendLedger, source: str, error_code: str, error: str) -> bool:
    """A provider reported that a message it accepted was not delivered."""
    updated = SendLedger.objects.filter(pk=send.pk, status__in=[SendStatus.SENDING, SendStatus.SENT]).update(
        status=SendStatus.FAILED, error_code=error_code[:60], error=error[:500], updated_at=timezone.now())
    if updated:
        _activation_transition(send.activation_id, to=ActivationStatus.FAILED, reason=error, source=source)
    return bool(updated)


def sends_requeue_stale(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Queue again the sends whose task was lost (broker down at commit, worker gone for good)."""
    cutoff = timezone.now() - older_than
    ids = list(SendLedger.objects.filter(status=SendStatus.QUEUED, next_attempt_at__lt=cutoff).values_list("pk", flat=True)[:1000])
    for send_id in ids:
        send_enqueue(send_id=send_id)
    stale_claims = list(SendLedger.objects.filter(
        status=SendStatus.SENDING,
        claimed_at__lt=timezone.now() - timedelta(seconds=settings.OMNICHANNEL_SEND_CLAIM_TIMEOUT_SECONDS),
    ).values_list("pk", flat=True)[:1000])
    for send_id in stale_claims:
        send_enqueue(send_id=send_id)  # the run finds the abandoned claim and closes the row
    if ids or stale_claims:
        log.warning("sends_requeued", queued=len(ids), abandoned_claims=len(stale_claims))
    return len(ids) + len(stale_claims)
