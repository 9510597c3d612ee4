"""How long a coroutine kept the event loop busy: the request time of KIP-124 quotas.

Kafka charges a request-percentage quota with the time a request held a handler thread. Here a
handler is a coroutine sharing one event loop with every other request, so its wall time would
also count its waits (a long-poll Fetch parked for 500 ms uses no CPU). :func:`run_timed` drives
the coroutine itself and adds up only the time spent inside each of its steps, the loop's
equivalent of a thread's busy time. It costs two clock reads per step, so the pipeline uses it
only while request quotas may apply.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class _Timed:
    __slots__ = ("_awaitable", "busy")

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self._awaitable = awaitable
        self.busy = 0.0

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine = self._awaitable.__await__()
        clock = time.perf_counter
        value: Any = None
        error: BaseException | None = None
        while True:
            started = clock()
            try:
                yielded = coroutine.send(value) if error is None else coroutine.throw(error)
            except StopIteration as stop:
                self.busy += clock() - started
                return stop.value
            except BaseException:
                self.busy += clock() - started
                raise
            self.busy += clock() - started
            try:
                value, error = (yield yielded), None
            except BaseException as thrown:  # cancellation reaches the coroutine, as with await
                value, error = None, thrown


async def run_timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    """Await ``awaitable``; (its result, seconds it ran on the loop)."""
    timed = _Timed(awaitable)
    result: T = await timed
    return result, timed.busy


__all__ = ["run_timed"]
