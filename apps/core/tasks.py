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
