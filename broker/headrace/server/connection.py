"""One Kafka connection over a plaintext socket: one reader and one writer task.

Frames are read from a raw non-blocking socket, each request is handled in its own task (so a
pipelined Produce is not stuck behind a long-polling Fetch's decoding), and a writer task sends
responses strictly in request order, batching consecutive ready responses into one ``send``.
Fetch record bytes go from segment files to the socket with ``os.sendfile`` (works on asyncio's
default loop and on uvloop, which lacks ``loop.sendfile``), waiting for writability in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
from typing import Any

from headrace.core.requests import Session
from headrace.protocol.codec import FileSlice
from headrace.server.pipeline import PRODUCE_KEY, ConnectionClosed, Outgoing, RequestPipeline

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
_API_KEY = struct.Struct(">h")
_FETCH_KEY = 1
_READ_CHUNK = 256 * 1024
#: Requests decoded ahead of the writer on one connection; beyond this reading pauses.
_MAX_IN_FLIGHT = 64
#: Request bytes held by one connection's unanswered requests before reading pauses (bounds
#: memory when a client pipelines many large produce requests).
_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
#: Idle large-frame receive buffers kept per connection (see FrameBufferPool).
_SPARE_FRAME_BUFFER_BYTES = 8 * 1024 * 1024



class FrameBufferPool:
    """Receive buffers for frames larger than the read buffer, reused once answered.

    A fresh ``bytearray(size)`` per large produce request costs zeroing plus a page fault per
    4 KiB page, about a third of the broker's CPU under the produce benchmark. Sizes round up to
    a power of two (at least ``min_bytes``) so requests of similar size share buffers; at most
    ``max_spare_bytes`` sit idle, and frames over ``max_buffer_bytes`` are never pooled.
    """

    def __init__(
        self, *, min_bytes: int, max_buffer_bytes: int, max_spare_bytes: int
    ) -> None:
        self._min_bytes = min_bytes
        self._max_buffer_bytes = max_buffer_bytes
        self._max_spare_bytes = max_spare_bytes
        self._spare: list[bytearray] = []
        self._spare_bytes = 0

    @property
    def spare_bytes(self) -> int:
        return self._spare_bytes

    def take(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes (its contents are stale)."""
        best: bytearray | None = None
        for buffer in self._spare:
            if len(buffer) >= size and (best is None or len(buffer) < len(best)):
                best = buffer
        if best is not None:
            self._spare.remove(best)
            self._spare_bytes -= len(best)
            return best
        if size > self._max_buffer_bytes:
            return bytearray(size)
        return bytearray(max(self._min_bytes, 1 << (size - 1).bit_length()))

    def give_back(self, buffer: bytearray) -> None:
        """Return a buffer nothing refers to any more (it will be overwritten)."""
        size = len(buffer)
        if size > self._max_buffer_bytes or self._spare_bytes + size > self._max_spare_bytes:
            return
        self._spare.append(buffer)
        self._spare_bytes += size


#: A request being handled, with its API key.
Pending = tuple["asyncio.Future[Outgoing | None]", int]


