"""Waiting on a condition instead of sleeping a fixed time.

``wait_until`` polls a predicate until it returns something truthy and returns that value, or raises
``AssertionError`` naming what did not happen (plus any detail the caller adds) when the time is up.
``async_wait_until`` does the same on an event loop; its predicate may be a plain function or a
coroutine function. ``pause``/``async_pause`` are the only plain sleeps: for the few tests where time
passing *is* the behaviour (pacing a load, letting a window pass to show that nothing happens)."""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError):
    """A condition a test waited for did not come true in time."""


def _failure(message: str, timeout: float, detail: Callable[[], str] | str | None, last_error: BaseException | None) -> str:
    text = f"timed out after {timeout:g} s waiting for: {message}"
    if last_error is not None:
        text += f"\nlast error: {last_error!r}"
    if detail is not None:
        text += "\n" + (detail() if callable(detail) else detail)
    return text


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, *,
               message: str = "condition", detail: Callable[[], str] | str | None = None,
               ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll ``predicate`` every ``interval`` s until it returns a truthy value (returned), for at most
    ``timeout`` s. Exceptions of the types in ``ignore`` count as "not yet" (e.g. a connection refused
    while a server starts); ``detail`` (text or a callable, e.g. a process's log tail) is added to the
    failure message."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ignore as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(_failure(message, timeout, detail, last_error))
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01, *,
                           message: str = "condition", detail: Callable[[], str] | str | None = None,
                           ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """``wait_until`` for a test on an event loop: the loop keeps running between polls. ``predicate``
    may return an awaitable (an ``async def`` predicate)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
        except ignore as exc:
            last_error = exc
        if loop.time() >= deadline:
            raise WaitTimeout(_failure(message, timeout, detail, last_error))
        await asyncio.sleep(interval)


def pause(seconds: float, why: str) -> None:
    """Let ``seconds`` pass on purpose: the passing of time is what the test is about (a rate being
    paced, a window in which something must *not* happen). ``why`` documents it at the call site."""
    assert why, "say why the test must wait a fixed time"
    time.sleep(seconds)


async def async_pause(seconds: float, why: str) -> None:
    """``pause`` on an event loop (other tasks run meanwhile); ``seconds`` may be 0 to yield once."""
    assert why, "say why the test must wait a fixed time"
    await asyncio.sleep(seconds)
