"""The analytics emitter's event-loop flusher (:meth:`LoopFlushing.run_in_loop`), mixed into
:class:`apps.analytics.emitter.Emitter`: the same rounds as the flusher thread, for asyncio
processes whose loop thread holds the GIL most of the time."""
from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import redis
import structlog

log = structlog.get_logger("apps.analytics.emitter")

# The loop flusher converts this many events between two turns of the event loop.
ROWS_PER_TURN = 128


class LoopFlushing:
    """Methods of :class:`~apps.analytics.emitter.Emitter` that run on an event loop; they use its
    buffer, locks, stream and back-off state (``_round``, ``_failed``, ``_succeeded``...)."""

    # The Emitter's state these methods use (set in Emitter.__init__ / _reset_state).
    stream: str
    redis_url: str
    interval: float
    _buf: collections.deque
    _failures: int
    _flush_lock: threading.Lock
    _start_lock: threading.Lock
    _stop: threading.Event
    _started: bool
    _thread: threading.Thread | None
    _task: asyncio.Task | None
    _wake: asyncio.Event | None
    _aredis: Any

    if TYPE_CHECKING:  # the Emitter's methods these call
        def backlog(self) -> int: ...
        def stop(self, *, flush: bool = True, timeout: float = 3.0) -> bool: ...
        def _round(self, per_pause: int) -> Generator[list[tuple[bytes, int]] | None, bool | None, bool]: ...
        def _failed(self, exc: Exception) -> bool: ...
        def _succeeded(self) -> bool: ...

    def run_in_loop(self) -> "asyncio.Task":
        """Flush from the running event loop instead of a thread; returns the flusher task.

        For asyncio processes whose loop thread holds the GIL most of the time (bid workers, gRPC
        sidecar, NATS agents), where GIL hand-offs to a flusher thread cost far more than the round
        itself (docs/DESIGN.md "The hot path"): ``ROWS_PER_TURN`` events per loop turn, one pipeline.

        A thread already running is stopped first; events it had not written stay buffered. Stop
        with :meth:`stop_in_loop` (it flushes). Idempotent while the task runs."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return self._task
        if self._thread is not None:
            self.stop(flush=False)
        with self._start_lock:
            self._stop.clear()
            self._started = True  # emit() must not start the thread
        self._aredis = None  # a client of another (closed) loop cannot be reused
        self._task = loop.create_task(self._run_async(), name="analytics-flusher")
        return self._task

    async def stop_in_loop(self, *, timeout: float = 3.0) -> bool:
        """Stop the loop flusher and write what is buffered (bounded by ``timeout``). True when empty."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            # never cancel a round half-way (a cancelled pipeline read can hang redis-py's
            # connection): ask the task to return after its current round, wake it if it sleeps
            self._stop.set()
            if self._wake is not None:
                self._wake.set()
            await asyncio.wait({task}, timeout=timeout)  # (wait_for would cancel it at the timeout)
        with self._start_lock:
            self._started = False
        deadline = time.monotonic() + timeout
        client = self._async_client()
        try:
            while self.backlog():
                if await self._flush_once_async(client) and not self._buf:
                    break
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
        finally:
            self._aredis = None
            await client.aclose()
        return self.backlog() == 0

    def _async_client(self):
        client = self._aredis
        if client is None:
            from apps.core.redis import async_from_url  # redis:// or redis+cluster://

            client = self._aredis = async_from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=2)
        return client

    async def _run_async(self) -> None:
        client = self._async_client()
        wake = self._wake = asyncio.Event()
        while not self._stop.is_set():
            delay = self.interval if not self._failures else min(2.0, self.interval * 2 ** min(self._failures, 5))
            try:
                await asyncio.wait_for(wake.wait(), delay)
            except asyncio.TimeoutError:
                pass
            if self._stop.is_set():
                return
            try:
                await self._flush_once_async(client)
            except Exception:  # noqa: BLE001 - the flusher must survive anything and keep the events
                log.exception("analytics_flusher_crashed")

    async def _send_async(self, client, entries: list[tuple[bytes, int]]) -> bool:
        try:
            pipe = client.pipeline(transaction=False)
            for payload, _ in entries:
                pipe.xadd(self.stream, {"d": payload})
            await pipe.execute()
        except (redis.RedisError, OSError) as exc:
            return self._failed(exc)
        return self._succeeded()

    async def _flush_once_async(self, client) -> bool:
        """:meth:`flush_once` for the event loop: the same bookkeeping (events count as held from the
        moment they leave the buffer), converting ``ROWS_PER_TURN`` events per loop turn. The thread
        lock is only tried: the loop never blocks on a thread (one holding it is flushing anyway)."""
        if not self._flush_lock.acquire(blocking=False):
            return False
        try:
            steps, written = self._round(ROWS_PER_TURN), None
            while True:
                entries = steps.send(written)
                if entries is None:
                    await asyncio.sleep(0)  # let requests that arrived meanwhile in
                    written = None
                else:
                    written = await self._send_async(client, entries)
        except StopIteration as done:
            return done.value
        finally:
            self._flush_lock.release()

