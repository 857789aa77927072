"""Thin Celery tasks: they take ids and call one service. Delivery is at least once (acks late), so
every task is safe to run twice: the send ledger and the sg_event_id constraint make repeats no-ops.

The services import these tasks at the top (to queue them); a task imports the services in its body,
so this module loads without them and there is no import cycle."""
from __future__ import annotations

import uuid

import structlog
from celery import shared_task

log = structlog.get_logger(__name__)


@shared_task(bind=True, name="omnichannel.send_activation", acks_late=True, max_retries=None)
def send_activation(self, send_id: int) -> str:
    """One attempt of a ledger row's send; retryable provider errors come back after a back-off
    (bounded by OMNICHANNEL_SEND_MAX_RETRIES, counted on the ledger row, not by Celery)."""
    from .services import send_execute, task_options

    claim = self.request.id or uuid.uuid4().hex
    outcome = send_execute(send_id=send_id, claim_token=claim)
    if outcome.retry_in is not None:
        # Same task id on purpose: a redelivery after a crash recognises its own claim.
        raise self.retry(countdown=outcome.retry_in, **task_options())
    return outcome.status


@shared_task(name="omnichannel.process_sendgrid_batch", acks_late=True)
def process_sendgrid_batch(batch_id: int) -> int:
    from .services import sendgrid_batch_process

    return sendgrid_batch_process(batch_id=batch_id)


@shared_task(name="omnichannel.recover")
def recover() -> dict:
    """Re-queue sends and webhook batches whose task was lost (broker down at commit, worker killed)."""
    from .services import sendgrid_batches_requeue_unprocessed, sends_requeue_stale

    return {"sends": sends_requeue_stale(), "sendgrid_batches": sendgrid_batches_requeue_unprocessed()}


@shared_task(name="omnichannel.purge_idempotency_records", ignore_result=True)
def purge_idempotency_records() -> int:
    """Drop omnichannel idempotency records older than OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS (daily)."""
    from .services import omnichannel_purge_idempotency_records

    deleted = omnichannel_purge_idempotency_records()
    log.info("omnichannel_idempotency_records_purged", deleted=deleted)
    return deleted
