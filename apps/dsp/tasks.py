"""DSP Celery tasks: the notices (``nurl``, ``burl``, ``lurl``) a win sends, and the periodic
snapshot publish and spend flush. Thin and idempotent: a notice fired twice is the platform's
duplicate to ignore (they key on the auction and bid ids in the URL)."""
from __future__ import annotations

import structlog
from celery import shared_task

log = structlog.get_logger(__name__)


@shared_task(bind=True, name="dsp.fire_notice", acks_late=True, max_retries=None)
def fire_notice(self, *, url: str, kind: str, platform: str) -> int:
    """GET one notice URL; retried with back-off (``DSP_NOTICE_MAX_RETRIES``) on a retryable failure,
    honouring ``Retry-After``; a 4xx other than 429 is final."""
    from apps.dsp.notices import notice_send

    outcome = notice_send(url=url, kind=kind, platform=platform, attempt=self.request.retries)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=outcome.max_retries)
    return outcome.status


@shared_task(name="dsp.publish_platforms", ignore_result=True)
def publish_platforms() -> int:
    from apps.dsp.services import platforms_publish

    return platforms_publish()


@shared_task(name="dsp.flush_spend", ignore_result=True)
def flush_spend() -> int:
    from apps.dsp.services import dsp_spend_flush

    return dsp_spend_flush()
