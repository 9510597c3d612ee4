"""Kafka RecordBatch v2 header handling: validation, offset assignment, scanning.

Only the 61-byte batch header is ever parsed; records stay opaque bytes (compressed or not),
so a batch is stored exactly as the producer sent it except for the fields Kafka itself
rewrites on the leader (baseOffset, partitionLeaderEpoch, and for LogAppendTime topics the
attributes/maxTimestamp/CRC).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import crc32c as _crc32c

from headrace.storage.errors import BatchTooLargeError, CorruptBatchError, InvalidBatchError

# baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8, crc u32, attributes i16,
# lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64, producerId i64, producerEpoch i16,
# baseSequence i32, recordCount i32.
HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength precede the length-counted part
CRC_START = 21  # the CRC covers bytes 21..end (attributes onwards)
MAGIC = 2
_PREFIX = struct.Struct(">qiib")  # baseOffset, batchLength, partitionLeaderEpoch, magic
_MAX_TIMESTAMP = struct.Struct(">q")
_ATTRIBUTES = struct.Struct(">h")
ATTR_TIMESTAMP_TYPE = 0x08  # bit 3: LogAppendTime
ATTR_TRANSACTIONAL = 0x10  # bit 4
ATTR_CONTROL = 0x20  # bit 5
INT32_MAX = 2**31 - 1


class BatchHeader(NamedTuple):
    """The decoded header of one batch and where it sits (``position``) in its buffer/file.

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


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC32C of ``data`` (continuing from ``value``), hardware-accelerated.

    The ``crc32c`` package reads any buffer in place; google_crc32c's C extension only takes
    ``bytes``, which cost a copy (and fresh pages) of every produced batch.
    """
    return int(_crc32c.crc32c(data, value))


def increment_sequence(sequence: int, increment: int) -> int:
    """Kafka's sequence arithmetic: sequences wrap from INT32_MAX to 0."""
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def parse_header(buf: bytes | bytearray | memoryview, position: int) -> BatchHeader:
    """Decode the header at ``position``; the caller guarantees 61 bytes are there."""
    return BatchHeader(position, *HEADER.unpack_from(buf, position))


def parse_batches(
    buf: memoryview, *, max_batch_bytes: int | None, leader: bool
) -> list[BatchHeader]:
    """Validate every batch in ``buf`` (framing, magic, CRC, counts) and return the headers.

    Raises InvalidBatchError / CorruptBatchError / BatchTooLargeError for the first bad batch;
    the caller then writes nothing. ``leader`` additionally demands dense batches
    (recordCount == lastOffsetDelta + 1), as producers always send.
    """
    headers: list[BatchHeader] = []
    total = len(buf)
    if total == 0:
        raise InvalidBatchError("no record batches in the request")
    position = 0
    while position < total:
        if total - position < HEADER_SIZE:
            raise InvalidBatchError(f"truncated batch header at byte {position}")
        header = BatchHeader(position, *HEADER.unpack_from(buf, position))
        size = header.batch_length + LOG_OVERHEAD
        end = position + size
        if header.magic != MAGIC:
            raise InvalidBatchError(f"unsupported magic {header.magic} (only v2 batches)")
        if size < HEADER_SIZE:
            raise InvalidBatchError(f"batch length {header.batch_length} is too small")
        if end > total:
            raise InvalidBatchError(
                f"batch at byte {position} claims {size} bytes, only {total - position} sent"
            )
        if max_batch_bytes is not None and size > max_batch_bytes:
            raise BatchTooLargeError(
                f"batch of {size} bytes exceeds max.message.bytes {max_batch_bytes}"
            )
        if crc32c(buf[position + CRC_START : end]) != header.crc:
            raise CorruptBatchError(f"CRC mismatch in batch at byte {position}")
        delta, count = header.last_offset_delta, header.record_count
        if delta < 0 or count < 0:
            raise InvalidBatchError("negative lastOffsetDelta or recordCount")
        if leader and count != delta + 1:
            raise InvalidBatchError(f"record count {count} does not match lastOffsetDelta {delta}")
        if not leader and count > delta + 1:
            raise InvalidBatchError("more records than offsets in batch")
        headers.append(header)
        position = end
    return headers


def rewritten_prefix(header: BatchHeader, base_offset: int, leader_epoch: int) -> bytes:
    """The first 17 bytes of a batch with a new baseOffset and partitionLeaderEpoch.

    Those bytes precede the CRC-covered range, so the CRC stays valid.
    """
    return _PREFIX.pack(base_offset, header.batch_length, leader_epoch, MAGIC)