class Connection:
    """One client connection: read frames, handle them concurrently, answer in order."""

    def __init__(
        self,
        pipeline: RequestPipeline,
        sock: socket.socket,
        session: Session,
        *,
        max_request_bytes: int,
    ) -> None:
        self._pipeline = pipeline
        self._sock = sock
        self._session = session
        self._client_host = session.client_host
        self._max_request_bytes = max_request_bytes
        self._loop = asyncio.get_running_loop()
        self._pending: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._writing: Pending | None = None  # the request the writer is waiting on
        self._in_flight = asyncio.Semaphore(_MAX_IN_FLIGHT)
        self._in_flight_bytes = 0
        self._bytes_released = asyncio.Event()
        self._frame_buffers = FrameBufferPool(
            min_bytes=2 * _READ_CHUNK,
            max_buffer_bytes=_SPARE_FRAME_BUFFER_BYTES,
            max_spare_bytes=_SPARE_FRAME_BUFFER_BYTES,
        )

    async def run(self) -> None:
        stopping = False  # the broker is shutting down: cancel everything
        observer = self._pipeline.observer
        observer.on_connection_opened()
        reader = asyncio.create_task(self._read_loop())
        writer = asyncio.create_task(self._write_loop())
        try:
            # The reader ends at EOF or on an unreadable frame: like Kafka, drop the connection
            # and its unanswered requests then (a parked long-poll fetch must not keep it open).
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        except asyncio.CancelledError:
            stopping = True
            raise
        except ConnectionClosed as error:
            log.warning("closing connection from %s: %s", self._client_host, error)
        except (ConnectionError, BrokenPipeError):
            pass
        except Exception:
            log.exception("connection from %s failed", self._client_host)
        finally:
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                with contextlib.suppress(BaseException):
                    await task
            # Requests already read still run to completion (a LeaveGroup or a produce must not
            # stop half-way); only parked fetches, which change nothing, are cut short. Their
            # responses are dropped and resources released when they finish.
            leftovers = [self._writing] if self._writing is not None else []
            while not self._pending.empty():
                item = self._pending.get_nowait()
                if item is not None:
                    leftovers.append(item)
            for future, api_key in leftovers:
                if api_key == _FETCH_KEY or stopping:
                    future.cancel()
                future.add_done_callback(_release_dropped)
            self._sock.close()
            observer.on_connection_closed()

    async def _read_loop(self) -> None:
        loop = self._loop
        sock = self._sock
        limit = self._max_request_bytes
        # Small frames are parsed out of one reusable buffer; a frame larger than it is
        # received straight into its own buffer, so big produce requests are copied once.
        buffer = bytearray(_READ_CHUNK)
        view = memoryview(buffer)
        start = end = 0  # unparsed bytes: buffer[start:end]
        try:
            while True:
                try:
                    received = await loop.sock_recv_into(sock, view[end:])
                except (ConnectionError, OSError):
                    return
                if not received:
                    return
                end += received
                while end - start >= 4:
                    (size,) = _SIZE.unpack_from(buffer, start)
                    if size < 8 or size > limit:
                        log.warning(
                            "closing connection from %s: frame size %d outside [8, %d]",
                            self._client_host,
                            size,
                            limit,
                        )
                        return
                    frame_end = start + 4 + size
                    if frame_end <= end:
                        await self._dispatch(bytes(view[start + 4 : frame_end]))
                        start = frame_end
                        continue
                    if 4 + size <= len(buffer):
                        break  # fits once more bytes arrive (after compaction below)
                    large = self._frame_buffers.take(size)
                    have = end - start - 4
                    large[:have] = view[start + 4 : end]
                    start = end = 0
                    large_view = memoryview(large)[:size]
                    while have < size:
                        try:
                            received = await loop.sock_recv_into(sock, large_view[have:])
                        except (ConnectionError, OSError):
                            return
                        if not received:
                            return
                        have += received
                    # kio reads only read-only buffers. Only Produce frames return their buffer
                    # to the pool: their records views are used up once the handler returns
                    # (storage writes them synchronously); kio copies what it decodes.
                    frame = large_view.toreadonly()
                    (api_key,) = _API_KEY.unpack_from(frame, 0)
                    await self._dispatch(frame, large if api_key == PRODUCE_KEY else None)
                if start:
                    remaining = end - start
                    buffer[:remaining] = bytes(view[start:end])
                    start, end = 0, remaining
        finally:
            self._pending.put_nowait(None)

    async def _dispatch(
        self, frame: bytes | memoryview, recycle: bytearray | None = None
    ) -> None:
        await self._in_flight.acquire()
        # One request alone may exceed the byte budget; otherwise wait for answers to drain.
        while self._in_flight_bytes and self._in_flight_bytes + len(frame) > _MAX_IN_FLIGHT_BYTES:
            self._bytes_released.clear()
            await self._bytes_released.wait()
        self._in_flight_bytes += len(frame)
        future = asyncio.ensure_future(self._pipeline.process(frame, self._session))
        future.add_done_callback(lambda _: self._release_bytes(len(frame), recycle))
        (api_key,) = _API_KEY.unpack_from(frame, 0)
        self._pending.put_nowait((future, api_key))

    def _release_bytes(self, size: int, recycle: bytearray | None) -> None:
        self._in_flight_bytes -= size
        if recycle is not None:
            self._frame_buffers.give_back(recycle)
        self._bytes_released.set()

    async def _write_loop(self) -> None:
        pending = self._pending
        out: list[bytes] = []
        while True:
            item = await pending.get()
            if item is None:
                return
            self._writing = item
            try:
                # Shielded: cancelling the writer must not cancel the request's handler.
                outgoing = await asyncio.shield(item[0])
            finally:
                self._in_flight.release()
            self._writing = None
            if outgoing is not None:
                try:
                    for part in outgoing.parts:
                        if isinstance(part, bytes):
                            out.append(part)
                        else:
                            await self._send(out)
                            out = []
                            await self._sendfile(part)
                finally:
                    outgoing.done()
            # Batch writes: keep collecting while the next response is already done.
            if out and (pending.empty() or not _next_is_ready(pending)):
                await self._send(out)
                out = []

    async def _send(self, parts: list[bytes]) -> None:
        if not parts:
            return
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        # Usually the socket takes it all at once: skip the loop's future machinery then.
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            await self._loop.sock_sendall(self._sock, memoryview(data)[sent:])

    async def _sendfile(self, region: FileSlice) -> None:
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


def _release_dropped(future: asyncio.Future[Outgoing | None]) -> None:
    if not future.cancelled() and future.exception() is None:
        outgoing = future.result()
        if outgoing is not None:
            outgoing.done()


def _next_is_ready(pending: asyncio.Queue[Any]) -> bool:
    # asyncio.Queue has no peek; its deque is the documented-by-convention ``_queue``.
    queue = pending._queue  # type: ignore[attr-defined]
    head = queue[0] if queue else None
    return head is None or bool(head[0].done())
