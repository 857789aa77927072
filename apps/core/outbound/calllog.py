"""The outbound call log: one ``OutboundCall`` row per attempt, written by the client, read by the
admins ("recent calls" of a connection), purged daily after ``OUTBOUND_CALL_LOG_RETENTION_DAYS``.

What is stored: method, the URL with userinfo and secret-looking query values replaced by ``***``,
status, outcome, attempt number, duration and a truncated error. Never request bodies, never headers.
Writing the row can never fail the call: any error is logged and counted, and the row is written in
a savepoint so a failed insert cannot break the caller's transaction."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog
from prometheus_client import Counter

log = structlog.get_logger(__name__)

CALL_LOG_ERRORS = Counter("outbound_call_log_errors_total", "Outbound call log rows that could not be written")

URL_MAX = 1000
ERROR_MAX = 500
_SECRET_PARAM = re.compile(
    r"(key|token|secret|password|passwd|pwd|signature|sig|auth|credential|code|session)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``https://u:p@host/x?api_key=abc&q=1`` → ``https://host/x?api_key=***&q=1`` (at most 1000 characters)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url[:URL_MAX]
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))[:URL_MAX]


def _fields(*, name: str, method: str, url: str, status_code: int | None, outcome: str, attempt: int,
            duration_ms: float, error: str, context: dict | None) -> dict:
    context = context or {}
    return {
        "name": name[:64],
        "connection": str(context.get("connection", ""))[:100],
        "method": method.upper()[:10],
        "url": redact_url(url),
        "status_code": status_code,
        "outcome": outcome,
        "attempt": attempt,
        "duration_ms": max(0, int(round(duration_ms))),
        "error": (error or "")[:ERROR_MAX],
    }


def record_call(**kwargs) -> None:
    """Write one row; never raises."""
    try:
        from django.db import transaction

        from apps.core.models import OutboundCall

        with transaction.atomic():
            OutboundCall.objects.create(**_fields(**kwargs))
    except Exception as exc:  # noqa: BLE001 - the call log must never fail the call it describes
        CALL_LOG_ERRORS.inc()
        log.warning("outbound_call_log_failed", name=kwargs.get("name"), error=repr(exc))


async def arecord_call(**kwargs) -> None:
    """The asyncio twin (the insert runs in Django's thread pool); never raises."""
    try:
        from asgiref.sync import sync_to_async

        await sync_to_async(record_call)(**kwargs)
    except Exception as exc:  # noqa: BLE001
        CALL_LOG_ERRORS.inc()
        log.warning("outbound_call_log_failed", name=kwargs.get("name"), error=repr(exc))


def purge_calls(*, older_than_days: int) -> int:
    """Delete rows older than ``older_than_days`` in bounded batches; returns how many went."""
    from django.utils import timezone

    from apps.core.models import OutboundCall
    from apps.core.retention import delete_in_batches

    cutoff = timezone.now() - timedelta(days=older_than_days)
    return delete_in_batches(OutboundCall.objects.filter(created_at__lt=cutoff))


def recent_calls(*, connection: str, limit: int = 20):
    """The latest rows tagged with ``connection`` (newest first), for an integration's admin page."""
    from apps.core.models import OutboundCall

    return list(OutboundCall.objects.filter(connection=connection).order_by("-created_at", "-id")[:limit])
