"""HTTP connections: a limit of their own and a deadline on every request head.

aiohttp has no connection limit and no header timeout: its keep-alive timer closes a connection
that has sent no complete request head since it opened or since its last response, so a client
trickling one header byte a second is cut off only after that whole keep-alive time.
:class:`HttpConnectionGuard` wraps each connection's aiohttp protocol: a connection beyond
``max_connections`` is closed at once (so HTTP clients cannot use up the file descriptors Kafka
clients need; the Kafka listeners count theirs apart), and once the first byte of a request
arrives its head must be complete within ``header_timeout`` seconds. The keep-alive idle time
stays aiohttp's (``keepalive_timeout``), and body reads are bounded by
:func:`headrace.web.context.read_body`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

#: Refused connections are logged at most this often.
_REFUSAL_LOG_SECONDS = 10.0


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the guard's limit and header deadline."""

    def __init__(self, guard: HttpConnectionGuard, inner: RequestHandler) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._head_deadline: asyncio.TimerHandle | None = None
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        real = cast(asyncio.Transport, transport)
        if not self._guard.admit():
            real.abort()
            return
        self._transport = real
        self._guard.protocols[self._inner] = self
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._in_request and self._head_deadline is None:
            # The first byte of a request head: the rest of the head has header_timeout.
            loop = asyncio.get_running_loop()
            self._head_deadline = loop.call_later(self._guard.header_timeout, self._head_late)
        self._inner.data_received(data)

    def eof_received(self) -> None:
        self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # refused: aiohttp never saw it
        self._cancel_deadline()
        self._guard.protocols.pop(self._inner, None)
        self._guard.release()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def request_started(self) -> None:
        self._in_request = True
        self._cancel_deadline()

    def request_finished(self) -> None:
        self._in_request = False

    def _cancel_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_late(self) -> None:
        self._head_deadline = None
        if not self._in_request and self._transport is not None:
            log.info("closing HTTP connection from %s: request head not complete within %g s",
                     self._transport.get_extra_info("peername"), self._guard.header_timeout)
            self._transport.abort()


class HttpConnectionGuard:
    """Counts HTTP connections against ``max_connections`` and times request heads."""

    def __init__(self, *, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.open = 0
        self.protocols: dict[Any, _GuardedProtocol] = {}
        self._refused_unlogged = 0
        self._refusal_logged_at = float("-inf")

    def admit(self) -> bool:
        if self.open >= self.max_connections:
            self._log_refusal()
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1

    def request_started(self, request: web.BaseRequest) -> _GuardedProtocol | None:
        """Called by the middleware once a request's head is parsed: its deadline is met."""
        protocol = self.protocols.get(request.protocol)
        if protocol is not None:
            protocol.request_started()
        return protocol

    def factory(self, server: web.Server) -> Any:
        """The protocol factory for ``loop.create_server``: aiohttp's, wrapped."""
        return lambda: _GuardedProtocol(self, server())

    def _log_refusal(self) -> None:
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= _REFUSAL_LOG_SECONDS:
            log.warning("refused %d HTTP connection(s): --http-max-connections=%d reached",
                        self._refused_unlogged, self.max_connections)
            self._refused_unlogged = 0
            self._refusal_logged_at = now


class GuardedTCPSite(web.BaseSite):
    """aiohttp's TCPSite, serving through an :class:`HttpConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 guard: HttpConnectionGuard) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The port bound (the ephemeral one for port 0)."""
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard.factory(server), self._host, self._port,
            backlog=self._backlog, reuse_address=True,
        )


__all__ = ["GuardedTCPSite", "HttpConnectionGuard"]
