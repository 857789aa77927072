"""Helpers every omnichannel service module shares: analytics after commit, the task queue, and
suppression entries the providers' answers ask for."""
from __future__ import annotations

from typing import Any

import structlog
from django.conf import settings
from django.db import transaction

from apps.core.exceptions import ServiceError

log = structlog.get_logger(__name__)


def _emit(event_type: str, **fields: Any) -> None:
    """Analytics never blocks nor breaks a send: emit() queues in memory."""
    from apps.analytics.emitter import emit

    emit(event_type, **{k: v for k, v in fields.items() if v is not None and v != ""})


def _after_commit(fn) -> None:
    transaction.on_commit(fn)


def task_options() -> dict:
    queue = settings.OMNICHANNEL_TASK_QUEUE
    return {"queue": queue} if queue else {}


def _suppress(*, identifier: str, channel: str, reason: str, source: str) -> None:
    from apps.suppression.services import suppression_add

    try:
        suppression_add(identifier=identifier, channel=channel, reason=reason, source=source)
    except ServiceError as exc:
        log.warning("suppression_add_refused", identifier=identifier, channel=channel, error=exc.message)
