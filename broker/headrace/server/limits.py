"""What the Kafka listeners let clients hold: request memory and connection slots.

Every client is hostile, so memory is bounded before it is spent. :class:`RequestBudget` is
Kafka's ``queued.max.request.bytes`` memory pool: a request's claimed size is taken from it when
its size prefix is read (all or nothing, as in Kafka, so two half-read requests can never wait
for each other) and given back once the request has been answered; while it is short, connections
stop reading and TCP pushes back on their clients. The memory itself is allocated only as bytes
arrive (see :mod:`headrace.server.connection`). :class:`ConnectionSlots` counts connections for
``max.connections`` and ``max.connections.per.ip`` (with ``max.connections.per.ip.overrides``).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping


class RequestBudget:
    """Request bytes held by every connection of the broker, at most ``limit`` (None: no limit).

    Waiters are served in arrival order, so a large request is not starved by a stream of small
    ones. A request larger than the whole budget is admitted when nothing else holds any.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @property
    def waiting(self) -> int:
        """Connections paused until request memory is given back."""
        return len(self._waiters)

    def _fits(self, size: int) -> bool:
        return self.limit is None or self.used == 0 or self.used + size <= self.limit

    def try_take(self, size: int) -> bool:
        """Take ``size`` bytes at once if they are free (and nobody queues before us)."""
        if self._waiters or not self._fits(size):
            return False
        self.used += size
        return True

    def take_anyway(self, size: int) -> None:
        """Count ``size`` bytes that are let through regardless (see Connection's allowance)."""
        self.used += size

    async def take(self, size: int) -> None:
        """Wait until ``size`` bytes are free, then hold them."""
        if self.try_take(size):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release(size)  # granted while being cancelled: hand it on
            else:
                self._waiters.remove(entry)
                self._grant()
            raise

    def release(self, size: int) -> None:
        self.used -= size
        self._grant()

    def _grant(self) -> None:
        while self._waiters:
            size, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if not self._fits(size):
                return
            self._waiters.popleft()
            self.used += size
            waiter.set_result(None)


class ConnectionSlots:
    """Open connections in total and per client address, against Kafka's two limits.

    ``max_connections`` is broker-wide (Kafka's ``max.connections``); ``max_per_ip`` applies to
    every address not named in ``overrides`` (``max.connections.per.ip.overrides``). None: no
    limit.
    """

    def __init__(
        self,
        max_connections: int | None,
        max_per_ip: int | None,
        overrides: Mapping[str, int] | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.overrides = dict(overrides or {})
        self.total = 0
        self._per_ip: collections.Counter[str] = collections.Counter()

    def refusal(self, host: str) -> str | None:
        """Why a new connection from ``host`` is over a limit, or None (then it holds a slot
        until :meth:`release`)."""
        if self.max_connections is not None and self.total >= self.max_connections:
            return f"max.connections={self.max_connections} reached"
        per_ip = self.overrides.get(host, self.max_per_ip)
        if per_ip is not None and self._per_ip[host] >= per_ip:
            return f"max.connections.per.ip={per_ip} reached for {host}"
        self.total += 1
        self._per_ip[host] += 1
        return None

    def release(self, host: str) -> None:
        self.total -= 1
        self._per_ip[host] -= 1
        if self._per_ip[host] <= 0:
            del self._per_ip[host]


def parse_ip_overrides(text: str) -> dict[str, int]:
    """Kafka's ``max.connections.per.ip.overrides`` syntax: ``host:count,host:count``."""
    overrides: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, count = item.rpartition(":")
        if not sep or not host or not count.isdigit():
            raise ValueError(f"expected HOST:COUNT, got {item!r}")
        overrides[host.strip("[]")] = int(count)
    return overrides


__all__ = ["ConnectionSlots", "RequestBudget", "parse_ip_overrides"]
