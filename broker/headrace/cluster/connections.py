"""Pooled Kafka connections to the other brokers, for requests a broker forwards on a client's
behalf (the HTTP API's produce, offsets and group requests).

:class:`~headrace.cluster.wire.BrokerConnection` carries one request at a time; the pool keeps
up to ``size`` of them per broker, so concurrent HTTP requests forwarded to one leader do not
queue behind each other, and a broker whose address changed gets fresh connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.cluster.wire import BrokerConnection
from headrace.core.errors import KafkaError

EndpointLookup = Callable[[int], tuple[str, int] | None]
#: The client TLS context for the other brokers' inter-broker listener (None: plaintext),
#: asked per new connection so a rotated certificate is used from then on.
PeerTls = Callable[[], ssl.SSLContext | None]


def no_tls() -> ssl.SSLContext | None:
    return None

#: What a lost or unreachable peer raises.
CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, TimeoutError, ConnectionError)


class _Peer:
    def __init__(self, endpoint: tuple[str, int], size: int) -> None:
        self.endpoint = endpoint
        self.idle: list[BrokerConnection] = []
        self.slots = asyncio.Semaphore(size)


class ConnectionPool:
    """Up to ``size`` connections per broker, opened on demand and reused."""

    def __init__(self, endpoint_of: EndpointLookup, *, client_id: str, size: int = 4,
                 timeout: float = 30.0, tls: PeerTls = no_tls) -> None:
        self.endpoint_of = endpoint_of
        self.tls = tls
        self.client_id = client_id
        self.size = size
        self.timeout = timeout
        self._peers: dict[int, _Peer] = {}

    def connection(self, broker_id: int) -> BrokerConnection:
        """A connection of its own (a long poll should not hold a pooled one); the caller
        closes it."""
        endpoint = self._endpoint(broker_id)
        return BrokerConnection(*endpoint, client_id=self.client_id, timeout=self.timeout,
                                tls=self.tls())

    def _endpoint(self, broker_id: int) -> tuple[str, int]:
        endpoint = self.endpoint_of(broker_id)
        if endpoint is None:
            raise KafkaError(ErrorCode.leader_not_available,
                             f"broker {broker_id} is not registered")
        return endpoint

    @contextlib.asynccontextmanager
    async def _lease(self, broker_id: int) -> AsyncIterator[BrokerConnection]:
        endpoint = self._endpoint(broker_id)
        peer = self._peers.get(broker_id)
        if peer is None or peer.endpoint != endpoint:
            if peer is not None:
                for stale in peer.idle:
                    await stale.close()
            peer = self._peers[broker_id] = _Peer(endpoint, self.size)
        async with peer.slots:
            connection = peer.idle.pop() if peer.idle else BrokerConnection(
                *endpoint, client_id=self.client_id, timeout=self.timeout, tls=self.tls())
            try:
                yield connection
            except BaseException:
                await connection.close()
                raise
            if self._peers.get(broker_id) is peer:
                peer.idle.append(connection)
            else:
                await connection.close()

    async def request(self, broker_id: int, request: Any) -> Any:
        """Send ``request`` to ``broker_id``; an unreachable broker is LEADER_NOT_AVAILABLE."""
        try:
            async with self._lease(broker_id) as connection:
                return await connection.request(request)
        except CONNECTION_ERRORS as error:
            raise KafkaError(ErrorCode.leader_not_available,
                             f"broker {broker_id} did not answer: {error or type(error).__name__}"
                             ) from None

    async def close(self) -> None:
        peers, self._peers = list(self._peers.values()), {}
        for peer in peers:
            for connection in peer.idle:
                await connection.close()
