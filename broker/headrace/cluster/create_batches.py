"""Topic creations that arrive together reach etcd together.

One Metadata request may auto-create hundreds of topics, a CreateTopics request a thousand, and
each topic's creation is its own background write (:mod:`headrace.cluster.topic_writes`, one
name at a time). Sent one by one, they cost an etcd round trip and a Raft commit each. The
:class:`CreationBatcher` gathers the creations submitted in one turn of the event loop and
commits them as few transactions as etcd allows (at most ``max_ops`` operations each), every
topic guarded by its own "the name is still free" compare. A transaction is all or nothing,
so when one of its names turns out taken, its topics are retried one by one, and each gets
its own answer, as if it had been sent alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Creation = TypeVar("Creation")
#: Commit every creation in one transaction: True when all landed (with their revision), False
#: when a compare failed (none landed).
Together = Callable[[Sequence[Creation]], Awaitable[tuple[bool, int]]]
#: Commit one creation: its revision, or 0 when the name is taken.
Alone = Callable[[Creation], Awaitable[int]]


class CreationBatcher(Generic[Creation]):
    """Gathers the creations of one event-loop turn into transactions of at most ``max_ops``
    operations (``ops(creation)`` each)."""

    def __init__(
        self,
        together: Together[Creation],
        alone: Alone[Creation],
        ops: Callable[[Creation], int],
        max_ops: int,
    ) -> None:
        self._together = together
        self._alone = alone
        self._ops = ops
        self._max_ops = max_ops
        self._queued: list[tuple[Creation, asyncio.Future[int]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def create(self, creation: Creation) -> int:
        """The creation's etcd revision once committed, or 0 if its name was taken."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((creation, future))
        return await future

    def _flush(self) -> None:
        queued, self._queued = self._queued, []
        group: list[tuple[Creation, asyncio.Future[int]]] = []
        used = 0
        for entry in queued:
            ops = self._ops(entry[0])
            if group and used + ops > self._max_ops:
                self._start(group)
                group, used = [], 0
            group.append(entry)
            used += ops
        if group:
            self._start(group)

    def _start(self, group: list[tuple[Creation, asyncio.Future[int]]]) -> None:
        task = asyncio.create_task(self._commit(group), name="topic-creations")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, group: list[tuple[Creation, asyncio.Future[int]]]) -> None:
        try:
            if len(group) > 1:
                landed, revision = await self._together([creation for creation, _ in group])
                if landed:
                    for _, future in group:
                        _settle(future, revision)
                    return
            for creation, future in group:  # alone, or a name in the group was taken
                if future.done():
                    continue
                try:
                    _settle(future, await self._alone(creation))
                except Exception as error:
                    if not future.done():
                        future.set_exception(error)
        except Exception as error:
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
        except asyncio.CancelledError:  # the store is closing: nobody waits forever
            for _, future in group:
                future.cancel()
            raise


def _settle(future: asyncio.Future[int], revision: int) -> None:
    if not future.done():
        future.set_result(revision)


__all__ = ["CreationBatcher"]
