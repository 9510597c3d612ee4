"""Building batches: every codec round-trips through the reader, plain batches are byte for
byte the general builder's, rebuilt batches keep what compaction must keep."""

from __future__ import annotations

from typing import Any

import google_crc32c
import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st
from kafka.record import MemoryRecords

from headrace.record import (
    build_batch,
    iter_records,
    parse_batches,
    parse_header,
    plain_batch,
    plain_batch_fits,
    rebuild_batch,
    record_spans,
)
from headrace.record.compression import CODEC_MASK, GZIP, NONE, SUPPORTED

MAX_TIMESTAMP_MS = 253_402_300_799_999
NOW_MS = 1_700_000_000_000

headers_strategy = st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=8)),
                            max_size=3)
record_strategy = st.tuples(st.integers(0, 2**40), st.none() | st.binary(max_size=30),
                            st.none() | st.binary(max_size=30), headers_strategy)
codecs = st.sampled_from(sorted(SUPPORTED))


@given(st.lists(record_strategy, min_size=1, max_size=20), st.integers(0, 1000), codecs)
def test_batches_round_trip(records: list[Any], base: int, codec: int) -> None:
    batch = build_batch(records, compression=codec, base_offset=base, leader_epoch=3)
    (header,) = parse_batches(memoryview(batch), max_batch_bytes=None, dense=True)
    assert (header.base_offset, header.leader_epoch, header.attributes & CODEC_MASK) == (
        base, 3, codec)
    assert header.crc == google_crc32c.value(batch[21:])
    decoded = list(iter_records(batch))
    assert [r.offset for r in decoded] == list(range(base, base + len(records)))
    assert [(r.timestamp_ms, r.key, r.value, list(r.headers)) for r in decoded] == [
        (t, k, v, list(h)) for t, k, v, h in records]
    assert [r.offset for r in iter_records(batch, start_offset=base + 1)] == list(
        range(base + 1, base + len(records)))


@given(st.lists(record_strategy, min_size=1, max_size=10), codecs)
def test_another_client_reads_what_the_builder_writes(records: list[Any], codec: int) -> None:
    built = build_batch(records, compression=codec)
    # kafka-python's reader; it decodes snappy, lz4 and zstd only through libraries this
    # project does not use, so those are read by aiokafka's (cramjam, unbounded here).
    if codec in (NONE, GZIP):
        batch = MemoryRecords(built).next_batch()
        assert batch is not None and batch.validate_crc()
        decoded = [(r.timestamp, r.key, r.value) for r in batch]
    else:
        other = DefaultRecordBatch(built)
        assert other.validate_crc()
        decoded = [(r.timestamp, r.key, r.value) for r in other]
    assert decoded == [(t, k, v) for t, k, v, _ in records]


def test_a_batch_needs_records() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        build_batch([])


def _aiokafka_batch(records: list[tuple[int, bytes | None, bytes | None, list[Any]]]) -> bytes:
    """aiokafka's own batch of (timestamp, key, value, headers) records: the reference."""
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 31)
    for offset_delta, (timestamp, key, value, headers) in enumerate(records):
        builder.append(offset_delta, timestamp, key, value, headers)
    return bytes(builder.build())


@given(st.integers(0, 300), st.integers(1, 200), st.integers(0, MAX_TIMESTAMP_MS),
       st.binary(min_size=1, max_size=1))
def test_a_plain_batch_is_what_the_builder_makes(size: int, count: int, timestamp: int,
                                                 fill: bytes) -> None:
    # Sizes and counts cross a varint width (from 64 on, a second byte).
    values = [bytes([(fill[0] + n) % 256]) * size for n in range(count)]
    assert plain_batch_fits(values)
    expected = [(timestamp, None, value, []) for value in values]
    assert plain_batch(values, timestamp) == _aiokafka_batch(expected) == build_batch(expected)


@pytest.mark.parametrize("size", [37, 2368, 2400, 2431])
def test_a_plain_batch_whose_lengths_hold_a_percent_byte(size: int) -> None:
    # plain_batch fills a template with %: a length varint with a 0x25 ('%') byte in it (the
    # second byte of a value length from 2368 to 2431) must come out as itself; and values
    # holding % are only ever filled in.
    values = [b"%s%%" * (size // 4) + b"%" * (size % 4)] * 3
    assert plain_batch(values, NOW_MS) == _aiokafka_batch([(NOW_MS, None, v, []) for v in values])


def test_plain_batches_take_values_of_one_size_and_not_too_many() -> None:
    assert plain_batch_fits([b"ab", b"cd"])
    assert not plain_batch_fits([b"ab", b"c"])
    assert not plain_batch_fits([b"x"] * 1025)


@given(st.lists(st.tuples(st.binary(max_size=4), st.none() | st.binary(max_size=8),
                          st.booleans()), min_size=1, max_size=12), codecs)
def test_a_rebuilt_batch_keeps_offsets_timestamps_and_the_kept_records(
        records: list[tuple[bytes, bytes | None, bool]], codec: int) -> None:
    batch = build_batch([(NOW_MS + i, k, v, ()) for i, (k, v, _) in enumerate(records)],
                        compression=codec, base_offset=50, producer_id=9, producer_epoch=2,
                        base_sequence=4)
    header = parse_header(batch)
    payload, spans = record_spans(batch, header)
    assert [(s.offset_delta, s.key, s.is_tombstone) for s in spans] == [
        (i, k, v is None) for i, (k, v, _) in enumerate(records)]
    kept = [span for span, (_, _, keep) in zip(spans, records, strict=True) if keep]
    rebuilt = rebuild_batch(batch, header, payload, kept)
    (new,) = parse_batches(memoryview(rebuilt), max_batch_bytes=None, dense=False)
    assert new[1:] == header._replace(  # everything but the length, CRC, count (and codec)
        batch_length=new.batch_length, crc=new.crc, record_count=len(kept),
        attributes=header.attributes if kept else header.attributes & ~CODEC_MASK)[1:]
    assert [(r.offset, r.key, r.value) for r in iter_records(rebuilt)] == [
        (50 + i, k, v) for i, (k, v, keep) in enumerate(records) if keep]
    if len(kept) == len(records):
        assert rebuilt is batch


def test_gzip_payloads_do_not_depend_on_the_clock() -> None:
    records = [(NOW_MS, b"k", b"v" * 100, ())]
    assert build_batch(records, compression=GZIP) == build_batch(records, compression=GZIP)
