"""Reading batches: validation finds every kind of damage, records decode or fail cleanly."""

from __future__ import annotations

import struct

import pytest

from headrace.record import (
    BatchHeader,
    CorruptBatchError,
    MalformedBatchError,
    OversizedBatchError,
    UnsupportedCompressionError,
    batch_records,
    batches_end,
    build_batch,
    check_crc,
    iter_records,
    pack_batch,
    parse_batches,
    parse_header,
    record_spans,
    whole_batches,
)
from headrace.record.compression import GZIP, compress, decompress
from headrace.record.layout import ATTR_CONTROL, ATTR_TIMESTAMP_TYPE, seal

NOW_MS = 1_700_000_000_000


def _batch(*values: bytes, key: bytes | None = None, base_offset: int = 0) -> bytes:
    return build_batch([(NOW_MS + i, key, v, ()) for i, v in enumerate(values)],
                       base_offset=base_offset)


def _parse(data: bytes, *, max_batch_bytes: int | None = None, dense: bool = True
           ) -> list[BatchHeader]:
    return parse_batches(memoryview(data), max_batch_bytes=max_batch_bytes, dense=dense)


def test_parse_batches_returns_each_header_where_it_sits() -> None:
    first, second = _batch(b"a", b"b"), _batch(b"c")
    headers = parse_batches(memoryview(first + second), max_batch_bytes=None, dense=True)
    assert [(h.position, h.record_count) for h in headers] == [(0, 2), (len(first), 1)]


@pytest.mark.parametrize(("damage", "error", "message"), [
    (lambda b: b"", MalformedBatchError, "no record batches"),
    (lambda b: b[:40], MalformedBatchError, "truncated batch header"),
    (lambda b: b[:-1], MalformedBatchError, "claims"),
    (lambda b: b[:16] + b"\x01" + b[17:], MalformedBatchError, "unsupported magic"),
    (lambda b: b[:8] + struct.pack(">i", 10) + b[12:], MalformedBatchError, "too small"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), CorruptBatchError, "CRC mismatch"),
])
def test_parse_batches_refuses_damage(damage: object, error: type[Exception], message: str
                                      ) -> None:
    assert callable(damage)
    with pytest.raises(error, match=message):
        _parse(damage(_batch(b"value")))


def test_parse_batches_checks_counts_and_size() -> None:
    sparse = bytearray(_batch(b"a", b"b"))
    struct.pack_into(">i", sparse, 57, 1)  # one record for two offsets (a compacted batch)
    sparse = bytes(seal(sparse))
    with pytest.raises(MalformedBatchError, match="does not match"):
        _parse(sparse)
    assert len(_parse(sparse, dense=False)) == 1
    crowded = bytearray(_batch(b"a"))
    struct.pack_into(">i", crowded, 57, 2)
    with pytest.raises(MalformedBatchError, match="more records than offsets"):
        _parse(bytes(seal(crowded)), dense=False)
    with pytest.raises(OversizedBatchError, match=r"max\.message\.bytes 70"):
        _parse(_batch(b"x" * 20), max_batch_bytes=70)


def test_whole_batches_leave_out_a_batch_cut_short() -> None:
    first, second = _batch(b"a"), _batch(b"b")
    data = first + second[:-3]
    assert [bytes(batch) for _, batch in whole_batches(data)] == [first]
    assert batches_end(data) == len(first)
    assert batches_end(first + second) == len(first) + len(second)
    assert list(whole_batches(first[:11])) == []


def test_check_crc() -> None:
    batch = bytearray(_batch(b"a"))
    check_crc(batch, parse_header(batch))
    batch[-1] ^= 1
    with pytest.raises(CorruptBatchError):
        check_crc(batch, parse_header(batch))


def test_iter_records_skips_control_batches_and_earlier_offsets() -> None:
    control = bytearray(_batch(b"marker", base_offset=2))
    struct.pack_into(">h", control, 21, ATTR_CONTROL)
    data = _batch(b"a", b"b") + bytes(seal(control)) + _batch(b"c", base_offset=3)
    assert [r.value for r in iter_records(data)] == [b"a", b"b", b"c"]
    assert [r.value for r in iter_records(data, start_offset=1)] == [b"b", b"c"]


def test_log_append_time_records_carry_the_batch_time() -> None:
    batch = bytearray(_batch(b"a", b"b"))
    struct.pack_into(">h", batch, 21, ATTR_TIMESTAMP_TYPE)
    struct.pack_into(">q", batch, 35, 42)
    records = list(iter_records(bytes(batch)))
    assert [(r.timestamp_type, r.timestamp_ms) for r in records] == [(1, 42), (1, 42)]


def _with_codec(batch: bytes, codec: int, section: bytes) -> bytes:
    header = parse_header(batch)
    return pack_batch(section, record_count=header.record_count,
                      last_offset_delta=header.last_offset_delta,
                      base_timestamp=header.base_timestamp, max_timestamp=header.max_timestamp,
                      attributes=codec)


def test_codec_ids_naming_no_codec_are_reported_not_guessed() -> None:
    opaque = _with_codec(_batch(b"a"), 5, b"codec 5?")
    header = parse_header(opaque)
    with pytest.raises(UnsupportedCompressionError, match="codec 5"):
        record_spans(opaque, header)
    with pytest.raises(UnsupportedCompressionError):
        list(batch_records(opaque, header))
    with pytest.raises(UnsupportedCompressionError):
        compress(6, b"x")
    with pytest.raises(MalformedBatchError, match="unknown compression codec 5"):
        parse_batches(memoryview(opaque), max_batch_bytes=None, dense=True)


def test_undecompressible_and_malformed_records_are_malformed_batches() -> None:
    broken = _with_codec(_batch(b"a"), GZIP, b"not gzip at all")
    with pytest.raises(MalformedBatchError, match="undecompressible gzip"):
        record_spans(broken, parse_header(broken))
    truncated = _with_codec(_batch(b"a"), GZIP, compress(GZIP, b"\x10\x00"))
    with pytest.raises(MalformedBatchError):
        record_spans(truncated, parse_header(truncated))
    with pytest.raises(MalformedBatchError):
        list(batch_records(truncated, parse_header(truncated)))
    assert decompress(GZIP, compress(GZIP, b"records")) == b"records"


def test_record_spans_bounds_every_record() -> None:
    batch = _batch(b"value", key=b"key")
    header = parse_header(batch)
    section = batch[61:]
    for cut in range(1, len(section)):
        short = _with_codec(batch, 0, section[:cut])
        with pytest.raises(MalformedBatchError):
            record_spans(short, parse_header(short))
    payload, (span,) = record_spans(batch, header)
    assert (span.key, span.is_tombstone, payload[span.start : span.end]) == (
        b"key", False, section)
