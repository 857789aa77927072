"""One notice call (``nurl``/``burl``/``lurl``) from a Celery task, with the retry decision."""
from __future__ import annotations

import dataclasses

import httpx
import structlog
from django.conf import settings
from prometheus_client import Counter

log = structlog.get_logger(__name__)

NOTICES = Counter("dsp_notices", "Win/billing/loss notices sent to DSP platforms", ["kind", "outcome"])


@dataclasses.dataclass(frozen=True)
class NoticeOutcome:
    status: int
    retry_in: float | None = None
    max_retries: int = 0


def _retry_after(response: httpx.Response | None, attempt: int) -> float:
    header = response.headers.get("retry-after") if response is not None else None
    if header and header.strip().isdigit():
        return min(float(header), 3600.0)
    return min(2.0 ** attempt, 300.0)


def notice_send(*, url: str, kind: str, platform: str, attempt: int = 0) -> NoticeOutcome:
    max_retries = settings.DSP_NOTICE_MAX_RETRIES
    response = None
    try:
        response = httpx.get(url, timeout=settings.DSP_NOTICE_TIMEOUT_SECONDS, follow_redirects=True)
        status = response.status_code
    except httpx.HTTPError as exc:
        status = 0
        log.warning("dsp_notice_failed", kind=kind, platform=platform, error=f"{type(exc).__name__}: {exc}")
    if 200 <= status < 400:
        NOTICES.labels(kind, "sent").inc()
        return NoticeOutcome(status)
    retryable = status == 0 or status == 429 or status >= 500
    if retryable and attempt < max_retries:
        NOTICES.labels(kind, "retry").inc()
        return NoticeOutcome(status, retry_in=_retry_after(response, attempt), max_retries=max_retries)
    NOTICES.labels(kind, "failed").inc()
    log.warning("dsp_notice_given_up", kind=kind, platform=platform, status=status, attempts=attempt + 1)
    return NoticeOutcome(status)
