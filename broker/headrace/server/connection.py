"""One Kafka connection: one reader and one writer task over its transport.

Frames are read from the connection's :class:`~headrace.server.transport.Transport` (a raw
non-blocking socket, or TLS over one), each request is handled in its own task (so a
pipelined Produce is not stuck behind a long-polling Fetch's decoding), and a writer task sends
responses strictly in request order, batching consecutive ready responses into one ``send``.
On a plaintext transport fetch record bytes go from segment files to the socket with
``os.sendfile`` (works on asyncio's default loop and on uvloop, which lacks ``loop.sendfile``).

Memory follows what a client actually sent, never what it claims: an idle connection holds no
receive buffer (each read allocates what arrived), a frame larger than one read grows its buffer
as its bytes arrive, and every request's claimed size is first taken from the broker-wide
:class:`~headrace.server.limits.RequestBudget` (``queued.max.request.bytes``), which pauses
reading while it is short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any

from headrace.core.requests import Session
from headrace.server.limits import RequestBudget
from headrace.server.pipeline import PRODUCE_KEY, ConnectionClosed, Outgoing, RequestPipeline
from headrace.server.transport import Transport

log = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
_API_KEY = struct.Struct(">h")
_FETCH_KEY = 1
#: Bytes asked of one ``recv``: a fresh heap block per read (below glibc's mmap threshold, so no
#: mmap/munmap per read), released once its frames are copied out; idle connections hold none.
_READ_CHUNK = 64 * 1024
#: Frames up to this size are cut out of read chunks; larger ones get a buffer of their own.
_SMALL_FRAME = _READ_CHUNK
#: A large frame's buffer starts at this size and doubles as bytes arrive (up to the frame).
_FIRST_FRAME_CAPACITY = 256 * 1024
#: Requests decoded ahead of the writer on one connection; beyond this reading pauses.
_MAX_IN_FLIGHT = 64
#: Large-frame receive buffers kept for reuse, for all connections together (see FrameBufferPool).
SPARE_FRAME_BUFFER_BYTES = 32 * 1024 * 1024
#: Frames larger than this get buffers that are never pooled.
_POOLED_FRAME_BYTES = 8 * 1024 * 1024


class FrameBufferPool:
    """Receive buffers of answered large Produce frames, reused by the next large frames.

    A fresh buffer per large produce request costs zeroing plus a page fault per 4 KiB page,
    about a third of the broker's CPU under the produce benchmark. The pool only hands out
    memory it already holds (never allocates from a client's claim); at most
    ``max_spare_bytes`` sit idle, shared by every connection of the broker, and buffers over
    ``max_buffer_bytes`` are never kept.
    """

    def __init__(self, *, max_buffer_bytes: int, max_spare_bytes: int) -> None:
        self._max_buffer_bytes = max_buffer_bytes
        self._max_spare_bytes = max_spare_bytes
        self._spare: list[bytearray] = []
        self._spare_bytes = 0

    @property
    def spare_bytes(self) -> int:
        return self._spare_bytes

    def take(self, size: int) -> bytearray | None:
        """The smallest spare buffer of at least ``size`` bytes (stale contents), or None."""
        best: bytearray | None = None
        for buffer in self._spare:
            if len(buffer) >= size and (best is None or len(buffer) < len(best)):
                best = buffer
        if best is not None:
            self._spare.remove(best)
            self._spare_bytes -= len(best)
        return best

    def give_back(self, buffer: bytearray) -> None:
        """Return a buffer nothing refers to any more (it will be overwritten)."""
        size = len(buffer)
        if size > self._max_buffer_bytes or self._spare_bytes + size > self._max_spare_bytes:
            return
        self._spare.append(buffer)
        self._spare_bytes += size


def frame_capacity(size: int) -> int:
    """The buffer a frame of ``size`` bytes grows to: a power of two while it may be pooled
    (so frames of similar sizes share buffers), else exactly its size."""
    if size > _POOLED_FRAME_BYTES:
        return size
    return max(_FIRST_FRAME_CAPACITY, 1 << (size - 1).bit_length())


def new_frame_buffer_pool() -> FrameBufferPool:
    return FrameBufferPool(
        max_buffer_bytes=_POOLED_FRAME_BYTES, max_spare_bytes=SPARE_FRAME_BUFFER_BYTES
    )


#: A request being handled, with its API key.
Pending = tuple["asyncio.Future[Outgoing | None]", int]


class Connection:
    """One client connection: read frames, handle them concurrently, answer in order."""

    def __init__(
        self,
        pipeline: RequestPipeline,
        transport: Transport,
        session: Session,
        *,
        max_request_bytes: int,
        budget: RequestBudget,
        frame_buffers: FrameBufferPool,
    ) -> None:
        self._pipeline = pipeline
        self._transport = transport
        self._session = session
        self._client_host = session.client_host
        self._max_request_bytes = max_request_bytes
        self._budget = budget
        self._frame_buffers = frame_buffers
        self._loop = asyncio.get_running_loop()
        self._pending: asyncio.Queue[Pending | None] = asyncio.Queue()
        self._writing: Pending | None = None  # the request the writer is waiting on
        self._in_flight = asyncio.Semaphore(_MAX_IN_FLIGHT)
        #: Requests whose handler has not finished yet.
        self._handling = 0
        #: Loop time of the last bytes received or sent (connections.max.idle.ms).
        self.last_active = self._loop.time()
        self._hung_up = False
        #: Loop time until which a quota throttle mutes the connection (KIP-219).
        self._muted_until = 0.0

    @property
    def client_host(self) -> str:
        return self._client_host

    def idle_for(self, now: float) -> float:
        """Seconds without traffic, a request being handled or a throttle running."""
        if self._handling or self._muted_until > now:
            return 0.0  # answering, or throttled by a quota: waiting on us, not idle
        return now - self.last_active

    def close_idle(self, idle_ms: int) -> None:
        """Hang up on an idle client: the reader sees end of stream and the connection ends."""
        if self._hung_up:
            return
        self._hung_up = True
        log.info("closing connection from %s: idle for over connections.max.idle.ms=%d",
                 self._client_host, idle_ms)
        self._transport.shutdown()

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
            self._transport.close()
            observer.on_connection_closed()

    async def _read_loop(self) -> None:
        recv = self._transport.recv
        rest = b""  # the start of a frame not complete yet (at most a small frame)
        try:
            while True:
                await self._unmuted()
                try:
                    chunk = await recv(_READ_CHUNK)
                except (ConnectionError, OSError):
                    return
                if not chunk:
                    return
                self.last_active = self._loop.time()
                data = rest + chunk if rest else chunk
                position, end = 0, len(data)
                while end - position >= 4:
                    (size,) = _SIZE.unpack_from(data, position)
                    # Before SASL completes, Kafka's sasl.server.max.receive.size applies.
                    limit = self._session.max_frame_bytes or self._max_request_bytes
                    if size < 8 or size > limit:
                        # Kafka's InvalidReceiveException: the size prefix alone decides.
                        log.warning(
                            "closing connection from %s: request size %d outside [8, %d] "
                            "(socket.request.max.bytes)",
                            self._client_host, size, limit,
                        )
                        return
                    frame_end = position + 4 + size
                    if frame_end <= end:
                        await self._unmuted()
                        await self._dispatch(data[position + 4 : frame_end])
                        position = frame_end
                        continue
                    if size > _SMALL_FRAME:
                        head = memoryview(data)[position + 4 :]
                        if not await self._receive_large(size, head):
                            return
                        position = end
                    break
                rest = data[position:] if position < end else b""
        finally:
            self._pending.put_nowait(None)

    async def _receive_large(self, size: int, head: memoryview) -> bool:
        """Receive a frame of ``size`` bytes that starts with ``head`` and dispatch it; False
        when the client went away first. Its size is taken from the budget before any more of
        it is read (Kafka mutes the channel the same way), then memory grows with the bytes
        that actually arrive."""
        budget = self._budget
        await budget.take(size)
        dispatched = False
        try:
            buffer = self._frame_buffers.take(size)
            if buffer is None:
                buffer = bytearray(min(frame_capacity(size), _FIRST_FRAME_CAPACITY))
            have = len(head)
            buffer[:have] = head
            head.release()
            recv_into = self._transport.recv_into
            while have < size:
                if have == len(buffer):
                    # Copied rather than resized: views handed to the loop may outlive a recv.
                    grown = bytearray(min(frame_capacity(size), 2 * len(buffer)))
                    grown[:have] = buffer
                    buffer = grown
                try:
                    received = await recv_into(memoryview(buffer)[have : min(size, len(buffer))])
                except (ConnectionError, OSError):
                    return False
                if not received:
                    return False
                self.last_active = self._loop.time()
                have += received
            # kio reads only read-only buffers. Only Produce frames return their buffer to the
            # pool: their records views are used up once the handler returns (storage writes
            # them synchronously); kio copies what it decodes.
            frame = memoryview(buffer)[:size].toreadonly()
            (api_key,) = _API_KEY.unpack_from(frame, 0)
            dispatched = True
            await self._dispatch(frame, buffer if api_key == PRODUCE_KEY else None, charged=size)
            return True
        finally:
            if not dispatched:
                budget.release(size)

    async def _dispatch(
        self, frame: bytes | memoryview, recycle: bytearray | None = None, *, charged: int = 0
    ) -> None:
        """Hand a frame to the pipeline. ``charged``: budget bytes already held for it (a large
        frame's); they are released when the request has been handled, or here on failure."""
        budget = self._budget
        try:
            await self._in_flight.acquire()
            if not charged:
                size = len(frame)
                if budget.try_take(size):
                    charged = size
                elif not self._handling:
                    # The allowance: a connection with nothing being handled may always have
                    # one small request handled, so ApiVersions, Metadata and heartbeats flow
                    # while large requests hold the whole budget (bounded by max.connections
                    # times one read chunk).
                    budget.take_anyway(size)
                    charged = size
                else:
                    await budget.take(size)
                    charged = size
        except BaseException:
            if charged:
                budget.release(charged)
            raise
        self._handling += 1
        future = asyncio.ensure_future(self._pipeline.process(frame, self._session))
        future.add_done_callback(lambda _: self._handled(charged, recycle))
        future.add_done_callback(self._mute_if_throttled)
        (api_key,) = _API_KEY.unpack_from(frame, 0)
        self._pending.put_nowait((future, api_key))

    def _mute_if_throttled(self, future: asyncio.Future[Outgoing | None]) -> None:
        """KIP-219: a throttled response goes out at once, and the connection then reads
        nothing more from the client until the throttle has passed (requests already read
        are still answered)."""
        if future.cancelled() or future.exception() is not None:
            return
        outgoing = future.result()
        if outgoing is not None and outgoing.throttle_ms:
            until = self._loop.time() + outgoing.throttle_ms / 1000
            self._muted_until = max(self._muted_until, until)

    async def _unmuted(self) -> None:
        remaining = self._muted_until - self._loop.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
            await self._unmuted()  # a response throttled meanwhile may have extended it

    def _handled(self, charged: int, recycle: bytearray | None) -> None:
        self._handling -= 1
        self.last_active = self._loop.time()
        self._budget.release(charged)
        if recycle is not None:
            self._frame_buffers.give_back(recycle)

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
                            await self._transport.send_file(part)
                            self.last_active = self._loop.time()
                finally:
                    outgoing.done()
                if outgoing.close_after:
                    await self._send(out)  # e.g. a failed authentication's answer, then hang up
                    return
            # Batch writes: keep collecting while the next response is already done.
            if out and (pending.empty() or not _next_is_ready(pending)):
                await self._send(out)
                out = []

    async def _send(self, parts: list[bytes]) -> None:
        if not parts:
            return
        await self._transport.send(parts[0] if len(parts) == 1 else b"".join(parts))
        self.last_active = self._loop.time()


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
