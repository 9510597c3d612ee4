"""Reading RecordBatch v2 bytes: validating batches, walking records, decoding them.

Three depths, each for the readers that need it:

* :func:`parse_batches` checks every batch of a buffer (framing, magic, CRC, counts) and
  returns the headers only: what a log needs to append a producer's or a leader's batches,
  which it stores without opening them;
* :func:`record_spans` locates each record of one batch (bytes, offset delta, key, tombstone)
  without copying values: what compaction needs to keep some records byte for byte, and to
  check that a compacted topic's records have keys;
* :func:`iter_records` / :func:`batch_records` decode records with their values and headers,
  in aiokafka's C decoder (a pure-Python one is about seven times slower): what the HTTP
  stream and the group coordinator's loading need.

Compressed records are decompressed by :mod:`.compression` in every case.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import crc32c as _crc32c
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch

from headrace.record.compression import (
    CODEC_MASK,
    CODEC_NAMES,
    MAX_INFLATED_BATCH_BYTES,
    NONE,
    SUPPORTED,
    codec_of,
    decompress,
)
from headrace.record.errors import CorruptBatchError, MalformedBatchError, OversizedBatchError
from headrace.record.layout import (
    ATTRIBUTES_AT,
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MAGIC_AT,
    BatchHeader,
    crc32c,
)
from headrace.record.varint import READ_ERRORS, read_varint, read_varlong

Buffer = bytes | bytearray | memoryview
_BATCH_LENGTH = struct.Struct(">i")
#: :func:`~.layout.crc32c` without its wrapper call (the crc32c package, hardware-accelerated).
_crc32c_of = _crc32c.crc32c


def parse_batches(
    buf: memoryview, *, max_batch_bytes: int | None, dense: bool
) -> list[BatchHeader]:
    """Validate every batch in ``buf`` (framing, magic, CRC, counts) and return the headers.

    Raises MalformedBatchError / CorruptBatchError / OversizedBatchError for the first bad
    batch. ``dense`` additionally demands recordCount == lastOffsetDelta + 1, as producers
    always send (a compacted leader's batches, which followers copy, may hold fewer records).
    """
    headers: list[BatchHeader] = []
    total = len(buf)
    if total == 0:
        raise MalformedBatchError("no record batches in the request")
    # Runs for every produced partition: fields are checked as unpacked locals, and the
    # header tuple is built once they pass (each step here costs the small-request path).
    unpack, checksum = HEADER.unpack_from, _crc32c_of
    position = 0
    while position < total:
        if total - position > MAGIC_AT and buf[position + MAGIC_AT] != MAGIC:
            # Legacy message sets (magic 0 and 1) carry their magic at the same byte.
            raise MalformedBatchError(
                f"unsupported magic {buf[position + MAGIC_AT]} (only v2 batches)"
            )
        if total - position < HEADER_SIZE:
            raise MalformedBatchError(f"truncated batch header at byte {position}")
        fields = unpack(buf, position)
        size = fields[1] + LOG_OVERHEAD
        end = position + size
        if size < HEADER_SIZE:
            raise MalformedBatchError(f"batch length {fields[1]} is too small")
        if end > total:
            raise MalformedBatchError(
                f"batch at byte {position} claims {size} bytes, only {total - position} sent"
            )
        codec = fields[5] & CODEC_MASK
        if codec not in CODEC_NAMES:
            raise MalformedBatchError(
                f"unknown compression codec {codec} in batch at byte {position}")
        if max_batch_bytes is not None and size > max_batch_bytes:
            raise OversizedBatchError(
                f"batch of {size} bytes exceeds max.message.bytes {max_batch_bytes}"
            )
        if checksum(buf[position + CRC_START : end]) != fields[4]:
            raise CorruptBatchError(f"CRC mismatch in batch at byte {position}")
        delta, count = fields[6], fields[12]
        if delta < 0 or count < 0:
            raise MalformedBatchError("negative lastOffsetDelta or recordCount")
        if dense and count != delta + 1:
            raise MalformedBatchError(
                f"record count {count} does not match lastOffsetDelta {delta}"
            )
        if not dense and count > delta + 1:
            raise MalformedBatchError("more records than offsets in batch")
        headers.append(BatchHeader(position, *fields))
        position = end
    return headers


def whole_batches(data: Buffer) -> Iterator[tuple[BatchHeader, memoryview]]:
    """The header and bytes of each whole batch in ``data``, in order, as a log read returns
    them: the last one may be cut short by the read's byte limit, and is left out.

    Nothing but the framing is checked (see :func:`check_crc` and :func:`batch_records`).
    """
    view = memoryview(data)
    total = len(view)
    position = 0
    while total - position >= LOG_OVERHEAD:
        (batch_length,) = _BATCH_LENGTH.unpack_from(view, position + 8)
        if batch_length < HEADER_SIZE - LOG_OVERHEAD:
            raise MalformedBatchError(
                f"batch length {batch_length} at byte {position} is too small"
            )
        end = position + LOG_OVERHEAD + batch_length
        if end > total:
            return
        yield BatchHeader(position, *HEADER.unpack_from(view, position)), view[position:end]
        position = end


#: Plain batches are cheap to walk up to this size (a default ``max.message.bytes`` batch takes
#: about 2 ms); compressed ones up to :data:`COSTLY_COMPRESSED_BYTES`, since a few KiB may
#: inflate a thousandfold.
COSTLY_PLAIN_BYTES = 1024 * 1024
COSTLY_COMPRESSED_BYTES = 4096
_INFLATED = SUPPORTED - {NONE}  # the codecs whose records this package opens by inflating
_I16 = struct.Struct(">h")


def costly_to_open(data: Buffer) -> bool:
    """Whether opening the records of these batches may take long enough to stall an event
    loop (plain ones over :data:`COSTLY_PLAIN_BYTES` in all, or any compressed one over
    :data:`COSTLY_COMPRESSED_BYTES`), so the caller does it in a worker thread. Only lengths
    and attributes are read: bytes that do not frame are left to the (then quick) reader."""
    if (data.nbytes if isinstance(data, memoryview) else len(data)) <= COSTLY_COMPRESSED_BYTES:
        return False  # no batch in so few bytes can be costly: small requests stop here
    view = memoryview(data).cast("B")
    total = len(view)
    if total > COSTLY_PLAIN_BYTES:
        return True
    position = 0
    while total - position >= HEADER_SIZE:
        size = _BATCH_LENGTH.unpack_from(view, position + 8)[0] + LOG_OVERHEAD
        attributes = _I16.unpack_from(view, position + ATTRIBUTES_AT)[0]
        if codec_of(attributes) in _INFLATED and size > COSTLY_COMPRESSED_BYTES:
            return True
        if size < HEADER_SIZE:
            return False
        position += size
    return False


def batches_end(data: Buffer) -> int:
    """Bytes of ``data`` covered by whole batches (where a follow-up read must resume)."""
    end = 0
    for header, _ in whole_batches(data):
        end = header.position + header.size
    return end


def check_crc(batch: Buffer, header: BatchHeader) -> None:
    """Raise CorruptBatchError unless the whole ``batch`` matches its header's CRC."""
    if crc32c(memoryview(batch)[CRC_START : header.size]) != header.crc:
        raise CorruptBatchError(f"CRC mismatch in batch at offset {header.base_offset}")


# -- records of one batch, located for rewriting -------------------------------------------


class RecordSpan(NamedTuple):
    """One record: its bytes ``payload[start:end]``, offset delta, key and tombstone flag."""

    start: int
    end: int
    offset_delta: int
    key: bytes | None
    is_tombstone: bool


def records_payload(batch: Buffer, header: BatchHeader) -> bytearray:
    """The records section of one whole batch, decompressed (within the bound of
    :mod:`.compression`: InflationLimitError past it)."""
    return decompress(codec_of(header.attributes), memoryview(batch)[HEADER_SIZE : header.size])


def plain_batch_of(batch: Buffer, header: BatchHeader, limit: int = MAX_INFLATED_BATCH_BYTES
                   ) -> Buffer:
    """The whole batch with its records uncompressed: itself when they are not compressed,
    else a copy (its CRC left stale: decoders here do not check it) inflated within ``limit``.
    """
    codec = codec_of(header.attributes)
    if codec == NONE:
        return batch
    plain = decompress(codec, memoryview(batch)[HEADER_SIZE : header.size], limit,
                       reserve=HEADER_SIZE)
    HEADER.pack_into(
        plain, 0, header.base_offset, len(plain) - LOG_OVERHEAD, header.leader_epoch,
        header.magic, header.crc, header.attributes & ~CODEC_MASK, header.last_offset_delta,
        header.base_timestamp, header.max_timestamp, header.producer_id, header.producer_epoch,
        header.base_sequence, header.record_count,
    )
    return plain


def record_spans(batch: Buffer, header: BatchHeader) -> tuple[bytearray, list[RecordSpan]]:
    """The (decompressed) records payload of one whole batch and the span of each record.

    ``batch`` starts at the batch's first byte. Raises UnsupportedCompressionError for a codec
    :mod:`.compression` does not handle and MalformedBatchError for malformed records.
    """
    payload = records_payload(batch, header)
    view = memoryview(payload).toreadonly()  # kio's readers take read-only buffers
    spans: list[RecordSpan] = []
    position = 0
    size = len(payload)
    try:
        for _ in range(header.record_count):
            length, width = read_varint(view, position)
            start = position
            body = position + width
            end = body + length
            if length < 1 or end > size:
                raise MalformedBatchError(f"record at byte {start} runs past the batch")
            cursor = body + 1  # attributes
            _, width = read_varlong(view, cursor)  # timestamp delta
            cursor += width
            offset_delta, width = read_varint(view, cursor)
            cursor += width
            key_length, width = read_varint(view, cursor)
            cursor += width
            key: bytes | None = None
            if key_length >= 0:
                key = bytes(view[cursor : cursor + key_length])
                cursor += key_length
            value_length, _ = read_varint(view, cursor)
            if cursor > end or key_length < -1 or value_length < -1:
                raise MalformedBatchError(f"malformed record at byte {start}")
            spans.append(RecordSpan(start, end, int(offset_delta), key, value_length < 0))
            position = end
    except READ_ERRORS as error:  # a varint cut short or too long
        raise MalformedBatchError(f"malformed record: {error}") from None
    return payload, spans


# -- records of one batch, decoded ---------------------------------------------------------


class Record(NamedTuple):
    """A record as a consumer sees it: absolute offset and timestamp, key, value, headers."""

    offset: int
    timestamp_ms: int
    #: 0 CreateTime (the producer's), 1 LogAppendTime (the broker's, the batch's max timestamp).
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def batch_records(batch: Buffer, header: BatchHeader) -> Iterator[Record]:
    """The records of one whole batch, decoded (the CRC is not checked: :func:`check_crc`).

    Raises MalformedBatchError for a batch that is not v2 or whose records do not decode, and
    UnsupportedCompressionError for a codec :mod:`.compression` does not handle.
    """
    if header.magic != MAGIC:
        raise MalformedBatchError(f"unsupported magic {header.magic} (only v2 batches)")
    # Decompressed here (bounded), so aiokafka's decoder, which would inflate without bound,
    # only ever sees plain batches.
    batch = plain_batch_of(batch, header)
    try:
        decoded = DefaultRecordBatch(batch)
        timestamp_type = decoded.timestamp_type
        for record in decoded:
            yield Record(record.offset, record.timestamp, timestamp_type, record.key,
                         record.value, tuple(record.headers))
    except CorruptRecordException as error:
        raise MalformedBatchError(
            f"malformed records in batch at offset {header.base_offset}: {error}"
        ) from None


def iter_records(data: Buffer, start_offset: int = 0) -> Iterator[Record]:
    """Records at or after ``start_offset`` in the whole batches of ``data`` (a log read),
    control batches skipped.

    A read returns whole batches, so the first batch can start before ``start_offset`` and the
    last one can be cut short by the byte limit (it is left out).
    """
    for header, batch in whole_batches(data):
        if header.is_control:
            continue
        for record in batch_records(batch, header):
            if record.offset >= start_offset:
                yield record
