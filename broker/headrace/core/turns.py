"""Taking turns by key: callers with the same key run one at a time, in arrival order.

A producer's batches to a partition must reach its log in the order they arrived, but a
transaction's first write there waits on its coordinator (KIP-890), and requests on one
connection are handled concurrently: without a turn a pipelined batch could overtake the one
before it and fail its sequence check (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID). An
uncontended turn is taken without yielding to the event loop; keys nobody waits on hold no
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Turns:
    """FIFO turns per key (asyncio.Lock is fair: waiters are woken in order)."""

    def __init__(self) -> None:
        self._queues: dict[Hashable, _Queue] = {}

    def busy(self, key: Hashable) -> bool:
        """Whether someone holds or waits for ``key``'s turn."""
        return key in self._queues

    @contextlib.asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queue.users += 1
        try:
            async with queue.lock:
                yield
        finally:
            queue.users -= 1
            if not queue.users:
                del self._queues[key]
