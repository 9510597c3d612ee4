"""The RecordBatch v2 (magic 2) header: its fields, where they sit, and its CRC32C.

A batch is a 61-byte header followed by its records (compressed or not)::

    baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
    attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
    producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...

``batchLength`` counts the bytes after itself, so a batch occupies ``batchLength + 12``. The
CRC covers everything from ``attributes`` to the end: the 17 bytes before it (base offset,
length, leader epoch, magic) can be rewritten by a leader without touching the CRC.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import crc32c as _crc32c

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
#: baseOffset and batchLength precede the length-counted part of a batch.
LOG_OVERHEAD = 12
MAGIC = 2

# Where each header field starts.
BASE_OFFSET_AT = 0
BATCH_LENGTH_AT = 8
LEADER_EPOCH_AT = 12
MAGIC_AT = 16
CRC_AT = 17
ATTRIBUTES_AT = 21
LAST_OFFSET_DELTA_AT = 23
BASE_TIMESTAMP_AT = 27
MAX_TIMESTAMP_AT = 35
PRODUCER_ID_AT = 43
PRODUCER_EPOCH_AT = 51
BASE_SEQUENCE_AT = 53
RECORD_COUNT_AT = 57
#: The CRC covers the batch from here (attributes onwards) to its end.
CRC_START = ATTRIBUTES_AT
#: The bytes before the CRC: base offset, batch length, leader epoch, magic.
PREFIX_SIZE = CRC_AT

# Attribute bits (the compression codec is bits 0-2, see compression.py).
ATTR_TIMESTAMP_TYPE = 0x08  # bit 3: LogAppendTime
ATTR_TRANSACTIONAL = 0x10  # bit 4
ATTR_CONTROL = 0x20  # bit 5

INT32_MAX = 2**31 - 1
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_LEADER_EPOCH = -1

_PREFIX = struct.Struct(">qiib")
_CRC = struct.Struct(">I")
_I16 = struct.Struct(">h")
_I64 = struct.Struct(">q")


class BatchHeader(NamedTuple):
    """The decoded header of one batch and where it sits (``position``) in its buffer or file.

    A NamedTuple because appends build one per batch and tuples are the cheapest to build.
    """

    position: int
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, including the 12-byte log overhead."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def last_sequence(self) -> int:
        return increment_sequence(self.base_sequence, self.last_offset_delta)


def parse_header(buf: bytes | bytearray | memoryview, position: int = 0) -> BatchHeader:
    """Decode the header at ``position``; the caller guarantees 61 bytes are there."""
    return BatchHeader(position, *HEADER.unpack_from(buf, position))


def increment_sequence(sequence: int, increment: int) -> int:
    """Kafka's sequence arithmetic: sequences wrap from INT32_MAX to 0."""
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC32C of ``data`` (continuing from ``value``), hardware-accelerated.

    The ``crc32c`` package reads any buffer in place; google_crc32c's C extension only takes
    ``bytes``, which cost a copy (and fresh pages) of every produced batch.
    """
    return int(_crc32c.crc32c(data, value))


def batch_crc(batch: bytes | bytearray | memoryview) -> int:
    """The CRC a whole batch (starting at its first byte) should carry."""
    return crc32c(memoryview(batch)[CRC_START:])


def seal(batch: bytearray) -> bytearray:
    """Write the CRC of a whole batch into its header (after its other fields are final)."""
    _CRC.pack_into(batch, CRC_AT, batch_crc(batch))
    return batch


def pack_batch(
    records: bytes | bytearray | memoryview,
    record_count: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    *,
    attributes: int = 0,
    base_offset: int = 0,
    leader_epoch: int = NO_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> bytes:
    """A whole batch: the header of these fields, with its CRC, then ``records`` (the records
    section as stored: already compressed if ``attributes`` names a codec). The fields every
    batch sets may be given by position (the HTTP API's plain batches save a keyword call)."""
    fields = [
        base_offset, HEADER_SIZE - LOG_OVERHEAD + len(records), leader_epoch, MAGIC, 0,
        attributes, last_offset_delta, base_timestamp, max_timestamp, producer_id,
        producer_epoch, base_sequence, record_count,
    ]
    fields[4] = crc32c(records, crc32c(HEADER.pack(*fields)[CRC_START:]))
    return HEADER.pack(*fields) + records


def rewritten_prefix(header: BatchHeader, base_offset: int, leader_epoch: int) -> bytes:
    """The first 17 bytes of a batch with a new baseOffset and partitionLeaderEpoch.

    Those bytes precede the CRC-covered range, so the CRC stays valid.
    """
    return _PREFIX.pack(base_offset, header.batch_length, leader_epoch, MAGIC)


def log_append_time_header(
    buf: bytes | bytearray | memoryview,
    header: BatchHeader,
    base_offset: int,
    leader_epoch: int,
    now_ms: int,
) -> bytes:
    """The 61-byte header rewritten for LogAppendTime (the broker's ``now_ms`` as the max
    timestamp), with its CRC recomputed."""
    return restamped_header(
        buf, header, base_offset, leader_epoch,
        attributes=header.attributes | ATTR_TIMESTAMP_TYPE, max_timestamp=now_ms,
    )


def restamped_header(
    buf: bytes | bytearray | memoryview,
    header: BatchHeader,
    base_offset: int,
    leader_epoch: int,
    *,
    attributes: int,
    max_timestamp: int,
) -> bytes:
    """The 61-byte header with new offsets, attributes and max timestamp, its CRC recomputed
    (as Kafka's LogValidator sets a batch's max timestamp to its records' largest).

    The records after the header are unchanged; the new CRC extends the header's CRC over them.
    """
    start = header.position
    new = bytearray(buf[start : start + HEADER_SIZE])
    _PREFIX.pack_into(new, 0, base_offset, header.batch_length, leader_epoch, MAGIC)
    _I16.pack_into(new, ATTRIBUTES_AT, attributes)
    _I64.pack_into(new, MAX_TIMESTAMP_AT, max_timestamp)
    crc = crc32c(memoryview(new)[CRC_START:])
    crc = crc32c(memoryview(buf)[start + HEADER_SIZE : start + header.size], crc)
    _CRC.pack_into(new, CRC_AT, crc)
    return bytes(new)
