"""Integration tasks: thin, idempotent, bounded retries; retryable vendor errors retry after the
vendor's ``Retry-After`` when it gave one, permanent ones are recorded and stop."""
from __future__ import annotations

import structlog
from celery import shared_task

from apps.core.outbound import OutboundError

log = structlog.get_logger(__name__)

MAX_RETRIES = 8


def _countdown(exc, retries: int) -> float:
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return min(max(float(retry_after), 1.0), 3600.0)
    return min(2 ** retries * 5, 600)


def _retry_or_raise(task, exc):
    if getattr(exc, "retryable", False) and task.request.retries < MAX_RETRIES:
        raise task.retry(exc=exc, countdown=_countdown(exc, task.request.retries))
    raise exc


@shared_task(bind=True, name="integrations.create_approval_task", acks_late=True, max_retries=MAX_RETRIES)
def create_approval_task(self, connection_id: int, campaign_id: int, review_round: int) -> str:
    from apps.integrations.adaptors import ConnectionProblem
    from apps.integrations.services import AttemptInProgress, approval_task_create

    try:
        task = approval_task_create(connection_id=connection_id, campaign_id=campaign_id, review_round=review_round)
    except AttemptInProgress as exc:
        raise self.retry(exc=exc, countdown=60) from None
    except (OutboundError, ConnectionProblem) as exc:
        log.warning("integration_task_create_failed", connection_id=connection_id, campaign_id=campaign_id,
                    retryable=exc.retryable, error=str(exc))
        _retry_or_raise(self, exc)
    return "" if task is None else (task.external_key or task.external_id)


@shared_task(bind=True, name="integrations.push_approval_decision", acks_late=True, max_retries=MAX_RETRIES)
def push_approval_decision(self, campaign_id: int, review_round: int, action: str) -> int:
    from apps.integrations.adaptors import ConnectionProblem
    from apps.integrations.services import approval_decision_push

    try:
        return approval_decision_push(campaign_id=campaign_id, review_round=review_round, action=action)
    except (OutboundError, ConnectionProblem) as exc:
        log.warning("integration_decision_push_failed", campaign_id=campaign_id, retryable=exc.retryable,
                    error=str(exc))
        _retry_or_raise(self, exc)
        return 0


@shared_task(name="integrations.sync_approval_status", ignore_result=True)
def sync_approval_status() -> dict:
    from apps.integrations.services import approval_status_sync

    summary = approval_status_sync()
    if summary.polled:
        log.info("integration_status_synced", polled=summary.polled, votes_cast=summary.votes_cast,
                 errors=summary.errors)
    return summary.__dict__


@shared_task(bind=True, name="integrations.push_powerbi", acks_late=True, max_retries=MAX_RETRIES)
def push_powerbi(self, connection_id: int) -> int:
    """Append the closed hours of one Power BI connection (resumes from its cursor; a retry adds nothing twice)."""
    from apps.integrations.adaptors import ConnectionProblem
    from apps.integrations.services import powerbi_push

    try:
        return powerbi_push(connection_id=connection_id).rows
    except (OutboundError, ConnectionProblem) as exc:
        log.warning("integration_powerbi_push_failed", connection_id=connection_id, retryable=exc.retryable,
                    error=str(exc))
        _retry_or_raise(self, exc)
        return 0


@shared_task(name="integrations.push_powerbi_all", ignore_result=True)
def push_powerbi_all() -> int:
    from apps.integrations.services import powerbi_connection_ids

    ids = powerbi_connection_ids()
    for connection_id in ids:
        push_powerbi.delay(connection_id)
    return len(ids)


@shared_task(name="integrations.sync_creative_validity", ignore_result=True)
def sync_creative_validity() -> dict:
    """Refresh each imported DAM asset's validity (an expired/withdrawn/unapproved one stops bidding)."""
    from apps.integrations.services import creative_validity_sync

    summary = creative_validity_sync()
    if summary.checked:
        log.info("creative_validity_synced", checked=summary.checked, changed=summary.changed, errors=summary.errors)
    return summary.__dict__
