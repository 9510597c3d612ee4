"""What the transaction coordinator writes to ``__transaction_state``, and reads back. Pure.

Kafka's own layouts (``TransactionLogKey`` v0 and ``TransactionLogValue`` v0, non-flexible),
written by hand because kio carries only the wire APIs, not the internal log schemas:

* key: ``version int16 = 0, transactional_id string``;
* value: ``version int16 = 0, producer_id int64, producer_epoch int16, timeout_ms int32,
  status int8, partitions [topic string, partition ids [int32]], last_update_ms int64,
  start_ms int64``; a null value is a tombstone (the id expired);
* value v1 (flexible, Kafka 4.x, written only for transaction version 2 state): the same fields
  with compact strings and arrays, then tagged fields of which these are written:
  ``NextProducerId`` (tag 1, int64, default -1) and ``ClientTransactionVersion`` (tag 2, int16,
  default 0); other tags are skipped on reading.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from headrace import record
from headrace.record.varint import decode_uvarint, encode_uvarint
from headrace.transactions.model import NO_PRODUCER_ID, TxnMetadata, TxnState

TRANSACTION_TOPIC = "__transaction_state"

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_VALUE_HEAD = struct.Struct(">hqhib")
_VALUE_TAIL = struct.Struct(">qq")
_I64 = struct.Struct(">q")
_NEXT_PRODUCER_ID_TAG = 1
_CLIENT_VERSION_TAG = 2


class TxnRecordError(ValueError):
    """A key or value in ``__transaction_state`` this version cannot read."""


def _string(value: str) -> bytes:
    data = value.encode()
    return _I16.pack(len(data)) + data


def encode_key(transactional_id: str) -> bytes:
    return _I16.pack(0) + _string(transactional_id)


def decode_key(data: bytes) -> str:
    try:
        (version,) = _I16.unpack_from(data, 0)
        if version != 0:
            raise TxnRecordError(f"unknown transaction key version {version}")
        (length,) = _I16.unpack_from(data, 2)
        return data[4 : 4 + length].decode()
    except (struct.error, UnicodeDecodeError) as error:
        raise TxnRecordError(str(error)) from error


def encode_value(metadata: TxnMetadata) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(metadata.partitions):
        by_topic.setdefault(topic, []).append(partition)
    tags: list[tuple[int, bytes]] = []
    if metadata.next_producer_id != NO_PRODUCER_ID:
        tags.append((_NEXT_PRODUCER_ID_TAG, _I64.pack(metadata.next_producer_id)))
    if metadata.client_version != 0:
        tags.append((_CLIENT_VERSION_TAG, _I16.pack(metadata.client_version)))
    flexible = bool(tags)

    def count(n: int) -> bytes:
        return encode_uvarint(n + 1) if flexible else _I32.pack(n)

    def text(value: str) -> bytes:
        data = value.encode()
        return encode_uvarint(len(data) + 1) + data if flexible else _string(value)

    parts = [
        _VALUE_HEAD.pack(1 if flexible else 0, metadata.producer_id, metadata.producer_epoch,
                         metadata.timeout_ms, int(metadata.state)),
        count(len(by_topic)),
    ]
    for topic, partitions in by_topic.items():
        parts.append(text(topic))
        parts.append(count(len(partitions)))
        parts.extend(_I32.pack(p) for p in partitions)
        if flexible:
            parts.append(b"\x00")
    parts.append(_VALUE_TAIL.pack(metadata.last_update_ms, metadata.start_ms))
    if flexible:
        parts.append(encode_uvarint(len(tags)))
        for tag, data in tags:
            parts.append(encode_uvarint(tag) + encode_uvarint(len(data)) + data)
    return b"".join(parts)


class _ValueReader:
    """A cursor over a value of either version (v1: compact lengths, tagged fields)."""

    def __init__(self, data: bytes, flexible: bool) -> None:
        self.data, self.flexible, self.position = data, flexible, _VALUE_HEAD.size

    def fixed(self, layout: struct.Struct) -> tuple[int, ...]:
        values = layout.unpack_from(self.data, self.position)
        self.position += layout.size
        return values

    def uvarint(self) -> int:
        value, self.position = decode_uvarint(self.data, self.position)
        return value

    def count(self) -> int:
        return self.uvarint() - 1 if self.flexible else self.fixed(_I32)[0]

    def text(self) -> str:
        length = self.uvarint() - 1 if self.flexible else self.fixed(_I16)[0]
        if length < 0 or self.position + length > len(self.data):
            raise TxnRecordError("string out of bounds")
        value = self.data[self.position : self.position + length].decode()
        self.position += length
        return value

    def tags(self) -> dict[int, bytes]:
        found = {}
        for _ in range(self.uvarint() if self.flexible else 0):
            tag, size = self.uvarint(), self.uvarint()
            found[tag] = self.data[self.position : self.position + size]
            self.position += size
        return found


def decode_value(transactional_id: str, data: bytes) -> TxnMetadata:
    try:
        version, producer_id, epoch, timeout_ms, status = _VALUE_HEAD.unpack_from(data, 0)
        if version not in (0, 1):
            raise TxnRecordError(f"unknown transaction value version {version}")
        reader = _ValueReader(data, version == 1)
        partitions: set[tuple[str, int]] = set()
        for _ in range(max(reader.count(), 0)):
            topic = reader.text()
            for _ in range(max(reader.count(), 0)):
                partitions.add((topic, reader.fixed(_I32)[0]))
            reader.tags()
        last_update_ms, start_ms = reader.fixed(_VALUE_TAIL)
        tags = reader.tags()
        next_id = tags.get(_NEXT_PRODUCER_ID_TAG)
        client_version = tags.get(_CLIENT_VERSION_TAG)
        return TxnMetadata(
            transactional_id, producer_id, epoch, timeout_ms, TxnState(status),
            frozenset(partitions), start_ms, last_update_ms,
            next_producer_id=_I64.unpack(next_id)[0] if next_id else NO_PRODUCER_ID,
            client_version=_I16.unpack(client_version)[0] if client_version else 0,
        )
    except (struct.error, UnicodeDecodeError, ValueError, record.RecordError) as error:
        if isinstance(error, TxnRecordError):
            raise
        raise TxnRecordError(str(error)) from error


def build_batch(entries: list[tuple[str, TxnMetadata | None]], timestamp_ms: int) -> bytes:
    return record.build_batch(
        (timestamp_ms, encode_key(txn_id), None if value is None else encode_value(value), ())
        for txn_id, value in entries
    )


@dataclass(frozen=True, slots=True)
class LoggedTxn:
    offset: int
    transactional_id: str
    metadata: TxnMetadata | None


def parse_batches(data: bytes) -> Iterator[LoggedTxn | TxnRecordError]:
    """The records of a run of whole batches in log order; unreadable ones as errors."""
    for header, batch in record.whole_batches(data):
        if header.is_control:
            continue
        try:
            record.check_crc(batch, header)
            entries = list(record.batch_records(batch, header))
        except record.RecordError as error:
            yield TxnRecordError(f"offset {header.base_offset}: {error}")
            continue
        for entry in entries:
            if entry.key is None:
                continue
            try:
                txn_id = decode_key(entry.key)
                value = None if entry.value is None else decode_value(txn_id, entry.value)
            except TxnRecordError as error:
                yield TxnRecordError(f"offset {entry.offset}: {error}")
                continue
            yield LoggedTxn(entry.offset, txn_id, value)
