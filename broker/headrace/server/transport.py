"""The bytes under a Kafka connection: a plaintext socket, or TLS over one.

:class:`~headrace.server.connection.Connection` reads frames and writes responses through a
:class:`Transport`. :class:`PlainTransport` is the raw non-blocking socket, where fetched record
bytes go from segment files to the socket with ``os.sendfile``. :class:`TlsTransport` runs the
standard library's TLS (an ``SSLObject`` over memory BIOs) on the same raw socket, so the
connection's reading, budgeting and in-order writing stay one code path; file regions are read
(``pread``) and encrypted, since the kernel cannot send encrypted file bytes on its own here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import os
import socket
import ssl
from typing import cast

from headrace.protocol.codec import FileSlice
from headrace.server.pipeline import ConnectionClosed

#: Ciphertext bytes asked of one ``recv`` (a few TLS records).
_CIPHER_CHUNK = 256 * 1024
#: Plaintext encrypted per socket write: bounds the memory one large response holds as
#: ciphertext, and lets sending start before the whole response is encrypted.
_ENCRYPT_CHUNK = 256 * 1024
#: A client must finish the TLS handshake within this (a silent connection holds a slot).
TLS_HANDSHAKE_TIMEOUT = 10.0


class Transport(abc.ABC):
    """One connected socket's byte stream, as the connection uses it."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()

    async def start(self) -> None:
        """Whatever must happen before the first frame (the TLS handshake)."""
        return None

    @abc.abstractmethod
    async def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of stream."""

    @abc.abstractmethod
    async def recv_into(self, view: memoryview) -> int:
        """Fill the start of ``view``; the number of bytes, 0 at end of stream."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Send all of ``data``."""

    @abc.abstractmethod
    async def send_file(self, region: FileSlice) -> None:
        """Send a byte range of an open file."""

    def shutdown(self) -> None:
        """Hang up (the reader then sees end of stream)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._sock.close()


class PlainTransport(Transport):
    """A raw non-blocking socket; file regions go out with ``os.sendfile``."""

    async def recv(self, size: int) -> bytes:
        return await self._loop.sock_recv(self._sock, size)

    async def recv_into(self, view: memoryview) -> int:
        return await self._loop.sock_recv_into(self._sock, view)

    async def send(self, data: bytes) -> None:
        # Usually the socket takes it all at once: skip the loop's future machinery then.
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            await self._loop.sock_sendall(self._sock, memoryview(data)[sent:])

    async def send_file(self, region: FileSlice) -> None:
        fd = self._sock.fileno()
        position = region.position
        remaining = region.size
        while remaining > 0:
            try:
                sent = os.sendfile(fd, region.fd, position, remaining)
            except BlockingIOError:
                await self._writable()
                continue
            except OSError as error:
                if error.errno == errno.EAGAIN:
                    await self._writable()
                    continue
                raise
            if sent == 0:
                raise ConnectionClosed("file region shrank while sending")
            position += sent
            remaining -= sent

    async def _writable(self) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        fd = self._sock.fileno()

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        self._loop.add_writer(fd, ready)
        try:
            await waiter
        finally:
            self._loop.remove_writer(fd)


class TlsTransport(Transport):
    """The server side of TLS on a raw socket (``ssl.SSLObject`` over memory BIOs)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        super().__init__(sock)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        # Reads may produce TLS messages to send too (TLS 1.3 key updates): ciphertext leaves
        # the outgoing BIO and enters the socket under one lock, so it stays in order.
        self._write_lock = asyncio.Lock()

    def peer_certificate(self) -> bytes | None:
        """The client's certificate (DER), verified against the CA file; None if it sent none."""
        return self._tls.getpeercert(binary_form=True)

    async def start(self) -> None:
        async with asyncio.timeout(TLS_HANDSHAKE_TIMEOUT):
            while True:
                try:
                    self._tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    await self._flush()
                    if not await self._feed():
                        raise ConnectionResetError("closed during the TLS handshake") from None
                except ssl.SSLError:
                    # Send the alert, so the client learns why (e.g. an unknown certificate).
                    with contextlib.suppress(OSError):
                        await self._flush()
                    raise
        await self._flush()

    async def _feed(self) -> bool:
        """Ciphertext from the socket into the TLS object; False at end of stream."""
        data = await self._loop.sock_recv(self._sock, _CIPHER_CHUNK)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def _flush(self) -> None:
        async with self._write_lock:
            data = self._outgoing.read()
            if not data:
                return
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                await self._loop.sock_sendall(self._sock, memoryview(data)[sent:])

    async def recv(self, size: int) -> bytes:
        while True:
            try:
                data = self._tls.read(size)
                break
            except ssl.SSLWantReadError:
                if self._outgoing.pending:
                    await self._flush()
                if not await self._feed():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""
        # Decrypt what else has arrived, up to ``size``: fewer, larger reads for the caller.
        chunks = [data]
        have = len(data)
        while have < size:
            try:
                more = self._tls.read(size - have)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not more:
                break
            chunks.append(more)
            have += len(more)
        return data if len(chunks) == 1 else b"".join(chunks)

    async def recv_into(self, view: memoryview) -> int:
        wanted = len(view)
        while True:
            try:
                have = self._read_into(wanted, view)
                break
            except ssl.SSLWantReadError:
                if self._outgoing.pending:
                    await self._flush()
                if not await self._feed():
                    return 0
            except ssl.SSLZeroReturnError:
                return 0
        while have < wanted:
            try:
                more = self._read_into(wanted - have, view[have:])
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not more:
                break
            have += more
        return have

    def _read_into(self, size: int, view: memoryview) -> int:
        # With a buffer, SSLObject.read returns a count (typeshed says bytes).
        return cast(int, self._tls.read(size, view))

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._tls.write(view[:_ENCRYPT_CHUNK])
            view = view[written:]
            await self._flush()

    async def send_file(self, region: FileSlice) -> None:
        position = region.position
        remaining = region.size
        while remaining > 0:
            chunk = os.pread(region.fd, min(remaining, _ENCRYPT_CHUNK), position)
            if not chunk:
                raise ConnectionClosed("file region shrank while sending")
            await self.send(chunk)
            position += len(chunk)
            remaining -= len(chunk)
