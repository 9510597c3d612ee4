"""A tiny RecordBatch v2 encoder for tests, independent of the broker's record package, so a
bug there cannot hide in the batches the tests feed the logs (storage and cluster tests)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import google_crc32c

HEADER_TAIL = struct.Struct(">hiqqqhii")  # attributes .. recordCount (bytes 21..61)


def zigzag_varint(value: int) -> bytes:
    encoded = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = encoded & 0x7F
        encoded >>= 7
        if encoded:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_record(
    offset_delta: int, timestamp_delta: int, key: bytes | None, value: bytes | None
) -> bytes:
    body = bytearray(b"\x00")  # record attributes
    body += zigzag_varint(timestamp_delta)
    body += zigzag_varint(offset_delta)
    if key is None:
        body += zigzag_varint(-1)
    else:
        body += zigzag_varint(len(key)) + key
    body += zigzag_varint(-1) if value is None else zigzag_varint(len(value)) + value
    body += zigzag_varint(0)  # no headers
    return zigzag_varint(len(body)) + bytes(body)


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
    attributes: int = 0,
    compress: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """One valid batch of (key, value) records; value None is a tombstone. ``compress`` turns
    the records section into the payload of a compressed batch (set the codec in
    ``attributes``)."""
    encoded = b"".join(
        encode_record(i, i * timestamp_step, k, v) for i, (k, v) in enumerate(records)
    )
    if compress is not None:
        encoded = compress(encoded)
    count = len(records)
    max_ts = timestamp_ms + (count - 1) * timestamp_step
    tail = (
        HEADER_TAIL.pack(
            attributes,
            count - 1,
            timestamp_ms,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
        + encoded
    )
    crc = google_crc32c.value(tail)
    batch_length = 4 + 1 + 4 + len(tail)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", base_offset, batch_length, leader_epoch, 2, crc) + tail


def batch_body(batch: bytes) -> bytes:
    """The part of a batch the leader never rewrites (everything from the magic byte on)."""
    return batch[16:]


def split_batches(data: bytes) -> list[bytes]:
    out = []
    position = 0
    while position < len(data):
        (length,) = struct.unpack_from(">i", data, position + 8)
        out.append(data[position : position + 12 + length])
        position += 12 + length
    return out


def base_offset_of(batch: bytes) -> int:
    return int(struct.unpack_from(">q", batch, 0)[0])


def leader_epoch_of(batch: bytes) -> int:
    return int(struct.unpack_from(">i", batch, 12)[0])


def raw_batch(
    records: bytes,
    *,
    count: int,
    last_offset_delta: int | None = None,
    attributes: int = 0,
    timestamp_ms: int = 1_700_000_000_000,
    max_timestamp: int | None = None,
    magic: int = 2,
    producer_id: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """A batch around any records section (valid or not) with whatever header fields a test
    claims, and a correct CRC: what a hostile producer can send."""
    delta = count - 1 if last_offset_delta is None else last_offset_delta
    top = timestamp_ms if max_timestamp is None else max_timestamp
    tail = HEADER_TAIL.pack(
        attributes, delta, timestamp_ms, top, producer_id, -1, base_sequence, count
    ) + records
    crc = google_crc32c.value(tail)
    return struct.pack(">qiibI", 0, 4 + 1 + 4 + len(tail), -1, magic, crc) + tail
