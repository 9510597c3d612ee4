"""Kafka listeners: named endpoints that accept connections and hand them to the pipeline.

Kafka names each listener (``PLAINTEXT``, ``SSL``, ``SASL_SSL``…) and gives it a security
protocol; the name and protocol reach every request's session and the admin answers.
:class:`Listener` is the seam; :class:`PlaintextListener` serves raw sockets (PLAINTEXT and
SASL_PLAINTEXT), which lets fetches go from segment files to the socket with ``sendfile``;
:class:`TlsListener` serves TLS (SSL and SASL_SSL) with the broker's current certificate, and on
SSL the client certificate's mapped subject is the session's principal (SASL listeners'
principals come from the pipeline's authentication step). Every listener admits connections
through the broker's :class:`~headrace.server.limits.ConnectionSlots` (closing those over a
limit at once, as Kafka does) and closes connections idle for longer than
``connections.max.idle.ms``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field

from headrace.core.config import ListenerConfig, SecurityProtocol
from headrace.core.requests import Session
from headrace.security.principal_mapping import NoMatchingRule
from headrace.security.tls import TlsContexts
from headrace.server.connection import Connection, FrameBufferPool, new_frame_buffer_pool
from headrace.server.limits import ConnectionRateLimits, ConnectionSlots, RequestBudget
from headrace.server.pipeline import RequestPipeline
from headrace.server.transport import PlainTransport, TlsTransport, Transport

log = logging.getLogger(__name__)


class Listener(abc.ABC):
    """One named Kafka listener: ``bind()`` (port known), ``start()`` (accept), ``stop()``."""

    def __init__(self, config: ListenerConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @property
    @abc.abstractmethod
    def bound_port(self) -> int:
        """The port bound (the configured one, or the ephemeral one for port 0)."""

    @abc.abstractmethod
    def bind(self) -> None:
        """Bind and listen without accepting yet, so the advertised port is known."""

    def close_bound(self) -> None:
        """Release a bound but never started listener (another one failed to bind)."""
        return None

    @abc.abstractmethod
    async def start(self) -> None:
        """Start accepting connections."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop accepting and end every connection."""


@dataclass
class ConnectionPolicy:
    """What every Kafka listener of a broker shares: its limits and request memory."""

    #: socket.request.max.bytes: a larger size prefix closes the connection.
    max_request_bytes: int
    #: queued.max.request.bytes, for all connections together.
    budget: RequestBudget
    #: max.connections and max.connections.per.ip, for all listeners together.
    slots: ConnectionSlots
    #: connections.max.idle.ms (None or 0: never).
    max_idle_ms: int | None = None
    frame_buffers: FrameBufferPool = field(default_factory=new_frame_buffer_pool)
    #: max.connection.creation.rate and per-IP connection_creation_rate quotas.
    connection_rates: ConnectionRateLimits = field(default_factory=ConnectionRateLimits)


#: Refused connections are logged at most this often (a flood must not flood the log).
_REFUSAL_LOG_SECONDS = 10.0


