"""NATS ingest consumers: subjects ``ingest.{source}.>`` in the queue group ``ingest-agents``
(the first token is ``INGEST_NATS_SUBJECT_PREFIX``, default ``ingest``).

Every message is one JSON event, handled by the same processor as ``POST /v1/channels/ingest``
(``services.ingest_event_process``). The source comes from the subject (a body naming another one is
refused), and the subject is the caller: an ``event_id`` is unique per (source, subject), so a replay
on the same subject answers 200 with the first answer, a different body under the same id 409, and
another subject (or an HTTP client) reusing the id sends its own event. When the message has a reply
subject the consumer answers with exactly the JSON body the HTTP endpoint would return — errors
included — and the HTTP status in the ``Ce-Status`` header.

The Django code is synchronous; it runs in a worker thread (``sync_to_async(thread_sensitive=False)``)
so one slow event does not stop the event loop, and each thread closes stale DB connections.
"""
from __future__ import annotations

import orjson
import structlog
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from .models import Transport

log = structlog.get_logger(__name__)

QUEUE_GROUP = "ingest-agents"
STATUS_HEADER = "Ce-Status"


def subject_pattern() -> str:
    from django.conf import settings

    return f"{settings.INGEST_NATS_SUBJECT_PREFIX}.*.>"


def process_message(subject: str, data: bytes) -> tuple[int, dict]:
    """Decode one NATS message and run the ingest processor; returns (HTTP status, JSON body)."""
    from rest_framework.exceptions import ParseError

    from apps.core.api import exception_handler

    from . import services

    close_old_connections()
    try:
        parts = subject.split(".")
        subject_source = parts[1] if len(parts) > 2 else None
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if not isinstance(payload, dict):
            raise ParseError("the message must be one JSON object")
        payload.setdefault("source", subject_source)
        outcome = services.ingest_event_process(data=payload, transport=Transport.NATS, subject_source=subject_source,
                                                caller=services.ingest_caller(subject=subject))
        return outcome.status, outcome.body
    except Exception as exc:  # noqa: BLE001 - every failure becomes the HTTP endpoint's error body
        response = exception_handler(exc, {})
        if response is None:
            log.exception("ingest_agent_error", subject=subject)
            return 500, {"error": "internal_error", "detail": "the event could not be processed"}
        return response.status_code, dict(response.data)
    finally:
        close_old_connections()


_process = sync_to_async(process_message, thread_sensitive=False)


async def _handle(nc, msg) -> None:
    status, body = await _process(msg.subject, msg.data)
    if msg.reply:
        await nc.publish(msg.reply, orjson.dumps(body), headers={STATUS_HEADER: str(status)})
    if status >= 400:
        log.info("ingest_agent_refused", subject=msg.subject, status=status, error=body.get("error"))


async def start_ingest_consumers(nc, *, consumers: int = 4) -> list:
    """Subscribe the ingest consumers on an open nats-py connection; returns the subscriptions.

    Used by ``manage.py run_agents`` (with the bid agents) and ``manage.py run_ingest_agents``.
    nats-py runs one subscription's callbacks one after another, so ``consumers`` subscriptions join
    the same queue group: the server spreads messages over them and up to that many events are
    processed at once. ``nc.drain()`` lets the ones in flight finish.
    """

    async def callback(msg) -> None:
        try:
            await _handle(nc, msg)
        except Exception:  # noqa: BLE001 - a consumer must outlive one bad message
            log.exception("ingest_agent_crashed", subject=msg.subject)

    subject = subject_pattern()
    subscriptions = [await nc.subscribe(subject, queue=QUEUE_GROUP, cb=callback) for _ in range(max(1, consumers))]
    await nc.flush()  # the server has the subscriptions once this returns: "ready" means ready
    log.info("ingest_agents_subscribed", subject=subject, queue=QUEUE_GROUP, consumers=len(subscriptions))
    return subscriptions
