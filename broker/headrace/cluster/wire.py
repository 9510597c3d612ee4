"""A minimal asyncio Kafka client for broker-to-broker requests (replica Fetch and friends).

Followers talk to leaders with the real Kafka protocol, exactly as Kafka's replica fetcher does,
so the leader side is the ordinary request dispatch. Requests and responses are kio dataclasses;
this module only frames them (request header v1/v2, response header v0/v1) on one connection,
one request in flight at a time, over TLS when the other broker's inter-broker listener is SSL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from typing import Any

from kio.static.primitive import i16, i32

from headrace.protocol.codec import encode_frame, response_schema, schema_reader

_INT32 = struct.Struct(">i")


def encode_request(request: Any, correlation_id: int, client_id: str) -> bytes:
    """A complete request frame (size prefix included) for a kio request dataclass."""
    header_schema = request.__header_schema__  # v2 for flexible versions, v1 before
    header = header_schema(
        request_api_key=i16(int(request.__api_key__)),
        request_api_version=i16(int(request.__version__)),
        correlation_id=i32(correlation_id),
        client_id=client_id,
    )
    return encode_frame((header, request))


def decode_response(frame: bytes, request: Any) -> tuple[int, Any]:
    """``(correlation_id, response)`` from a response frame without its size prefix."""
    schema = response_schema(int(request.__api_key__), int(request.__version__))
    (correlation_id,) = _INT32.unpack_from(frame, 0)
    offset = 4
    if schema.__flexible__:
        # Response header v1: an empty tagged-field section (one zero byte) in practice.
        tagged = frame[offset]
        if tagged != 0:
            raise ValueError("unexpected tagged fields in response header")
        offset += 1
    body, _size = schema_reader(schema)(frame, offset)
    return correlation_id, body


class BrokerConnection:
    """One TCP connection to another broker; requests are sent one at a time."""

    def __init__(self, host: str, port: int, *, client_id: str, timeout: float = 30.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        #: The client context for a TLS listener (None: plaintext).
        self.tls = tls
        self.port = port
        self.client_id = client_id
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation_id = 0
        self._lock = asyncio.Lock()

    async def _ensure_open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                ),
                self.timeout,
            )
            self._reader, self._writer = reader, writer
            return reader, writer
        return self._reader, self._writer

    async def request(self, request: Any) -> Any:
        """Send ``request`` and return the decoded response (raises on I/O errors)."""
        async with self._lock:
            try:
                reader, writer = await self._ensure_open()
                self._correlation_id = (self._correlation_id + 1) & 0x7FFFFFFF
                correlation_id = self._correlation_id
                writer.write(encode_request(request, correlation_id, self.client_id))
                await writer.drain()
                size_bytes = await asyncio.wait_for(reader.readexactly(4), self.timeout)
                (size,) = _INT32.unpack(size_bytes)
                frame = await asyncio.wait_for(reader.readexactly(size), self.timeout)
            except BaseException:
                await self.close()
                raise
            answered_id, response = decode_response(frame, request)
            if answered_id != correlation_id:
                await self.close()
                raise ConnectionError(f"correlation id {answered_id} != {correlation_id}")
            return response

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
