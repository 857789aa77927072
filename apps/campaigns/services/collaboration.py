"""The conversation around a campaign's review: its comment thread and the staff notifications
("awaiting your decision" to approvers on submit, "your campaign was decided" to the submitter).

A notification row exists at most once per (campaign, review round, recipient, kind) — the unique
constraint makes the fan-out safe to repeat — and its email is sent through the SendGrid client
directly (``sendgrid_send_staff``: no activation, no tracking, so it never counts in campaign
analytics). The email is claimed before the provider call (pending → sending, with a claim token
and time) and marked after it, so a retried task never sends twice: a retry finds the claim taken and
stops. A worker that dies during the provider call leaves its claim behind; once it is older than
``CAMPAIGN_NOTIFICATION_EMAIL_LEASE_SECONDS`` (far longer than a call can take, so its worker is gone)
the minute sweep takes it back (:func:`notification_emails_recover_stale`) and the email is sent again
under a new claim, with the same ``Message-ID`` (:func:`notification_message_id`). Marks after the
call check the claim token, so the dead claim can never overwrite what the new one recorded.
"""
from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from prometheus_client import Counter

from apps.core.exceptions import Forbidden, NotFound, ServiceError
from apps.core.roles import Role, user_has_role

from ..models import Campaign, CampaignComment, EmailStatus, Notification, NotificationKind
from .common import log

NOTIFICATIONS = Counter("campaign_notifications_total", "Staff notifications created", ["kind"])
NOTIFICATION_EMAILS = Counter("campaign_notification_emails_total", "Staff notification emails", ["outcome"])

COMMENT_MAX_LENGTH = 4000


def campaign_comment_add(*, campaign_id: int, actor: AbstractBaseUser | None, body: str) -> CampaignComment:
    """Add a message to the campaign's thread (its marketers and approvers)."""
    if not user_has_role(actor, Role.MARKETER, Role.APPROVER):
        raise Forbidden("Only marketers and approvers can comment on campaigns.")
    body = (body or "").strip()
    if not body:
        raise ServiceError("Write a comment before posting it.", field="body", code="required")
    if len(body) > COMMENT_MAX_LENGTH:
        raise ServiceError(f"A comment can be at most {COMMENT_MAX_LENGTH} characters ({len(body)} given).",
                           field="body")
    if not Campaign.objects.filter(pk=campaign_id).exists():
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    assert actor is not None  # user_has_role refused anonymous callers
    comment = CampaignComment.objects.create(campaign_id=campaign_id, author_id=actor.pk, body=body)
    log.info("campaign_comment_added", campaign_id=campaign_id, author_id=actor.pk)
    return comment


def _campaign_url(campaign_id: int) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("admin:campaigns_campaign_change", args=[campaign_id])


def _notify(campaign: Campaign, recipients, *, kind: str, message: str) -> list[int]:
    """Create the notifications that do not exist yet; returns the ids created now."""
    created = []
    for user in recipients:
        row, was_created = Notification.objects.get_or_create(
            campaign=campaign, review_round=campaign.review_round, recipient=user, kind=kind,
            defaults={"message": message[:300]},
        )
        if was_created:
            created.append(row.pk)
            NOTIFICATIONS.labels(kind).inc()
    if created:
        transaction.on_commit(partial(_enqueue_emails, tuple(created)))
    return created


def _enqueue_emails(ids) -> None:
    from ..tasks import campaigns_notification_email

    for notification_id in ids:
        try:
            campaigns_notification_email.delay(notification_id)
        except Exception as exc:  # noqa: BLE001 - broker down (any error): the beat sweep sends it later
            log.error("campaign_notification_enqueue_failed", notification_id=notification_id, error=str(exc))


