"""Running calls concurrently in threads, for race tests on the real database.

``run_together`` releases every call at once (a barrier), waits for every thread to finish, and
returns each call's result, or the exception it raised when that exception is one the test expects
(e.g. a refusal). A thread that did not finish, or an exception the test did not expect, fails the
test, with every unexpected exception named: nothing is swallowed."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def run_together(calls: Sequence[Callable[[], Any]], *, expected: tuple[type[BaseException], ...] = (),
                 timeout: float = 60) -> list[Any]:
    """Each call in its own thread (with its own database connection, closed at the end); results
    in the order of ``calls``."""
    from django.db import connection

    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    unexpected: list[tuple[int, BaseException]] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except expected as exc:
            results[index] = exc
        except BaseException as exc:  # noqa: BLE001 - collected, and failed on below
            unexpected.append((index, exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call), daemon=True) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    alive = [i for i, thread in enumerate(threads) if thread.is_alive()]
    assert not alive, f"call(s) {alive} did not finish within {timeout} s"
    if unexpected:
        names = "; ".join(f"call {i}: {type(exc).__name__}: {exc}" for i, exc in sorted(unexpected, key=lambda p: p[0]))
        raise AssertionError(f"{len(unexpected)} unexpected exception(s): {names}") from unexpected[0][1]
    return results
