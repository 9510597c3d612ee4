"""Kafka listeners: named endpoints that accept connections and hand them to the pipeline.

Kafka names each listener (``PLAINTEXT``, ``SSL``, ``SASL_SSL``…) and gives it a security
protocol; the name reaches every request's context and the admin answers. :class:`Listener` is
the seam a TLS or SASL listener implements (its own handshake, then a session with the
authenticated principal); :class:`PlaintextListener` serves raw sockets, which lets fetches go
from segment files to the socket with ``sendfile``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import socket

from headrace.core.config import ListenerConfig, SecurityProtocol
from headrace.core.requests import Session
from headrace.server.connection import Connection
from headrace.server.pipeline import RequestPipeline

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

    @abc.abstractmethod
    async def start(self) -> None:
        """Start accepting connections."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop accepting and end every connection."""


class PlaintextListener(Listener):
    """A PLAINTEXT listener: every connection is an anonymous session."""

    def __init__(
        self, config: ListenerConfig, pipeline: RequestPipeline, *, max_request_bytes: int
    ) -> None:
        if config.security_protocol is not SecurityProtocol.PLAINTEXT:
            raise ValueError(f"{config.name}: {config.security_protocol} is not served yet")
        super().__init__(config)
        self._pipeline = pipeline
        self._max_request_bytes = max_request_bytes
        self._socket: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

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

    async def start(self) -> None:
        if self._socket is None:
            self.bind()
        assert self._socket is not None
        self._accept_task = asyncio.create_task(self._accept_loop(self._socket))

    async def stop(self) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._socket is not None:
            self._socket.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, address = await loop.sock_accept(listening)
            except OSError as error:  # e.g. EMFILE: back off instead of spinning
                log.warning("accept failed: %s", error)
                await asyncio.sleep(0.1)
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            host = str(address[0]) if isinstance(address, tuple) else str(address)
            connection = Connection(
                self._pipeline, sock, Session(self.name, host),
                max_request_bytes=self._max_request_bytes,
            )
            task = asyncio.create_task(connection.run())
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