def notify_awaiting_decision(*, campaign_id: int) -> list[int]:
    """Tell every approver who may decide on the campaign's current submission that it awaits them."""
    campaign = Campaign.objects.select_related("submitted_by").get(pk=campaign_id)
    own = {campaign.submitted_by_id, campaign.created_by_id}
    approvers = (get_user_model().objects.filter(is_active=True, is_staff=True, groups__name=Role.APPROVER)
                 .exclude(pk__in=[pk for pk in own if pk]).distinct().order_by("pk"))
    who = campaign.submitted_by.get_username() if campaign.submitted_by else "a marketer"
    return _notify(campaign, approvers, kind=NotificationKind.AWAITING_DECISION,
                   message=f"“{campaign.name}” ({campaign.advertiser}) awaits your decision, submitted by {who}.")


def notify_decided(*, campaign_id: int, decision: str, actor: AbstractBaseUser | None, reason: str) -> list[int]:
    """Tell the marketer who submitted the campaign that it was approved, rejected or sent back."""
    campaign = Campaign.objects.select_related("submitted_by").get(pk=campaign_id)
    if campaign.submitted_by is None:
        return []
    who = actor.get_username() if actor is not None else "the system"
    text = f"“{campaign.name}” was {decision} by {who}" + (f": {reason}" if reason else ".")
    return _notify(campaign, [campaign.submitted_by], kind=NotificationKind.DECIDED, message=text)


def notification_mark_read(*, notification_ids, actor: AbstractBaseUser) -> int:
    """Mark the actor's own notifications read; returns how many changed."""
    return Notification.objects.filter(pk__in=list(notification_ids), recipient_id=actor.pk, read_at__isnull=True).update(
        read_at=timezone.now())


PENDING_GRACE = timedelta(minutes=1)
SWEEP_BATCH = 200


def notification_message_id(notification: Notification) -> str:
    """The email's ``Message-ID``: one per notification, the same for every attempt, so a copy sent
    again after a lost worker is the same message to mail systems that deduplicate by it."""
    domain = (settings.SENDGRID_FROM_EMAIL or "").rpartition("@")[2] or "campaign-express.invalid"
    return f"<campaign-notification-{notification.pk}.{notification.created_at:%Y%m%d%H%M%S}@{domain}>"