class PlaintextListener(Listener):
    """A listener on raw sockets: PLAINTEXT (anonymous sessions) or SASL_PLAINTEXT."""

    #: The protocols this class serves.
    protocols = (SecurityProtocol.PLAINTEXT, SecurityProtocol.SASL_PLAINTEXT)

    def __init__(
        self, config: ListenerConfig, pipeline: RequestPipeline, policy: ConnectionPolicy
    ) -> None:
        if config.security_protocol not in self.protocols:
            raise ValueError(f"{config.name}: {type(self).__name__} does not serve "
                             f"{config.security_protocol}")
        super().__init__(config)
        self._pipeline = pipeline
        self._policy = policy
        self._socket: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._reaper_task: asyncio.Task[None] | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._refused_unlogged = 0
        self._refusal_logged_at = float("-inf")

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def bound_port(self) -> int:
        assert self._socket is not None, "listener not bound"
        return int(self._socket.getsockname()[1])

    def bind(self) -> None:
        host = self.config.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        try:
            listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listening.bind((host, self.config.port))
            listening.listen(512)
        except OSError:
            listening.close()
            raise
        listening.setblocking(False)
        self._socket = listening

    def close_bound(self) -> None:
        if self._socket is not None and self._accept_task is None:
            self._socket.close()
            self._socket = None

    async def start(self) -> None:
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        self._accept_task = asyncio.create_task(self._accept_loop(self._socket))
        if self._policy.max_idle_ms:
            self._reaper_task = asyncio.create_task(self._close_idle(self._policy.max_idle_ms))

    async def stop(self) -> None:
        for background in (self._accept_task, self._reaper_task):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        if self._socket is not None:
            self._socket.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        policy = self._policy
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
            except OSError as error:  # e.g. EMFILE: back off instead of spinning
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            host = str(address[0]) if isinstance(address, tuple) else str(address)
            if not await policy.connection_rates.admit(sock, host):
                continue  # over a connection creation rate (KIP-612)
            refusal = policy.slots.refusal(host)
            if refusal is not None:
                sock.close()  # as Kafka: the client sees the connection closed at once
                self._pipeline.observer.on_connection_refused(refusal.split("=", 1)[0])
                self._log_refusal(host, refusal)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = Session(self.name, host, security_protocol=self.config.security_protocol)
            transport = self._transport(sock)
            connection = Connection(
                self._pipeline, transport, session,
                max_request_bytes=policy.max_request_bytes, budget=policy.budget,
                frame_buffers=policy.frame_buffers,
            )
            task = asyncio.create_task(self._serve(connection, transport, session))
            self._connections[task] = connection
            task.add_done_callback(self._connection_ended)

    def _transport(self, sock: socket.socket) -> Transport:
        return PlainTransport(sock)

    async def _serve(self, connection: Connection, transport: Transport, session: Session) -> None:
        await connection.run()

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        connection = self._connections.pop(task)
        self._policy.slots.release(connection.client_host)

    def _log_refusal(self, host: str, refusal: str) -> None:
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._refusal_logged_at < _REFUSAL_LOG_SECONDS:
            return
        log.warning("refused %d connection(s) on listener %s, the last from %s: %s",
                    self._refused_unlogged, self.name, host, refusal)
        self._refused_unlogged = 0
        self._refusal_logged_at = now

    async def _close_idle(self, max_idle_ms: int) -> None:
        """Kafka's idle expiry: one sweep over the connections every tenth of the limit."""
        loop = asyncio.get_running_loop()
        limit = max_idle_ms / 1000
        while True:
            await asyncio.sleep(min(max(limit / 10, 0.01), 30.0))
            now = loop.time()
            for connection in list(self._connections.values()):
                if connection.idle_for(now) > limit:
                    connection.close_idle(max_idle_ms)


class TlsListener(PlaintextListener):
    """A TLS listener: SSL (the principal is the client certificate's mapped subject, or
    ANONYMOUS without one) or SASL_SSL (SASL authenticates over the TLS connection)."""

    protocols = (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)

    def __init__(
        self, config: ListenerConfig, pipeline: RequestPipeline, policy: ConnectionPolicy,
        tls: TlsContexts,
    ) -> None:
        super().__init__(config, pipeline, policy)
        self._tls = tls

    def _transport(self, sock: socket.socket) -> Transport:
        # The current context: certificates rotated on disk apply from the next connection.
        return TlsTransport(sock, self._tls.server())

    async def _serve(self, connection: Connection, transport: Transport, session: Session) -> None:
        assert isinstance(transport, TlsTransport)
        try:
            await transport.start()
            if self.config.security_protocol is SecurityProtocol.SSL:
                principal = self._tls.principal(transport.peer_certificate())
                if principal is not None:
                    session.principal = principal
        except (OSError, TimeoutError, NoMatchingRule) as error:
            # Kafka logs these as failed authentications; a scanner must not flood the log.
            log.info("TLS handshake with %s on listener %s failed: %s", session.client_host,
                     self.name, _handshake_failure(error))
            transport.close()
            return
        await connection.run()


def _handshake_failure(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    if isinstance(error, TimeoutError):
        return "no handshake within the timeout"
    return str(error) or type(error).__name__
