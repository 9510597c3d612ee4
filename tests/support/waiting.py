"""Waiting for what another thread, task or process makes true: one bounded poll for the suite.

Tests never sleep to synchronise; they poll a condition until it holds, for a bounded time, and
fail naming what they waited for. :func:`eventually` polls from synchronous code (client threads,
subprocess brokers), :func:`eventually_async` from a coroutine, so the event loop keeps serving
an in-process broker between tries; its condition may be a plain function or a coroutine
function.

A condition holds when it returns something truthy, which the wait returns. While it returns
something falsy, or raises one of ``retry_on``, it is tried again: first 10 ms apart, backing
off to ``interval``, so a condition met at once is seen at once and a long wait does not spin.
Past ``timeout`` the wait raises ``AssertionError`` with ``message``, the last value and the last
error (also chained as its cause). Any other exception ends the wait at once: an ``assert`` in
a condition checks an invariant of every try. Waits on a cluster mid-failover, where a broker
refuses connections or does not know a topic yet, pass ``retry_on=(Exception,)``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

#: What a failed wait says it waited for; a callable is asked only when the wait fails.
Message = str | Callable[[], str]

FIRST_PAUSE_S = 0.01


class _Deadline:
    """The bookkeeping both waits share: the time left, the pause before the next try, and
    what the last try saw."""

    def __init__(self, timeout: float, interval: float, message: Message) -> None:
        self.timeout = timeout
        self.ends = time.monotonic() + timeout
        self.interval = interval
        self.next_pause = min(FIRST_PAUSE_S, interval)
        self.message = message
        self.last_value: object = None
        self.last_error: BaseException | None = None

    def missed(self, value: object = None, error: BaseException | None = None) -> float | None:
        """Record a try that did not hold; the pause before the next one, None when time's up."""
        self.last_value, self.last_error = value, error
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            return None
        pause = min(self.next_pause, remaining)
        self.next_pause = min(self.next_pause * 2, self.interval)
        return pause

    def failure(self) -> AssertionError:
        what = self.message if isinstance(self.message, str) else self.message()
        seen = (f"last error: {self.last_error!r}" if self.last_error is not None
                else f"last value: {self.last_value!r}")
        return AssertionError(f"timed out after {self.timeout:g} s waiting for {what} ({seen})")


def eventually(
    condition: Callable[[], T],
    *,
    timeout: float,
    message: Message,
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``condition`` until it returns something truthy and return that; fail after
    ``timeout`` seconds saying ``message``. Blocks the calling thread between tries."""
    deadline = _Deadline(timeout, interval, message)
    while True:
        try:
            value = condition()
        except retry_on as error:
            pause = deadline.missed(error=error)
        else:
            if value:
                return value
            pause = deadline.missed(value)
        if pause is None:
            raise deadline.failure() from deadline.last_error
        if pause:  # sleep(0) would hand the GIL to busy threads and wait for it back
            time.sleep(pause)


@overload
async def eventually_async(
    condition: Callable[[], Awaitable[T]], *, timeout: float, message: Message,  # noqa: ASYNC109
    interval: float = ..., retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


@overload
async def eventually_async(
    condition: Callable[[], T], *, timeout: float, message: Message,  # noqa: ASYNC109
    interval: float = ..., retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...


async def eventually_async(
    condition: Callable[[], Any],
    *,
    timeout: float,  # noqa: ASYNC109 - the wait's own bound, so its failure names what it awaited
    message: Message,
    interval: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = (),
) -> Any:
    """:func:`eventually` for coroutines: awaits ``condition()`` when it returns an awaitable,
    and pauses with ``asyncio.sleep`` so other tasks run between tries."""
    deadline = _Deadline(timeout, interval, message)
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
        except retry_on as error:
            pause = deadline.missed(error=error)
        else:
            if value:
                return value
            pause = deadline.missed(value)
        if pause is None:
            raise deadline.failure() from deadline.last_error
        await asyncio.sleep(pause)
