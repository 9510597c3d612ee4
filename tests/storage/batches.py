"""Batches for storage tests, made by :mod:`headrace.record`'s builder.

A few tests need deliberately odd batches (attributes naming a codec or the control bit that
the records do not match); those are packed by hand around the builder's records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from headrace.record import build_batch, pack_batch, parse_header, whole_batches
from headrace.record.compression import NONE
from headrace.record.layout import HEADER_SIZE, PREFIX_SIZE


def make_batch(
    values: Sequence[bytes],
    *,
    base_offset: int = 0,
    timestamp_ms: int = 1_700_000_000_000,
    timestamp_step: int = 1,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    leader_epoch: int = -1,
    attributes: int = 0,
) -> bytes:
    """One valid batch holding ``values`` as records (keys None)."""
    return make_keyed_batch(
        [(None, v) for v in values],
        base_offset=base_offset,
        timestamp_ms=timestamp_ms,
        timestamp_step=timestamp_step,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        leader_epoch=leader_epoch,
        attributes=attributes,
    )


def make_keyed_batch(
    records: Sequence[tuple[bytes | None, bytes | None]],
    *,
    base_offset: int = 0,
    timestamp_ms: int = 1_700_000_000_000,
    timestamp_step: int = 1,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    leader_epoch: int = -1,
    compression: int = NONE,
    attributes: int = 0,
    compress: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """One batch of (key, value) records, the i-th stamped ``timestamp_ms + i *
    timestamp_step``; value None is a tombstone. ``compression`` makes a real compressed batch.
    ``attributes`` (and ``compress``, applied to the records section) make an odd one: its
    attributes as given, its records as ``compress`` turns them (unchanged without it)."""
    batch = build_batch(
        [(timestamp_ms + i * timestamp_step, k, v, ()) for i, (k, v) in enumerate(records)],
        compression=compression,
        base_offset=base_offset,
        leader_epoch=leader_epoch,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )
    if not attributes and compress is None:
        return batch
    header = parse_header(batch)
    section = batch[HEADER_SIZE:]
    return pack_batch(
        section if compress is None else compress(section),
        record_count=header.record_count,
        last_offset_delta=header.last_offset_delta,
        base_timestamp=header.base_timestamp,
        max_timestamp=header.max_timestamp,
        attributes=attributes,
        base_offset=base_offset,
        leader_epoch=leader_epoch,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
    )


def batch_body(batch: bytes) -> bytes:
    """The part of a batch the leader never rewrites (everything from the magic byte on)."""
    return batch[PREFIX_SIZE - 1 :]


def split_batches(data: bytes) -> list[bytes]:
    return [bytes(batch) for _, batch in whole_batches(data)]


def base_offset_of(batch: bytes) -> int:
    return parse_header(batch).base_offset


def leader_epoch_of(batch: bytes) -> int:
    return parse_header(batch).leader_epoch
