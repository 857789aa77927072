"""Nagle-style inference batching across concurrent requests (docs/RULES.md §1 "Batching").

Requests that arrive while a batch is open are merged into ONE provider call
(``provider.score_batch``: one user GEMM for all requests, one offer GEMM for all their rows). A batch
is flushed when it holds ``max_items`` requests or ``max_wait_us`` after its first request,
whichever comes first; each caller gets its own slice of the result.

Off by default (``CAMPAIGN_EXPRESS__NPU__BATCHING=1`` turns it on): on the numpy CPU provider the
64-row GEMM is already compute-bound, and a 16-item / 500 µs batcher measured no throughput gain and a
3-4x worse p99 (docs/DESIGN.md "Measured limits behind the choices"). It is for accelerators, where per-call overhead
dominates.

Timer resolution (measured by ``bench/inference_bench.py``, see its output): the flush timer is
``loop.call_later(max_wait_us / 1e6)``. uvloop (libuv) keeps timers in whole milliseconds and
rounds a sub-millisecond delay *down* to 0, so under uvloop a 500 µs wait fires on the next loop
iteration (a few µs later); stdlib asyncio's epoll selector rounds its timeout *up* to 1 ms, so
500 µs fires after about 1.1 ms. Waits of 1 ms or more behave as configured on both.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import structlog

from apps.inference.providers import InferenceProvider, ScoreResult, check_request

log = structlog.get_logger(__name__)

DEFAULT_MAX_ITEMS = 16
DEFAULT_MAX_WAIT_US = 500


class InferenceBatcher:
    """Merge concurrent ``score`` calls of one event loop into single provider calls.

    ``provider_getter`` is called at flush time, so a batch always runs on the provider (and
    weights) current when it is flushed, and a hot reload is never half-applied within a batch.
    """

    def __init__(
        self,
        provider_getter: Callable[[], InferenceProvider],
        max_items: int = DEFAULT_MAX_ITEMS,
        max_wait_us: int = DEFAULT_MAX_WAIT_US,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_wait_us < 0:
            raise ValueError(f"max_wait_us must not be negative, got {max_wait_us}")
        self.provider_getter = provider_getter
        self.max_items = max_items
        self.max_wait_us = max_wait_us
        self._pending: list[tuple[tuple[np.ndarray, np.ndarray, np.ndarray], asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0  # flushes so far (for tests and the bench)
        self.items = 0  # requests flushed so far

    async def score(self, user_row: np.ndarray, offer_features: np.ndarray, positions: np.ndarray) -> ScoreResult:
        """Score one request's candidates as part of the current batch."""
        request = check_request(user_row, offer_features, positions)  # bad input fails its own caller only
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # first use, or a new event loop (tests): a batch never spans loops
            self._drop_pending()
            self._loop = loop
        future = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) >= self.max_items:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_us / 1e6, self._flush)
        return await future

    def _drop_pending(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, future in self._pending:
            if not future.done():
                future.cancel()
        self._pending = []

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        live = [(request, future) for request, future in batch if not future.done()]  # skip cancelled callers
        if not live:
            return
        self.batches += 1
        self.items += len(live)
        try:
            results = self.provider_getter().score_batch([request for request, _ in live])
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the provider's error
            log.exception("inference_batch_failed", size=len(live))
            for _, future in live:
                future.set_exception(exc)
            return
        for (_, future), result in zip(live, results, strict=False):  # one result per row: equal by construction
            future.set_result(result)
