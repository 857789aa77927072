"""One notice call (``nurl``/``burl``/``lurl``) from a Celery task, through the shared outbound client
(``apps.core.outbound.OutboundClient``: timeout, call log, ``Retry-After``), with the retry decision.
The client itself does not retry here: Celery does, so a retry survives a worker restart."""
from __future__ import annotations

import dataclasses

import structlog
from django.conf import settings
from prometheus_client import Counter

from apps.core.outbound import OutboundClient, OutboundError

log = structlog.get_logger(__name__)

NOTICES = Counter("dsp_notices", "Win/billing/loss notices sent to DSP platforms", ["kind", "outcome"])
_clients: dict[str, OutboundClient] = {}


@dataclasses.dataclass(frozen=True)
class NoticeOutcome:
    status: int
    retry_in: float | None = None
    max_retries: int = 0


def _client(platform: str) -> OutboundClient:
    client = _clients.get(platform)
    if client is None:
        client = _clients[platform] = OutboundClient(
            f"dsp-notice:{platform}", timeout=settings.DSP_NOTICE_TIMEOUT_SECONDS, retries=0,
            log_context={"connection": f"dsp:{platform}"})
    return client


def notice_send(*, url: str, kind: str, platform: str, attempt: int = 0) -> NoticeOutcome:
    max_retries = settings.DSP_NOTICE_MAX_RETRIES
    try:
        response = _client(platform).get(url, log_context={"kind": kind})
    except OutboundError as exc:
        status = exc.status_code or 0
        if exc.retryable and attempt < max_retries:
            NOTICES.labels(kind, "retry").inc()
            wait = exc.retry_after if exc.retry_after is not None else min(2.0 ** attempt, 300.0)
            return NoticeOutcome(status, retry_in=min(wait, 3600.0), max_retries=max_retries)
        NOTICES.labels(kind, "failed").inc()
        log.warning("dsp_notice_given_up", kind=kind, platform=platform, status=status, attempts=attempt + 1,
                    error=str(exc)[:200])
        return NoticeOutcome(status)
    NOTICES.labels(kind, "sent").inc()
    return NoticeOutcome(response.status_code)
