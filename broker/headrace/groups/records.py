"""What the coordinator writes to ``__consumer_offsets``, and how it reads it back. Pure code.

The key/value layout follows Kafka's own internal schemas so the log reads like Kafka's:

* offset commit: key ``(version=1, group, topic, partition)``, value ``OffsetCommitValue`` v3
  ``(offset, leader epoch, metadata, commit timestamp)``;
* group metadata: key ``(version=2, group)``, value ``GroupMetadataValue`` v3 ``(protocol type,
  generation, protocol, leader, state timestamp, members[...])``;
* KIP-848 consumer group: Kafka's ``ConsumerGroupMetadataKey`` ``(version=3, group)``, with
  a value in Headrace's own format (see :mod:`headrace.groups.consumer.snapshot`), kept here
  as opaque bytes;
* a record with a null value is a tombstone: the offset or group is gone.

Records travel in RecordBatch v2 batches built and parsed by :mod:`headrace.record`, so the
storage engine validates them like any producer's batch and replicas copy them verbatim.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from headrace import record

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
CONSUMER_GROUP_KEY_VERSION = 3
OFFSET_VALUE_VERSION = 3
GROUP_VALUE_VERSION = 3

_I16 = struct.Struct(">h")
_ATTR_TRANSACTIONAL = 0x10
_BATCH_HEADER_SIZE = 61
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class RecordFormatError(ValueError):
    """A key or value in ``__consumer_offsets`` does not follow the known schemas."""


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group_id: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupKey:
    group_id: str


@dataclass(frozen=True, slots=True)
class ConsumerGroupValue:
    snapshot: bytes


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


@dataclass(frozen=True, slots=True)
class StoredMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupValue:
    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    state_timestamp_ms: int
    members: tuple[StoredMember, ...]


Key = OffsetKey | GroupKey | ConsumerGroupKey
Value = OffsetValue | GroupValue | ConsumerGroupValue


# ------------------------------------------------------------------------- primitive codec


class _Writer:
    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def i16(self, value: int) -> _Writer:
        self.buffer.write(_I16.pack(value))
        return self

    def i32(self, value: int) -> _Writer:
        self.buffer.write(_I32.pack(value))
        return self

    def i64(self, value: int) -> _Writer:
        self.buffer.write(_I64.pack(value))
        return self

    def string(self, value: str | None) -> _Writer:
        if value is None:
            return self.i16(-1)
        data = value.encode()
        if len(data) > 0x7FFF:
            raise RecordFormatError("string longer than 32767 bytes")
        self.i16(len(data))
        self.buffer.write(data)
        return self

    def bytes_(self, value: bytes) -> _Writer:
        self.i32(len(value))
        self.buffer.write(value)
        return self

    def value(self) -> bytes:
        return self.buffer.getvalue()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, size: int) -> bytes:
        end = self.offset + size
        if size < 0 or end > len(self.data):
            raise RecordFormatError("record field runs past its end")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def i16(self) -> int:
        value: int = _I16.unpack(self._take(2))[0]
        return value

    def i32(self) -> int:
        value: int = _I32.unpack(self._take(4))[0]
        return value

    def i64(self) -> int:
        value: int = _I64.unpack(self._take(8))[0]
        return value

    def nullable_string(self) -> str | None:
        size = self.i16()
        if size == -1:
            return None
        return self._take(size).decode()

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise RecordFormatError("unexpected null string")
        return value

    def bytes_(self) -> bytes:
        size = self.i32()
        return b"" if size == -1 else self._take(size)


# ---------------------------------------------------------------------------- key / value


def encode_key(key: Key) -> bytes:
    if isinstance(key, OffsetKey):
        return (
            _Writer().i16(OFFSET_KEY_VERSION).string(key.group_id).string(key.topic)
            .i32(key.partition).value()
        )
    if isinstance(key, ConsumerGroupKey):
        return _Writer().i16(CONSUMER_GROUP_KEY_VERSION).string(key.group_id).value()
    return _Writer().i16(GROUP_KEY_VERSION).string(key.group_id).value()


def decode_key(data: bytes) -> Key:
    reader = _Reader(data)
    version = reader.i16()
    if version in (0, 1):
        return OffsetKey(reader.string(), reader.string(), reader.i32())
    if version == GROUP_KEY_VERSION:
        return GroupKey(reader.string())
    if version == CONSUMER_GROUP_KEY_VERSION:
        return ConsumerGroupKey(reader.string())
    raise RecordFormatError(f"unknown key version {version}")


def encode_value(value: Value) -> bytes:
    if isinstance(value, OffsetValue):
        return (
            _Writer().i16(OFFSET_VALUE_VERSION).i64(value.offset).i32(value.leader_epoch)
            .string(value.metadata).i64(value.commit_timestamp_ms).value()
        )
    if isinstance(value, ConsumerGroupValue):
        return value.snapshot
    writer = (
        _Writer().i16(GROUP_VALUE_VERSION).string(value.protocol_type).i32(value.generation_id)
        .string(value.protocol_name).string(value.leader_id).i64(value.state_timestamp_ms)
        .i32(len(value.members))
    )
    for member in value.members:
        (
            writer.string(member.member_id).string(member.group_instance_id)
            .string(member.client_id).string(member.client_host)
            .i32(member.rebalance_timeout_ms).i32(member.session_timeout_ms)
            .bytes_(member.subscription).bytes_(member.assignment)
        )
    return writer.value()


def decode_offset_value(data: bytes) -> OffsetValue:
    reader = _Reader(data)
    version = reader.i16()
    if version != OFFSET_VALUE_VERSION:
        raise RecordFormatError(f"unknown offset value version {version}")
    return OffsetValue(reader.i64(), reader.i32(), reader.string(), reader.i64())


def decode_group_value(data: bytes) -> GroupValue:
    reader = _Reader(data)
    version = reader.i16()
    if version != GROUP_VALUE_VERSION:
        raise RecordFormatError(f"unknown group value version {version}")
    protocol_type = reader.string()
    generation_id = reader.i32()
    protocol_name = reader.nullable_string()
    leader_id = reader.nullable_string()
    state_timestamp_ms = reader.i64()
    members = tuple(
        StoredMember(
            member_id=reader.string(),
            group_instance_id=reader.nullable_string(),
            client_id=reader.string(),
            client_host=reader.string(),
            rebalance_timeout_ms=reader.i32(),
            session_timeout_ms=reader.i32(),
            subscription=reader.bytes_(),
            assignment=reader.bytes_(),
        )
        for _ in range(reader.i32())
    )
    return GroupValue(
        protocol_type, generation_id, protocol_name, leader_id, state_timestamp_ms, members
    )


# --------------------------------------------------------------------------------- batches


def build_batch(entries: list[tuple[Key, Value | None]], timestamp_ms: int) -> bytes:
    """One RecordBatch v2 (base offset 0; the log assigns real offsets) holding all entries."""
    if not entries:
        raise ValueError("a batch needs at least one record")
    return record.build_batch(
        (timestamp_ms, encode_key(key), None if value is None else encode_value(value), ())
        for key, value in entries
    )


def transactional_batch(batch: bytes, producer_id: int, producer_epoch: int) -> bytes:
    """``batch`` as a transactional producer's (TxnOffsetCommit): the records stay pending
    until that producer's COMMIT marker reaches the partition."""
    header = record.parse_header(batch)
    return record.pack_batch(
        batch[_BATCH_HEADER_SIZE:], header.record_count, header.last_offset_delta,
        header.base_timestamp, header.max_timestamp,
        attributes=header.attributes | _ATTR_TRANSACTIONAL,
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=-1,
    )


