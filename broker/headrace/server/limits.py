"""What the Kafka listeners let clients hold: request memory and connection slots.

Every client is hostile, so memory is bounded before it is spent. :class:`RequestBudget` is
Kafka's ``queued.max.request.bytes`` memory pool: a request's claimed size is taken from it when
its size prefix is read (all or nothing, as in Kafka, so two half-read requests can never wait
for each other) and given back once the request has been answered; while it is short, connections
stop reading and TCP pushes back on their clients. The memory itself is allocated only as bytes
arrive (see :mod:`headrace.server.connection`). :class:`ConnectionSlots` counts connections for
``max.connections`` and ``max.connections.per.ip`` (with ``max.connections.per.ip.overrides``);
:class:`ConnectionRateLimits` holds new connections to KIP-612's creation rates.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Callable, Mapping

from headrace.observability.quotas import QuotaStats
from headrace.security.quotas import (
    DEFAULT_WINDOW_NUM,
    DEFAULT_WINDOW_SECONDS,
    WindowedRate,
    record_and_throttle,
)


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


class ConnectionRateLimits:
    """KIP-612's connection creation rates, as Kafka's acceptor applies them.

    Broker-wide (``max.connection.creation.rate``, every listener together): a connection over
    the rate is *delayed* — the accept loop pauses for the throttle, so clients wait in the
    listen backlog. Per client address (the ``connection_creation_rate`` quota of an ``ip``
    entity or the IP default): a connection over the rate is not served and is closed once its
    throttle has passed, so a client that reconnects at once cannot spin. Throttles are capped
    at one quota window, as in Kafka.
    """

    def __init__(
        self,
        max_rate: float | None = None,
        ip_rate: Callable[[str], float | None] = lambda host: None,
        *,
        stats: QuotaStats | None = None,
        window_num: int = DEFAULT_WINDOW_NUM,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_rate = max_rate
        self._ip_rate = ip_rate
        self.stats = stats if stats is not None else QuotaStats()
        self._window_num = window_num
        self._window_ms = window_seconds * 1000
        self._clock = clock
        self._broker = WindowedRate(window_num, self._window_ms)
        self._per_ip: dict[str, WindowedRate] = {}
        self._since_sweep = 0

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def admit(self, sock: socket.socket, host: str) -> bool:
        """Record a connection just accepted from ``host``; False when it is refused (the
        socket is then closed after its throttle)."""
        now_ms = self._now_ms()
        delay = record_and_throttle(self._broker, 1.0, now_ms, self.max_rate, self._window_ms)
        if delay > 0:
            self._count("broker", delay)
            await asyncio.sleep(delay / 1000)
            now_ms = self._now_ms()
        limit = self._ip_rate(host)
        if limit is None:
            return True
        rate = self._per_ip.get(host)
        if rate is None:
            rate = self._per_ip[host] = WindowedRate(self._window_num, self._window_ms)
            self._sweep(now_ms)
        delay = record_and_throttle(rate, 1.0, now_ms, limit, self._window_ms)
        if delay <= 0:
            return True
        # Not accepted after all: it counts towards neither rate.
        rate.record(-1.0, now_ms)
        self._broker.record(-1.0, now_ms)
        self._count("ip", delay)
        asyncio.get_running_loop().call_later(delay / 1000, _close, sock)
        return False

    def _count(self, scope: str, delay_ms: int) -> None:
        self.stats.connections_throttled[scope] += 1
        self.stats.connection_throttle_seconds[scope] += delay_ms / 1000

    def _sweep(self, now_ms: int) -> None:
        """Forget addresses idle for a whole span (their rate is zero): memory follows the
        addresses seen recently, not every address ever seen."""
        self._since_sweep += 1
        if self._since_sweep < 1024:
            return
        self._since_sweep = 0
        for host in [host for host, rate in self._per_ip.items() if rate.idle(now_ms)]:
            del self._per_ip[host]


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def parse_ip_overrides(text: str) -> dict[str, int]:
    """Kafka's ``max.connections.per.ip.overrides`` syntax: ``host:count,host:count``."""
    overrides: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, sep, count = item.rpartition(":")
        if not sep or not host or not count.isdigit():
            raise ValueError(f"expected HOST:COUNT, got {item!r}")
        overrides[host.strip("[]")] = int(count)
    return overrides


__all__ = ["ConnectionRateLimits", "ConnectionSlots", "RequestBudget", "parse_ip_overrides"]
