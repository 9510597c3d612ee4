"""A tiny Kafka wire client for tests: kio-encoded requests over a real socket.

It speaks exactly what a client would (request header v1/v2, response header v0/v1) so server
tests exercise the real framing, and also lets a test send raw, broken bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import struct
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32

SECONDS = datetime.timedelta(seconds=1)


def build_batch(
    values: list[bytes],
    *,
    key: bytes | None = b"k",
    timestamp: int = 1_700_000_000_000,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """A real uncompressed RecordBatch v2 (aiokafka's builder, as a client would make it)."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=producer_id,
        producer_epoch=producer_epoch, base_sequence=base_sequence, batch_size=1 << 30,
    )
    for offset, value in enumerate(values):
        builder.append(offset, timestamp=timestamp + offset, key=key, value=value, headers=[])
    return bytes(builder.build())


class WireClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._correlation = 0

    @classmethod
    async def connect(cls, port: int) -> WireClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    def send(self, api_key: int, version: int, **fields: Any) -> int:
        """Encode and write one request; returns its correlation id."""
        schema = load_request_schema(api_key, version)
        body = schema(**fields)
        self._correlation += 1
        header_cls = schema.__header_schema__
        header = header_cls(
            request_api_key=i16(api_key), request_api_version=i16(version),
            correlation_id=i32(self._correlation), client_id="wire-test",
        )
        buffer = io.BytesIO()
        entity_writer(header_cls)(buffer, header)
        entity_writer(schema)(buffer, body)
        payload = buffer.getvalue()
        self.writer.write(struct.pack(">i", len(payload)) + payload)
        return self._correlation

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def receive(
        self, api_key: int, version: int, wait_seconds: float = 10
    ) -> tuple[int, Any]:
        """Read one response frame: (correlation id, decoded kio response)."""
        size_bytes = await asyncio.wait_for(self.reader.readexactly(4), wait_seconds)
        (size,) = struct.unpack(">i", size_bytes)
        frame = await asyncio.wait_for(self.reader.readexactly(size), wait_seconds)
        (correlation,) = struct.unpack_from(">i", frame)
        schema = load_response_schema(api_key, version)
        offset = 4
        if schema.__flexible__ and api_key != 18:
            assert frame[4] == 0, "response header v1 tagged fields"
            offset = 5
        response, used = entity_reader(schema)(frame, offset)
        assert offset + used == len(frame), "response has trailing bytes"
        return correlation, response

    async def request(
        self, api_key: int, version: int, wait_seconds: float = 10, **fields: Any
    ) -> Any:
        correlation = self.send(api_key, version, **fields)
        received, response = await self.receive(api_key, version, wait_seconds)
        assert received == correlation
        return response

    async def is_closed_by_peer(self, wait_seconds: float = 10) -> bool:
        data = await asyncio.wait_for(self.reader.read(1), wait_seconds)
        return data == b""
