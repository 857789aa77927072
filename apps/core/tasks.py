"""Platform tasks."""
from __future__ import annotations

import structlog
from celery import shared_task
from django.conf import settings

log = structlog.get_logger(__name__)


@shared_task(name="core.purge_outbound_calls")
def purge_outbound_calls() -> int:
    """Drop outbound call log rows older than OUTBOUND_CALL_LOG_RETENTION_DAYS (daily)."""
    from apps.core.outbound.calllog import purge_calls

    deleted = purge_calls(older_than_days=settings.OUTBOUND_CALL_LOG_RETENTION_DAYS)
    log.info("outbound_calls_purged", deleted=deleted, retention_days=settings.OUTBOUND_CALL_LOG_RETENTION_DAYS)
    return deleted


@shared_task(name="core.purge_auth_audit", ignore_result=True)
def purge_auth_audit() -> int:
    """Drop staff login audit rows older than AUTH_AUDIT_RETENTION_DAYS (daily, in bounded batches)."""
    from apps.core.auth import auth_audit_purge

    deleted = auth_audit_purge()
    log.info("auth_audit_purged", deleted=deleted, retention_days=settings.AUTH_AUDIT_RETENTION_DAYS)
    return deleted


@shared_task(name="core.run_export", acks_late=True)
def run_export(job_id: int) -> int:
    """Write one background Excel export (apps.core.exports)."""
    from apps.core.exports import export_run

    return export_run(job_id=job_id).rows_done
