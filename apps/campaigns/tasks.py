"""Periodic lifecycle work (docs/RULES.md §3): thin, idempotent tasks that call one service each."""
from __future__ import annotations

import structlog
from celery import shared_task

from . import services

log = structlog.get_logger(__name__)


@shared_task(name="campaigns.go_live_due", ignore_result=True)
def campaigns_go_live_due() -> list[int]:
    """Scheduled campaigns whose start time has come go live."""
    done = services.campaign_go_live_due()
    if done:
        log.info("campaigns_went_live", campaign_ids=done)
    return done


@shared_task(name="campaigns.complete_due", ignore_result=True)
def campaigns_complete_due() -> list[int]:
    """Live campaigns past their end time or out of budget are completed."""
    done = services.campaign_complete_due()
    if done:
        log.info("campaigns_completed", campaign_ids=done)
    return done


@shared_task(name="campaigns.purge_idempotency_records", ignore_result=True)
def campaigns_purge_idempotency_records() -> int:
    """Stored answers of Idempotency-Key campaign creates older than 7 days are deleted."""
    return services.campaign_purge_idempotency_records()


@shared_task(name="campaigns.notification_email", ignore_result=True, bind=True, max_retries=5,
             acks_late=True)
def campaigns_notification_email(self, notification_id: int) -> str:
    """Email one staff notification (at most once: the service claims it); provider hiccups retry
    with backoff, at most 5 times."""
    from apps.omnichannel.providers import ProviderError

    try:
        return services.notification_send_email(notification_id=notification_id)
    except ProviderError as exc:
        raise self.retry(exc=exc, countdown=min(300, 10 * 2 ** self.request.retries)) from exc


@shared_task(name="campaigns.notification_emails_pending", ignore_result=True)
def campaigns_notification_emails_pending() -> int:
    """Send the notification emails still pending a minute after they were created (each at most
    once: the service claims it); returns how many were sent now."""
    sent = services.notification_send_pending_emails()
    if sent:
        log.info("campaign_notification_emails_swept", sent=sent)
    return sent
