"""Record-level access to RecordBatch v2 batches, for the two places storage must look inside.

Appends and reads never decode records; only compaction needs keys, so this module parses the
records of one batch (after gzip decompression; other codecs are reported as unsupported),
rebuilds a batch from a subset of its records, and checks that a compacted topic's records
have keys. Varints are decoded with kio's compiled readers.
"""

from __future__ import annotations

import gzip
import struct
from typing import NamedTuple

from kio.serial.errors import SerialError
from kio.serial.readers import read_signed_varint, read_signed_varlong

from headrace.storage.batch import (
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    crc32c,
)
from headrace.storage.errors import InvalidBatchError

COMPRESSION_MASK = 0x07
COMPRESSION_NONE = 0
COMPRESSION_GZIP = 1
_CRC = struct.Struct(">I")


class UnsupportedCompressionError(Exception):
    """The batch uses a codec this engine cannot decompress (snappy, lz4, zstd)."""


class RecordSpan(NamedTuple):
    """One record: its bytes ``payload[start:end]``, offset delta, key and tombstone flag."""

    start: int
    end: int
    offset_delta: int
    key: bytes | None
    is_tombstone: bool


def compression_of(header: BatchHeader) -> int:
    return header.attributes & COMPRESSION_MASK


def decode_records(
    batch: bytes | memoryview, header: BatchHeader
) -> tuple[bytes, list[RecordSpan]]:
    """The (decompressed) records payload of one whole batch and the span of each record.

    ``batch`` starts at the batch's first byte. Raises UnsupportedCompressionError for codecs
    other than none/gzip and InvalidBatchError for malformed records.
    """
    codec = compression_of(header)
    raw = bytes(batch[HEADER_SIZE : header.size])
    if codec == COMPRESSION_GZIP:
        try:
            payload = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise InvalidBatchError(f"undecompressible gzip batch: {error}") from None
    elif codec == COMPRESSION_NONE:
        payload = raw
    else:
        raise UnsupportedCompressionError(f"compression codec {codec}")
    spans: list[RecordSpan] = []
    position = 0
    try:
        for _ in range(header.record_count):
            length, size = read_signed_varint(payload, position)
            start = position
            body = position + size
            end = body + length
            if length < 1 or end > len(payload):
                raise InvalidBatchError(f"record at byte {start} runs past the batch")
            cursor = body + 1  # attributes
            _, size = read_signed_varlong(payload, cursor)  # timestamp delta
            cursor += size
            offset_delta, size = read_signed_varint(payload, cursor)
            cursor += size
            key_length, size = read_signed_varint(payload, cursor)
            cursor += size
            key: bytes | None = None
            if key_length >= 0:
                key = payload[cursor : cursor + key_length]
                cursor += key_length
            value_length, _ = read_signed_varint(payload, cursor)
            if cursor > end or key_length < -1 or value_length < -1:
                raise InvalidBatchError(f"malformed record at byte {start}")
            spans.append(RecordSpan(start, end, int(offset_delta), key, value_length < 0))
            position = end
    except (SerialError, IndexError) as error:  # kio's readers on a short buffer
        raise InvalidBatchError(f"malformed record: {error}") from None
    return payload, spans


def rebuild_batch(
    batch: bytes, header: BatchHeader, payload: bytes, kept: list[RecordSpan]
) -> bytes:
    """``batch`` holding only the ``kept`` records (same base offset, lastOffsetDelta,
    timestamps and producer fields, so offsets and producer state are unchanged).

    With no record left the batch is empty and uncompressed, as Kafka's cleaner writes it.
    """
    if len(kept) == header.record_count:
        return batch
    attributes = header.attributes
    if kept:
        records = b"".join(payload[span.start : span.end] for span in kept)
        if compression_of(header) == COMPRESSION_GZIP:
            records = gzip.compress(records, mtime=0)
    else:
        records = b""
        attributes &= ~COMPRESSION_MASK
    new = bytearray(
        HEADER.pack(
            header.base_offset,
            HEADER_SIZE - LOG_OVERHEAD + len(records),
            header.leader_epoch,
            header.magic,
            0,
            attributes,
            header.last_offset_delta,
            header.base_timestamp,
            header.max_timestamp,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            len(kept),
        )
    )
    new += records
    _CRC.pack_into(new, 17, crc32c(memoryview(new)[CRC_START:]))
    return bytes(new)


def require_keys(view: memoryview, headers: list[BatchHeader], where: str) -> None:
    """Kafka refuses keyless records on compacted topics (INVALID_RECORD); so do we.

    Control batches carry no user records; batches whose codec we cannot decompress are let
    through (the cleaner keeps them whole).
    """
    for header in headers:
        if header.is_control:
            continue
        batch = view[header.position : header.position + header.size]
        try:
            _, spans = decode_records(batch, header)
        except UnsupportedCompressionError:
            continue
        for span in spans:
            if span.key is None:
                raise InvalidBatchError(
                    f"compacted topic {where} cannot accept a record without a key"
                )