def log_append_time_header(
    buf: memoryview, header: BatchHeader, base_offset: int, leader_epoch: int, now_ms: int
) -> bytes:
    """The 61-byte header rewritten for LogAppendTime, with its CRC recomputed.

    The records after the header are unchanged; the new CRC extends the header's CRC over them.
    """
    start = header.position
    new = bytearray(buf[start : start + HEADER_SIZE])
    _PREFIX.pack_into(new, 0, base_offset, header.batch_length, leader_epoch, MAGIC)
    _ATTRIBUTES.pack_into(new, 21, header.attributes | ATTR_TIMESTAMP_TYPE)
    _MAX_TIMESTAMP.pack_into(new, 35, now_ms)
    crc = crc32c(memoryview(new)[CRC_START:])
    crc = crc32c(buf[start + HEADER_SIZE : start + header.size], crc)
    struct.pack_into(">I", new, 17, crc)
    return bytes(new)


@dataclass
class ScanOutcome:
    """Where a file scan stopped: ``valid_end`` is the byte after the last good batch."""

    valid_end: int
    problem: str | None = None  # why the scan stopped early (None: reached end of data)


class FileBatchScanner:
    """Iterate the batches of a segment file from ``start``, optionally verifying CRCs.

    Stops at the first torn, malformed or (when verifying) corrupt batch and records why in
    ``outcome``. ``expected_base`` (if given) also demands that offsets only increase.
    """

    _CHUNK = 1 << 20

    def __init__(
        self,
        fd: int,
        file_size: int,
        *,
        start: int = 0,
        verify_crc: bool,
        expected_base: int | None = None,
    ) -> None:
        self._fd = fd
        self._file_size = file_size
        self._start = start
        self._verify = verify_crc
        self._expected = expected_base
        self.outcome = ScanOutcome(valid_end=start)

    def __iter__(self) -> Iterator[BatchHeader]:
        position = self._start
        buffer = b""
        buffer_start = position
        while position < self._file_size:
            remaining = self._file_size - position
            if remaining < HEADER_SIZE:
                self.outcome.problem = f"torn batch header at byte {position}"
                return
            offset_in_buffer = position - buffer_start
            if offset_in_buffer + HEADER_SIZE > len(buffer):
                buffer = os.pread(self._fd, min(self._CHUNK, remaining), position)
                buffer_start = position
                offset_in_buffer = 0
                if len(buffer) < HEADER_SIZE:
                    self.outcome.problem = f"short read at byte {position}"
                    return
            header = BatchHeader(position, *HEADER.unpack_from(buffer, offset_in_buffer))
            problem = self._check(header, remaining)
            if problem is None and self._verify:
                problem = self._check_crc(header, buffer, offset_in_buffer, position)
            if problem is not None:
                self.outcome.problem = f"{problem} at byte {position}"
                return
            position += header.size
            self.outcome.valid_end = position
            if self._expected is not None:
                self._expected = header.next_offset
            yield header

    def _check(self, header: BatchHeader, remaining: int) -> str | None:
        if header.magic != MAGIC:
            return f"bad magic {header.magic}"
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
            return f"bad batch length {header.batch_length}"
        if header.size > remaining:
            return f"torn batch ({header.size} bytes claimed, {remaining} on disk)"
        if header.last_offset_delta < 0:
            return "negative lastOffsetDelta"
        # Offsets must increase; gaps are legal (a compacted segment keeps original offsets).
        if self._expected is not None and header.base_offset < self._expected:
            return f"offset {header.base_offset} where {self._expected} or more was expected"
        return None

    def _check_crc(
        self, header: BatchHeader, buffer: bytes, offset_in_buffer: int, position: int
    ) -> str | None:
        end_in_buffer = offset_in_buffer + header.size
        if end_in_buffer <= len(buffer):
            data = memoryview(buffer)[offset_in_buffer + CRC_START : end_in_buffer]
        else:
            whole = os.pread(self._fd, header.size, position)
            if len(whole) != header.size:
                return "short read"
            data = memoryview(whole)[CRC_START:]
        if crc32c(data) != header.crc:
            return "CRC mismatch"
        return None


def read_header(fd: int, position: int) -> BatchHeader | None:
    """The header of the batch at ``position`` of a file, or None if it is not all there."""
    data = os.pread(fd, HEADER_SIZE, position)
    if len(data) < HEADER_SIZE:
        return None
    return BatchHeader(position, *HEADER.unpack(data))
