"""What the transaction coordinator writes to ``__transaction_state``, and reads back. Pure.

Kafka's own layouts (``TransactionLogKey`` v0 and ``TransactionLogValue`` v0, non-flexible),
written by hand because kio carries only the wire APIs, not the internal log schemas:

* key: ``version int16 = 0, transactional_id string``;
* value: ``version int16 = 0, producer_id int64, producer_epoch int16, timeout_ms int32,
  status int8, partitions [topic string, partition ids [int32]], last_update_ms int64,
  start_ms int64``; a null value is a tombstone (the id expired).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from headrace import record
from headrace.transactions.model import TxnMetadata, TxnState

TRANSACTION_TOPIC = "__transaction_state"

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_VALUE_HEAD = struct.Struct(">hqhib")
_VALUE_TAIL = struct.Struct(">qq")


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
    parts = [
        _VALUE_HEAD.pack(0, metadata.producer_id, metadata.producer_epoch,
                         metadata.timeout_ms, int(metadata.state)),
        _I32.pack(len(by_topic)),
    ]
    for topic, partitions in by_topic.items():
        parts.append(_string(topic))
        parts.append(_I32.pack(len(partitions)))
        parts.extend(_I32.pack(p) for p in partitions)
    parts.append(_VALUE_TAIL.pack(metadata.last_update_ms, metadata.start_ms))
    return b"".join(parts)


def decode_value(transactional_id: str, data: bytes) -> TxnMetadata:
    try:
        version, producer_id, epoch, timeout_ms, status = _VALUE_HEAD.unpack_from(data, 0)
        if version != 0:
            raise TxnRecordError(f"unknown transaction value version {version}")
        position = _VALUE_HEAD.size
        (topics,) = _I32.unpack_from(data, position)
        position += 4
        partitions: set[tuple[str, int]] = set()
        for _ in range(max(topics, 0)):
            (length,) = _I16.unpack_from(data, position)
            topic = data[position + 2 : position + 2 + length].decode()
            position += 2 + length
            (count,) = _I32.unpack_from(data, position)
            position += 4
            for _ in range(count):
                partitions.add((topic, _I32.unpack_from(data, position)[0]))
                position += 4
        last_update_ms, start_ms = _VALUE_TAIL.unpack_from(data, position)
        return TxnMetadata(transactional_id, producer_id, epoch, timeout_ms, TxnState(status),
                           frozenset(partitions), start_ms, last_update_ms)
    except (struct.error, UnicodeDecodeError, ValueError) as error:
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
