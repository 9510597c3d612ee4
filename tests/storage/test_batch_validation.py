"""Append validation: every malformed batch is refused with a typed error and no write."""

from __future__ import annotations

import struct

import google_crc32c
import pytest

from headrace.record.compression import SNAPPY, compress
from headrace.storage import (
    BatchTooLargeError,
    CorruptBatchError,
    InvalidBatchError,
    LogConfig,
    PartitionLog,
)
from tests.storage.conftest import ManualClock, OpenManager
from tests.support.batches import (
    base_offset_of,
    batch_body,
    leader_epoch_of,
    make_batch,
    make_keyed_batch,
    split_batches,
)


def _reseal(batch: bytearray) -> bytes:
    """Recompute the CRC after a test edits the covered bytes on purpose."""
    struct.pack_into(">I", batch, 17, google_crc32c.value(bytes(batch[21:])))
    return bytes(batch)


@pytest.fixture
def log(open_manager: OpenManager) -> PartitionLog:
    manager = open_manager(LogConfig(max_message_bytes=2000))
    manager.create_topic("t", 1)
    return manager.get_partition("t", 0)


def _assert_untouched(log: PartitionLog) -> None:
    assert log.log_end_offset == 0
    assert log.size_bytes == 0


def test_flipped_record_byte_is_corrupt(log: PartitionLog) -> None:
    batch = bytearray(make_batch([b"hello", b"world"]))
    batch[-3] ^= 0x40
    with pytest.raises(CorruptBatchError) as info:
        log.append(bytes(batch), leader_epoch=0)
    assert info.value.kafka_error_code == 2
    _assert_untouched(log)


def test_wrong_magic_is_invalid(log: PartitionLog) -> None:
    batch = bytearray(make_batch([b"x"]))
    batch[16] = 1
    with pytest.raises(InvalidBatchError, match="magic"):
        log.append(bytes(batch), leader_epoch=0)
    _assert_untouched(log)


def test_length_beyond_data_is_invalid(log: PartitionLog) -> None:
    batch = make_batch([b"abc"])
    with pytest.raises(InvalidBatchError, match="claims"):
        log.append(batch[:-1], leader_epoch=0)
    with pytest.raises(InvalidBatchError, match="truncated"):
        log.append(batch[:40], leader_epoch=0)
    with pytest.raises(InvalidBatchError):
        log.append(b"", leader_epoch=0)
    _assert_untouched(log)


def test_record_count_must_match_last_offset_delta(log: PartitionLog) -> None:
    batch = bytearray(make_batch([b"a", b"b", b"c"]))
    struct.pack_into(">i", batch, 57, 2)  # recordCount 2 but lastOffsetDelta 2
    with pytest.raises(InvalidBatchError, match="record count"):
        log.append(_reseal(batch), leader_epoch=0)
    _assert_untouched(log)


def test_batch_larger_than_max_message_bytes(log: PartitionLog) -> None:
    with pytest.raises(BatchTooLargeError) as info:
        log.append(make_batch([b"x" * 3000]), leader_epoch=0)
    assert info.value.kafka_error_code == 10
    _assert_untouched(log)


def test_multi_batch_append_is_all_or_nothing(log: PartitionLog) -> None:
    good = make_batch([b"one"])
    bad = bytearray(make_batch([b"two"]))
    bad[-1] ^= 1
    with pytest.raises(CorruptBatchError):
        log.append(good + good + bytes(bad), leader_epoch=0)
    _assert_untouched(log)
    result = log.append(good + good, leader_epoch=0)
    assert (result.base_offset, result.last_offset) == (0, 1)


def test_offsets_and_epoch_rewritten_body_untouched(log: PartitionLog) -> None:
    first = make_batch([b"a", b"b", b"c"], base_offset=999, leader_epoch=77)
    second = make_batch([b"d"], base_offset=5)
    assert log.append(first, leader_epoch=4).base_offset == 0
    assert log.append(memoryview(second), leader_epoch=4).base_offset == 3
    with log.read(0, 10_000) as read:
        stored = split_batches(read.to_bytes())
    assert [base_offset_of(b) for b in stored] == [0, 3]
    assert [leader_epoch_of(b) for b in stored] == [4, 4]
    assert [batch_body(b) for b in stored] == [batch_body(first), batch_body(second)]
    # The stored CRC is still valid: the CRC-covered bytes were not touched.
    for batch in stored:
        assert struct.unpack_from(">I", batch, 17)[0] == google_crc32c.value(batch[21:])


def test_log_append_time_sets_type_bit_max_timestamp_and_crc(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = open_manager()
    manager.create_topic("lat", 1, {"message.timestamp.type": "LogAppendTime"})
    log = manager.get_partition("lat", 0)
    clock.now_ms = 1_800_000_000_123
    original = make_batch([b"x", b"y"], timestamp_ms=1_000)
    result = log.append(original, leader_epoch=0)
    assert result.log_append_time_ms == clock.now_ms
    with log.read(0, 10_000) as read:
        (stored,) = split_batches(read.to_bytes())
    attributes, max_ts = (
        struct.unpack_from(">h", stored, 21)[0],
        struct.unpack_from(">q", stored, 35)[0],
    )
    assert attributes & 0x08
    assert max_ts == clock.now_ms
    assert struct.unpack_from(">I", stored, 17)[0] == google_crc32c.value(stored[21:])
    assert stored[61:] == original[61:]  # records untouched
    assert log.offset_for_timestamp(clock.now_ms) == (0, clock.now_ms)


def test_snappy_batches_are_opened_and_checked(log: PartitionLog) -> None:
    # Attributes claim snappy (2) over records that are not snappy.
    batch = make_batch([b"\x00\x01garbage-that-is-not-snappy"], attributes=SNAPPY)
    with pytest.raises(InvalidBatchError, match="undecompressible snappy"):
        log.append(batch, leader_epoch=0)
    assert log.log_end_offset == 0
    batch = make_keyed_batch([(b"k", b"v")], attributes=SNAPPY,
                             compress=lambda raw: compress(SNAPPY, raw))
    log.append(batch, leader_epoch=0)
    with log.read(0, 10_000) as read:
        assert batch_body(read.to_bytes()) == batch_body(batch)
