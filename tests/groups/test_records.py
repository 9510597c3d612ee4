"""The ``__consumer_offsets`` record format: keys, values, tombstones and RecordBatch v2 framing."""

from __future__ import annotations

import struct

import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.groups.partitioning import java_string_hashcode, offsets_partition_for
from headrace.groups.records import (
    GroupKey,
    GroupValue,
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    StoredMember,
    build_batch,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_key,
    encode_value,
    parse_batches,
)
from headrace.record import batches_end

names = st.text(min_size=0, max_size=30)


@given(names, names, st.integers(0, 2**31 - 1))
def test_offset_key_round_trip(group: str, topic: str, partition: int) -> None:
    key = OffsetKey(group, topic, partition)
    assert decode_key(encode_key(key)) == key


def test_key_layout_matches_kafka() -> None:
    assert encode_key(OffsetKey("g", "t", 3)) == b"\x00\x01\x00\x01g\x00\x01t\x00\x00\x00\x03"
    assert encode_key(GroupKey("g")) == b"\x00\x02\x00\x01g"
    # Version 0 offset keys (older Kafka) decode too.
    assert decode_key(b"\x00\x00\x00\x01g\x00\x01t\x00\x00\x00\x03") == OffsetKey("g", "t", 3)
    with pytest.raises(RecordFormatError):
        decode_key(b"\x00\x07\x00\x01g")
    with pytest.raises(RecordFormatError):
        decode_key(b"\x00\x02\x00\x05g")


@given(st.integers(-1, 2**62), st.integers(-1, 2**31 - 1), names, st.integers(0, 2**60))
def test_offset_value_round_trip(offset: int, epoch: int, metadata: str, ts: int) -> None:
    value = OffsetValue(offset, epoch, metadata, ts)
    assert decode_offset_value(encode_value(value)) == value


members = st.builds(
    StoredMember,
    member_id=names,
    group_instance_id=st.none() | names,
    client_id=names,
    client_host=names,
    rebalance_timeout_ms=st.integers(0, 2**31 - 1),
    session_timeout_ms=st.integers(0, 2**31 - 1),
    subscription=st.binary(max_size=40),
    assignment=st.binary(max_size=40),
)


@settings(max_examples=50)
@given(
    st.builds(
        GroupValue,
        protocol_type=names,
        generation_id=st.integers(0, 2**31 - 1),
        protocol_name=st.none() | names,
        leader_id=st.none() | names,
        state_timestamp_ms=st.integers(0, 2**60),
        members=st.lists(members, max_size=4).map(tuple),
    )
)
def test_group_value_round_trip(value: GroupValue) -> None:
    assert decode_group_value(encode_value(value)) == value


def test_batch_is_valid_record_batch_v2_and_parses_back() -> None:
    entries: list[tuple[OffsetKey | GroupKey, OffsetValue | GroupValue | None]] = [
        (OffsetKey("g", "orders", 0), OffsetValue(42, 3, "meta", 1_700_000_000_123)),
        (OffsetKey("g", "orders", 1), None),
        (GroupKey("g"), GroupValue("consumer", 5, "range", "m-1", 1, ())),
    ]
    batch = build_batch(entries, 1_700_000_000_123)
    base_offset, length, _epoch, magic, crc = struct.unpack_from(">qiibI", batch, 0)
    assert (base_offset, magic, length + 12) == (0, 2, len(batch))
    assert crc == google_crc32c.value(batch[21:])
    (count,) = struct.unpack_from(">i", batch, 57)
    assert count == 3
    # Two batches back to back, the second with log-assigned offsets, plus a partial third.
    second = bytearray(build_batch(entries[:1], 5))
    struct.pack_into(">q", second, 0, 10)
    data = batch + bytes(second) + batch[:30]
    assert batches_end(data) == len(batch) + len(second)
    parsed = list(parse_batches(data))
    assert [(e.offset, e.key, e.value) for e in parsed] == [
        (0, entries[0][0], entries[0][1]),
        (1, entries[1][0], None),
        (2, entries[2][0], entries[2][1]),
        (10, entries[0][0], entries[0][1]),
    ]


def test_build_batch_needs_records() -> None:
    with pytest.raises(ValueError):
        build_batch([], 0)


@pytest.mark.parametrize(
    ("text", "java_hash"),
    [("", 0), ("hello", 99162322), ("test", 3556498), ("polygenelubricants", -2147483648),
     ("é€", 233 * 31 + 8364)],
)
def test_java_string_hashcode(text: str, java_hash: int) -> None:
    assert java_string_hashcode(text) == java_hash


def test_offsets_partition_rule() -> None:
    assert offsets_partition_for("hello", 50) == 99162322 % 50
    # Java's Integer.MIN_VALUE hash maps to partition 0 (Kafka's Utils.abs).
    assert offsets_partition_for("polygenelubricants", 50) == 0
    assert all(0 <= offsets_partition_for(f"g{i}", 7) < 7 for i in range(100))


def test_unreadable_batches_and_records_are_reported_and_skipped() -> None:
    good = build_batch([(OffsetKey("g", "t", 0), OffsetValue(1, -1, "", 0))], 0)
    damaged = bytearray(build_batch([(OffsetKey("g", "t", 1), OffsetValue(2, -1, "", 0))], 0))
    damaged[-1] ^= 0xFF  # breaks the CRC
    struct.pack_into(">q", damaged, 0, 1)
    # A record from a future schema version: key version 9.
    future = bytearray(build_batch([(GroupKey("g"), None)], 0))
    struct.pack_into(">q", future, 0, 2)
    key_at = bytes(future).index(b"\x00\x02\x00\x01g")
    future[key_at + 1] = 9
    struct.pack_into(">I", future, 17, google_crc32c.value(bytes(future[21:])))
    data = good + bytes(damaged) + bytes(future) + good
    with pytest.raises(ValueError):
        list(parse_batches(data))
    skipped: list[tuple[int, type[Exception]]] = []
    entries = list(parse_batches(data, lambda offset, error: skipped.append((offset, type(error)))))
    assert [e.offset for e in entries] == [0, 0]
    assert [offset for offset, _ in skipped] == [1, 2]
    assert skipped[1][1] is RecordFormatError