def notification_emails_recover_stale(*, now=None) -> int:
    """Take back the claims of emails "sending" for longer than the lease (their worker died during the
    provider call): back to pending, so the sweep sends them again, or failed once
    ``CAMPAIGN_NOTIFICATION_EMAIL_MAX_ATTEMPTS`` claims were made. Each update is conditional on the
    claim token it read, so two sweeps (or a sweep and a late worker) never both act on one claim.
    Returns how many claims were taken back."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CAMPAIGN_NOTIFICATION_EMAIL_LEASE_SECONDS)
    stale = list(Notification.objects.filter(email_status=EmailStatus.SENDING)
                 .filter(Q(email_claimed_at__lt=cutoff) | Q(email_claimed_at__isnull=True))
                 .order_by("pk").values_list("pk", "email_claim_token", "email_attempts")[:SWEEP_BATCH])
    recovered = 0
    for pk, token, attempts in stale:
        claim = Notification.objects.filter(pk=pk, email_status=EmailStatus.SENDING, email_claim_token=token)
        if attempts >= settings.CAMPAIGN_NOTIFICATION_EMAIL_MAX_ATTEMPTS:
            done = claim.update(email_status=EmailStatus.FAILED, email_claim_token="",
                                email_error=f"worker lost during the provider call on {attempts} attempts; given up")
            outcome = "abandoned_failed"
        else:
            done = claim.update(email_status=EmailStatus.PENDING, email_claim_token="", email_claimed_at=None,
                                email_error="worker lost during the provider call; sent again")
            outcome = "abandoned_retry"
        if done:
            recovered += 1
            NOTIFICATION_EMAILS.labels(outcome).inc()
            log.warning("campaign_notification_email_claim_recovered", notification_id=pk, attempts=attempts,
                        outcome=outcome)
    return recovered


def notification_send_pending_emails(*, now=None) -> int:
    """Send the emails still pending ``PENDING_GRACE`` after their notification was created (the
    enqueue after commit failed, or the task's retries ran out); returns how many were sent.
    A provider error leaves a row pending for the next sweep."""
    from apps.omnichannel.providers import ProviderError

    notification_emails_recover_stale(now=now)
    cutoff = (now or timezone.now()) - PENDING_GRACE
    ids = list(Notification.objects.filter(email_status=EmailStatus.PENDING, created_at__lt=cutoff)
               .order_by("created_at").values_list("pk", flat=True)[:SWEEP_BATCH])
    sent = 0
    for notification_id in ids:
        try:
            sent += notification_send_email(notification_id=notification_id) == EmailStatus.SENT
        except ProviderError:
            continue
    return sent


def notification_mark_read_for_campaign(*, campaign_id: int, actor: AbstractBaseUser) -> int:
    """Opening a campaign's page reads the actor's notifications about it."""
    if not getattr(actor, "is_authenticated", False):
        return 0
    return Notification.objects.filter(campaign_id=campaign_id, recipient_id=actor.pk, read_at__isnull=True).update(
        read_at=timezone.now())


def notification_send_email(*, notification_id: int) -> str:
    """Email one notification at most once; returns its email status afterwards.

    Claim (pending → sending, in a transaction), call SendGrid outside it, then record the outcome.
    A retryable provider error puts the claim back (nothing was accepted) and re-raises, so the task
    retries; a permanent one marks it failed. A row already claimed or done is left alone."""
    from apps.omnichannel.providers import ProviderError, sendgrid_configured, sendgrid_send_staff

    with transaction.atomic():
        row = (Notification.objects.select_for_update().select_related("recipient", "campaign")
               .filter(pk=notification_id).first())
        if row is None or row.email_status != EmailStatus.PENDING:
            NOTIFICATION_EMAILS.labels("already_claimed").inc()
            return row.email_status if row else "missing"
        address = (row.recipient.email or "").strip()
        if not address or not sendgrid_configured():
            row.email_status = EmailStatus.SKIPPED
            row.email_error = "no email address" if not address else "SendGrid is not configured"
            row.save(update_fields=["email_status", "email_error"])
            NOTIFICATION_EMAILS.labels("skipped").inc()
            return row.email_status
        row.email_status = EmailStatus.SENDING
        row.email_attempts += 1
        row.email_claim_token = uuid.uuid4().hex
        row.email_claimed_at = timezone.now()
        row.save(update_fields=["email_status", "email_attempts", "email_claim_token", "email_claimed_at"])
    mine = Notification.objects.filter(pk=row.pk, email_status=EmailStatus.SENDING,
                                       email_claim_token=row.email_claim_token)
    subject = f"[Campaign Express] {row.get_kind_display()}: {row.campaign.name}"
    try:
        message_id = sendgrid_send_staff(to_email=address, subject=subject, text=row.message,
                                         url=_campaign_url(row.campaign_id), message_id=notification_message_id(row))
    except ProviderError as exc:
        status = EmailStatus.PENDING if exc.retryable else EmailStatus.FAILED
        mine.update(email_status=status, email_error=exc.message[:300], email_claim_token="")
        NOTIFICATION_EMAILS.labels("retry" if exc.retryable else "failed").inc()
        log.warning("campaign_notification_email_failed", notification_id=row.pk, retryable=exc.retryable,
                    detail=exc.message)
        if exc.retryable:
            raise
        return status
    # Sent: ours while we hold the claim, and also when a sweep took our claim back for lost (the row is
    # pending again) — marking it sent now keeps the sweep from sending it a second time.
    Notification.objects.filter(
        Q(email_status=EmailStatus.SENDING, email_claim_token=row.email_claim_token) | Q(email_status=EmailStatus.PENDING),
        pk=row.pk,
    ).update(email_status=EmailStatus.SENT, email_message_id=message_id[:100], emailed_at=timezone.now(),
             email_error="", email_claim_token="")
    NOTIFICATION_EMAILS.labels("sent").inc()
    log.info("campaign_notification_emailed", notification_id=row.pk, kind=row.kind)
    return EmailStatus.SENT
