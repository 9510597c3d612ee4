"""Hand-coded Produce (v3-12) requests and responses: the per-request hot path, without kio.

kio's dataclass writer spends tens of microseconds per small response on type checks; a Produce
answer is a few fixed-width fields per partition, so it is packed here directly. kio's reader
copies each partition's record bytes (often a megabyte) into a new ``bytes``; the hand decoder
here hands them on as a zero-copy ``memoryview`` of the request frame instead, which storage
checks and writes as is. The tests check both directions against kio's own codecs.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from headrace.record.varint import READ_ERRORS, encode_uvarint, read_uvarint

MIN_VERSION = 3
#: v10-12 change no field: v10/11 add optional tagged leader hints (KIP-951, not sent here),
#: v12 marks a transaction version 2 producer (KIP-890 part 2: its writes add partitions).
MAX_VERSION = 12
FLEXIBLE_FROM = 9

_PARTITION = struct.Struct(">ihqq")  # index, error code, base offset, log append time
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")


@dataclass(slots=True)
class ProducePartitionData:
    """One partition of a Produce request; ``records`` is a view into the request frame."""

    index: int
    records: memoryview | None


@dataclass(slots=True)
class ProduceTopicData:
    name: str
    partition_data: list[ProducePartitionData]


@dataclass(slots=True)
class ProduceRequestView:
    """The fields of a ProduceRequest v3-12, named like kio's ``ProduceRequest``."""

    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: list[ProduceTopicData]


class ProduceDecodeError(ValueError):
    """The Produce request body does not parse."""


class _Reader:
    """A cursor over a request frame; every read checks the frame's bounds."""

    __slots__ = ("data", "flexible", "offset")

    def __init__(self, data: memoryview, offset: int, flexible: bool) -> None:
        self.data = data
        self.offset = offset
        self.flexible = flexible

    def take(self, size: int) -> memoryview:
        start = self.offset
        end = start + size
        if size < 0 or end > len(self.data):
            raise ProduceDecodeError(f"{size} bytes at {start} run past the frame")
        self.offset = end
        return self.data[start:end]

    def int16(self) -> int:
        value: int = _I16.unpack(self.take(2))[0]
        return value

    def int32(self) -> int:
        value: int = _I32.unpack(self.take(4))[0]
        return value

    def uvarint(self) -> int:
        try:
            value, size = read_uvarint(self.data, self.offset)
        except READ_ERRORS as error:
            raise ProduceDecodeError(f"bad varint at byte {self.offset}: {error}") from None
        self.offset += size
        return value

    def length(self) -> int:
        """A string/bytes length: -1 for null."""
        if self.flexible:
            return self.uvarint() - 1
        return self.int16()

    def nullable_string(self) -> str | None:
        size = self.length()
        if size < -1:
            raise ProduceDecodeError(f"string length {size}")
        if size == -1:
            return None
        try:
            return str(self.take(size), "utf-8")
        except UnicodeDecodeError as error:
            raise ProduceDecodeError("string is not UTF-8") from error

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise ProduceDecodeError("null where a string is required")
        return value

    def nullable_bytes(self) -> memoryview | None:
        size = self.uvarint() - 1 if self.flexible else self.int32()
        if size < -1:
            raise ProduceDecodeError(f"bytes length {size}")
        return None if size == -1 else self.take(size)

    def array_length(self) -> int:
        count = self.uvarint() - 1 if self.flexible else self.int32()
        if count < 0:  # null arrays are not allowed in Produce requests
            raise ProduceDecodeError(f"array length {count}")
        if count > len(self.data) - self.offset:  # every element takes at least one byte
            raise ProduceDecodeError(f"array of {count} elements cannot fit the frame")
        return count

    def skip_tagged_fields(self) -> None:
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()  # tag
                self.take(self.uvarint())


def decode_produce_request(
    frame: bytes | memoryview, body_offset: int, version: int
) -> ProduceRequestView:
    """Decode a ProduceRequest v3-12 body starting at ``body_offset`` of ``frame``.

    Record bytes are not copied: each partition's ``records`` is a read-only view of ``frame``,
    valid as long as the frame is. Raises :class:`ProduceDecodeError` on malformed input.
    """
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ValueError(f"Produce v{version} is not hand-decoded")
    view = memoryview(frame).toreadonly()
    reader = _Reader(view, body_offset, version >= FLEXIBLE_FROM)
    transactional_id = reader.nullable_string()
    acks = reader.int16()
    timeout_ms = reader.int32()
    topics: list[ProduceTopicData] = []
    for _ in range(reader.array_length()):
        name = reader.string()
        partitions: list[ProducePartitionData] = []
        for _ in range(reader.array_length()):
            index = reader.int32()
            partitions.append(ProducePartitionData(index, reader.nullable_bytes()))
            reader.skip_tagged_fields()
        topics.append(ProduceTopicData(name, partitions))
        reader.skip_tagged_fields()
    reader.skip_tagged_fields()
    # Trailing bytes are ignored, as Kafka does.
    return ProduceRequestView(transactional_id, acks, timeout_ms, topics)


@dataclass(slots=True)
class PartitionResult:
    index: int
    error_code: int
    base_offset: int
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None
    #: v8+: (batch_index: the record's index among the partition's records, its message).
    record_errors: tuple[tuple[int, str], ...] = ()


def _string(value: str, flexible: bool) -> bytes:
    encoded = value.encode()
    if flexible:
        return encode_uvarint(len(encoded) + 1) + encoded
    return _I16.pack(len(encoded)) + encoded


def _nullable_string(value: str | None, flexible: bool) -> bytes:
    if value is None:
        return b"\x00" if flexible else b"\xff\xff"
    return _string(value, flexible)


_NO_RECORD_ERRORS = b"\x00\x00\x00\x00"  # a non-flexible empty array (INT32 count 0)


def encode_produce_body(
    version: int, topics: Sequence[tuple[str, Sequence[PartitionResult]]], throttle_ms: int = 0
) -> bytes:
    """The ProduceResponse body (after the response header) for ``version``."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ValueError(f"Produce v{version} is not hand-framed")
    flexible = version >= FLEXIBLE_FROM
    out = bytearray(encode_uvarint(len(topics) + 1) if flexible else _I32.pack(len(topics)))
    for name, partitions in topics:
        out += _string(name, flexible)
        out += encode_uvarint(len(partitions) + 1) if flexible else _I32.pack(len(partitions))
        for partition in partitions:
            out += _PARTITION.pack(
                partition.index,
                partition.error_code,
                partition.base_offset,
                partition.log_append_time_ms,
            )
            if version >= 5:
                out += _I64.pack(partition.log_start_offset)
            if version >= 8:
                errors = partition.record_errors
                if not errors:  # the usual answer: an empty array
                    out += b"\x01" if flexible else _NO_RECORD_ERRORS
                elif flexible:
                    out += encode_uvarint(len(errors) + 1)
                else:
                    out += _I32.pack(len(errors))
                for batch_index, message in errors:
                    out += _I32.pack(batch_index) + _nullable_string(message, flexible)
                    if flexible:
                        out += b"\x00"
                out += _nullable_string(partition.error_message, flexible)
            if flexible:
                out += b"\x00"
        if flexible:
            out += b"\x00"
    out += _I32.pack(throttle_ms)
    if flexible:
        out += b"\x00"
    return bytes(out)
