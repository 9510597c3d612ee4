"""Building RecordBatch v2 bytes: the one way batches are made in the broker and its tests.

* :func:`new_batch_builder` / :func:`build_batch`: any records (keys, headers, timestamps of
  their own), encoded by aiokafka's builder in C; optionally compressed (:mod:`.compression`);
* :func:`plain_batch`: the HTTP API's common batch (values of one size, nothing else) by one
  C-level formatting of a cached template, byte for byte what the builder makes of them: the
  builder's per-record call was a tenth of an HTTP produce's cost (docs/bench/http.md);
* :func:`rebuild_batch`: a batch keeping only some of its records, byte for byte (compaction);
* :func:`~headrace.record.layout.pack_batch` (in layout): a header with its CRC around a
  records section as given, for batches the others cannot make.

Base offsets are 0 and leader epochs -1 unless given: a log assigns both on append.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Protocol

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from headrace.record.compression import CODEC_MASK, NONE, compress
from headrace.record.layout import (
    HEADER_SIZE,
    MAGIC,
    NO_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    PREFIX_SIZE,
    BatchHeader,
    pack_batch,
    parse_header,
    rewritten_prefix,
)
from headrace.record.reader import RecordSpan
from headrace.record.varint import encode_varint

Header = tuple[str, bytes | None]


class BatchBuilder(Protocol):
    """Records appended one by one (offset deltas 0, 1, ...), then ``build()`` once."""

    def append(
        self,
        offset: int,
        timestamp: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list[Header],
    ) -> object: ...

    def build(self) -> bytearray: ...


def new_batch_builder(
    *,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> BatchBuilder:
    """A builder of one uncompressed RecordBatch v2 (aiokafka's, in C).

    ``append(offset_delta, timestamp_ms, key, value, headers)`` with relative offsets 0..n-1
    and ``headers`` a list; ``build()`` ends it."""
    builder: BatchBuilder = DefaultRecordBatchBuilder(
        magic=MAGIC, compression_type=NONE, is_transactional=0, producer_id=producer_id,
        producer_epoch=producer_epoch, base_sequence=base_sequence, batch_size=1 << 31,
    )
    return builder


def build_batch(
    records: Iterable[tuple[int, bytes | None, bytes | None, Sequence[Header]]],
    *,
    compression: int = NONE,
    base_offset: int = 0,
    leader_epoch: int = NO_LEADER_EPOCH,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> bytes:
    """One RecordBatch v2 of ``(timestamp_ms, key, value, headers)`` records; a value None is
    a tombstone. Raises ValueError for no records (a batch spans at least one offset)."""
    builder = new_batch_builder(
        producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence
    )
    count = 0
    for offset_delta, (timestamp, key, value, headers) in enumerate(records):
        builder.append(offset_delta, timestamp, key, value, list(headers))
        count += 1
    if not count:
        raise ValueError("a batch needs at least one record")
    batch = bytes(builder.build())
    if compression != NONE:
        header = parse_header(batch)
        return pack_batch(
            compress(compression, batch[HEADER_SIZE:]),
            record_count=header.record_count,
            last_offset_delta=header.last_offset_delta,
            base_timestamp=header.base_timestamp,
            max_timestamp=header.max_timestamp,
            attributes=header.attributes | compression,
            base_offset=base_offset,
            leader_epoch=leader_epoch,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
        )
    if base_offset != 0 or leader_epoch != NO_LEADER_EPOCH:
        batch = rewritten_prefix(parse_header(batch), base_offset, leader_epoch) + batch[
            PREFIX_SIZE:
        ]
    return batch


# -- plain batches: values of one size, nothing else ---------------------------------------

#: Each record's last byte: its header count, 0.
_NO_HEADER_COUNT = b"\x00"
#: Past this many records a plain batch is left to the builder: the cached templates stay
#: small (at most 32 of them, about 11 kB each at most).
_PLAIN_MAX_RECORDS = 1024


@functools.lru_cache(maxsize=32)
def _plain_records_template(value_size: int, count: int) -> bytes:
    """The records of a plain batch with ``%s`` for each value: before it the length,
    attributes 0, timestamp delta 0, offset delta, null key and value length; after it no
    headers. One ``%`` then fills in every value, in C."""
    size_field = encode_varint(value_size)
    parts = []
    for offset_delta in range(count):
        body = b"\x00\x00" + encode_varint(offset_delta) + b"\x01" + size_field
        prefix = encode_varint(len(body) + value_size + 1) + body
        parts.append(prefix.replace(b"%", b"%%") + b"%s" + _NO_HEADER_COUNT)
    return b"".join(parts)


def plain_batch_fits(values: list[bytes]) -> bool:
    """Whether :func:`plain_batch` takes these values: all of one size, and not too many."""
    return len(values) <= _PLAIN_MAX_RECORDS and len(set(map(len, values))) == 1


def plain_batch(values: list[bytes], timestamp_ms: int) -> bytes:
    """The uncompressed RecordBatch v2 of records with these values (one size), no key, no
    headers and ``timestamp_ms``: byte for byte what :func:`build_batch` makes of them (the
    tests hold the two equal), by one C-level formatting instead of a call per record."""
    count = len(values)
    records = _plain_records_template(len(values[0]), count) % tuple(values)
    return pack_batch(records, count, count - 1, timestamp_ms, timestamp_ms)


# -- rebuilding a batch from some of its records -------------------------------------------


def rebuild_batch(
    batch: bytes, header: BatchHeader, payload: bytes | bytearray, kept: list[RecordSpan]
) -> bytes:
    """``batch`` holding only the ``kept`` records of its (decompressed) ``payload``, as
    :func:`~headrace.record.reader.record_spans` found them: same base offset,
    lastOffsetDelta, timestamps and producer fields, so offsets and producer state are
    unchanged.

    With no record left the batch is empty and uncompressed, as Kafka's cleaner writes it.
    """
    if len(kept) == header.record_count:
        return batch
    attributes = header.attributes
    if kept:
        records = b"".join(payload[span.start : span.end] for span in kept)
        records = compress(attributes & CODEC_MASK, records)
    else:
        records = b""
        attributes &= ~CODEC_MASK
    return pack_batch(
        records,
        record_count=len(kept),
        last_offset_delta=header.last_offset_delta,
        base_timestamp=header.base_timestamp,
        max_timestamp=header.max_timestamp,
        attributes=attributes,
        base_offset=header.base_offset,
        leader_epoch=header.leader_epoch,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
    )


__all__ = [
    "BatchBuilder",
    "build_batch",
    "new_batch_builder",
    "plain_batch",
    "plain_batch_fits",
    "rebuild_batch",
]
