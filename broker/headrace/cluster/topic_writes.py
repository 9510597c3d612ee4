"""Background writes of topic changes to etcd, one topic name at a time, in the order asked.

The Kafka handlers' topic API is synchronous, so a clustered broker answers a topic change at
once and writes it to etcd in the background. Two changes of one name (create, delete, create
again; create, then new configs) must reach etcd in the order they were made, and while any of
them is on its way the name counts as pending: a set of names would forget a change still in
flight as soon as an earlier one of the same name finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

#: Gets what the write returned, or the exception it raised.
WriteDone = Callable[[Any], None]


class TopicWrites:
    """Runs each topic name's writes one after another; knows which names have writes queued."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Task[None]] = {}
        self._queued: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self, name: str) -> bool:
        """Whether a write of ``name`` is queued or running."""
        return name in self._queued

    def submit(self, name: str, write: Callable[[], Awaitable[Any]], done: WriteDone) -> None:
        """Run ``write()`` after the writes of ``name`` submitted before it, then ``done``.

        ``done`` gets the outcome (a failure is logged, never raised) and runs while the name
        still counts as pending only if a later write of it is queued.
        """
        previous = self._last.get(name)
        self._queued[name] = self._queued.get(name, 0) + 1

        async def run() -> None:
            outcome: Any
            try:
                if previous is not None:
                    await asyncio.wait({previous})
                outcome = await write()
            except Exception as error:
                log.warning("writing topic %s to etcd failed: %r", name, error)
                outcome = error
            finally:
                self._release(name)
            done(outcome)

        task = asyncio.create_task(run(), name=f"topic-write-{name}")
        self._last[name] = task
        self._tasks.add(task)
        task.add_done_callback(lambda finished: self._forget(name, finished))

    def _release(self, name: str) -> None:
        left = self._queued[name] - 1
        if left:
            self._queued[name] = left
        else:
            del self._queued[name]

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._last.get(name) is task:
            del self._last[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("topic write bookkeeping failed", exc_info=task.exception())

    async def settled(self) -> None:
        """Wait until every write submitted so far (and any they queued) has finished."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
