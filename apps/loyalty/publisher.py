"""Publishing reward signals on NATS from synchronous Django code.

Signals go to the JetStream stream ``LOYALTY_NATS_STREAM`` (default ``LOYALTY``) on subject
``loyalty.reward-signals``, so a training consumer that is down catches up later; a plain NATS
subscriber on the subject receives them too. Each message carries ``Nats-Msg-Id`` = signal id, so a
signal published twice (a retry after a lost ack) is stored once within the stream's duplicate
window. The stream is created on first use when it does not exist.

Each call opens a short-lived connection in its own event loop (on a helper thread when the calling
thread already runs a loop), publishes, and closes: reward signals are low-volume and this keeps
the web and worker processes free of a long-lived NATS client.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, Iterable

import nats
import structlog
from django.conf import settings
from nats.js import api as js_api
from nats.js.errors import NotFoundError

log = structlog.get_logger(__name__)

SUBJECT = "loyalty.reward-signals"
STREAM_MAX_AGE_SECONDS = 7 * 24 * 3600
DUPLICATE_WINDOW_SECONDS = 120


class PublishError(RuntimeError):
    """NATS is unreachable or did not acknowledge; the caller keeps the signal for a later retry.
    ``acked`` lists the message ids acknowledged before the failure."""

    def __init__(self, message: str, *, acked: list[str] | None = None):
        super().__init__(message)
        self.acked = list(acked or [])


def stream_name() -> str:
    return settings.LOYALTY_NATS_STREAM


def _timeout() -> float:
    return settings.LOYALTY_NATS_TIMEOUT_SECONDS


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="loyalty-nats-publish", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


async def _log_connection_error(exc: Exception) -> None:
    log.warning("loyalty_nats_connection_error", error=f"{type(exc).__name__}: {exc}")


async def _ensure_stream(js) -> None:
    name = stream_name()
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(
            js_api.StreamConfig(
                name=name,
                subjects=[SUBJECT],
                storage=js_api.StorageType.FILE,
                max_age=STREAM_MAX_AGE_SECONDS,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
        )
        log.info("loyalty_stream_created", stream=name, subject=SUBJECT)


async def _publish(messages: list[tuple[str, bytes]], acked: list[str]) -> None:
    """Publish in order, appending each acknowledged id to ``acked`` (kept on failure part-way)."""
    timeout = _timeout()
    # settings.NATS_URL is read per call (no connection is kept), so a test can point it elsewhere.
    # max_reconnect_attempts must be > 0: nats-py retries a dead server forever when it is 0.
    nc = await nats.connect(
        servers=[settings.NATS_URL],
        connect_timeout=max(1, int(timeout)),
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.1,
        error_cb=_log_connection_error,
    )
    try:
        js = nc.jetstream(timeout=timeout)
        await _ensure_stream(js)
        for msg_id, payload in messages:
            await js.publish(SUBJECT, payload, timeout=timeout, stream=stream_name(), headers={"Nats-Msg-Id": msg_id})
            acked.append(msg_id)
    finally:
        await nc.close()


def publish(messages: Iterable[tuple[str, bytes]]) -> list[str]:
    """Publish ``(message id, payload)`` pairs; return the ids JetStream acknowledged, in order.

    Raises :class:`PublishError` when NATS cannot be reached or a publish is not acknowledged; ids
    acknowledged before the failure are in ``PublishError.acked``.
    """
    batch = list(messages)
    if not batch:
        return []
    acked: list[str] = []

    async def guarded() -> list[str]:
        try:
            # A hard bound on the whole exchange, whatever the client library does on a bad network.
            await asyncio.wait_for(_publish(batch, acked), timeout=_timeout() * (len(batch) + 3))
        except Exception as exc:  # noqa: BLE001 - every NATS failure means "retry later"
            raise PublishError(f"{type(exc).__name__}: {exc}", acked=acked) from exc
        return acked

    return _run(guarded())