@dataclass(frozen=True, slots=True)
class LoggedEntry:
    """One decoded record; ``value`` None is a tombstone. ``producer_id`` is set (>= 0) for
    a transactional offset commit, which counts only once its COMMIT marker follows."""

    offset: int
    key: Key
    value: Value | None
    producer_id: int = -1


@dataclass(frozen=True, slots=True)
class LoggedMarker:
    """A transaction marker: ``producer_id``'s pending offsets are committed or dropped."""

    offset: int
    producer_id: int
    commit: bool


SkipHandler = Callable[[int, Exception], None]


def _reraise(_offset: int, error: Exception) -> None:
    raise error


def parse_batches(
    data: bytes, on_skip: SkipHandler = _reraise
) -> Iterator[LoggedEntry | LoggedMarker]:
    """Decode a run of whole batches (as a log read returns them), in log order.

    A batch that fails its CRC or does not decode, or a record whose key or value this
    version cannot read, is passed to ``on_skip(offset, error)``; by default that raises, a
    loader may log and go on.
    """
    for header, batch in record.whole_batches(data):
        try:
            record.check_crc(batch, header)
            logged = list(record.batch_records(batch, header))
        except record.RecordError as error:
            on_skip(header.base_offset, error)
            continue
        if header.is_control:  # a transaction marker: the only state it carries is its type
            for control in logged[:1]:
                kind = control.key or b""
                if len(kind) >= 4 and kind[2:4] in (b"\x00\x00", b"\x00\x01"):
                    yield LoggedMarker(header.base_offset, header.producer_id, kind[3] == 1)
            continue
        transactional = header.producer_id if header.attributes & _ATTR_TRANSACTIONAL else -1
        for entry in logged:
            if entry.key is None:
                continue
            try:
                key = decode_key(entry.key)
                value: Value | None
                if entry.value is None:
                    value = None
                elif isinstance(key, OffsetKey):
                    value = decode_offset_value(entry.value)
                elif isinstance(key, ConsumerGroupKey):
                    value = ConsumerGroupValue(bytes(entry.value))
                else:
                    value = decode_group_value(entry.value)
            except (RecordFormatError, UnicodeDecodeError) as error:
                on_skip(entry.offset, error)
                continue
            yield LoggedEntry(entry.offset, key, value, transactional)

