"""Idempotent producer semantics (KIP-98) and their survival across restarts and truncation."""

from __future__ import annotations

import pytest

from headrace.storage import (
    DuplicateSequenceError,
    InvalidProducerEpochError,
    LogConfig,
    OutOfOrderSequenceError,
    PartitionLog,
)
from tests.storage.conftest import OpenManager
from tests.support.batches import make_batch

PID = 4242


def _idem(seq: int, count: int = 2, *, epoch: int = 0, pid: int = PID) -> bytes:
    return make_batch(
        [f"s{seq + i}".encode() for i in range(count)],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
    )


@pytest.fixture
def log(open_manager: OpenManager) -> PartitionLog:
    manager = open_manager(LogConfig(segment_bytes=400))
    manager.create_topic("t", 1)
    return manager.get_partition("t", 0)


def test_retry_of_recent_batch_returns_original_offsets(log: PartitionLog) -> None:
    results = [log.append(_idem(seq), leader_epoch=0) for seq in range(0, 12, 2)]
    assert [r.base_offset for r in results] == list(range(0, 12, 2))
    end, size = log.log_end_offset, log.size_bytes
    # The last five batches are remembered: retries are answered, nothing is written.
    for seq in range(2, 12, 2):
        retry = log.append(_idem(seq), leader_epoch=0)
        assert retry.duplicate
        assert (retry.base_offset, retry.last_offset) == (seq, seq + 1)
    assert (log.log_end_offset, log.size_bytes) == (end, size)
    # The sixth-newest is forgotten: it is now just out of order.
    with pytest.raises(OutOfOrderSequenceError):
        log.append(_idem(0), leader_epoch=0)


def test_gap_is_out_of_order(log: PartitionLog) -> None:
    log.append(_idem(0), leader_epoch=0)
    with pytest.raises(OutOfOrderSequenceError) as info:
        log.append(_idem(3), leader_epoch=0)
    assert info.value.kafka_error_code == 45
    assert log.log_end_offset == 2
    with pytest.raises(OutOfOrderSequenceError):
        log.append(_idem(5, pid=99), leader_epoch=0)  # unknown producer must start at 0


def test_epochs(log: PartitionLog) -> None:
    log.append(_idem(0, epoch=3), leader_epoch=0)
    with pytest.raises(InvalidProducerEpochError) as info:
        log.append(_idem(2, epoch=2), leader_epoch=0)
    assert info.value.kafka_error_code == 47
    with pytest.raises(OutOfOrderSequenceError):
        log.append(_idem(2, epoch=4), leader_epoch=0)  # a new epoch starts at 0
    assert log.append(_idem(0, epoch=4), leader_epoch=0).base_offset == 2
    with pytest.raises(InvalidProducerEpochError):
        log.append(_idem(2, epoch=3), leader_epoch=0)


def test_multi_batch_append_checks_sequences_in_order(log: PartitionLog) -> None:
    result = log.append(_idem(0) + _idem(2) + _idem(4), leader_epoch=0)
    assert (result.base_offset, result.last_offset) == (0, 5)
    with pytest.raises(OutOfOrderSequenceError):
        log.append(_idem(6) + _idem(9), leader_epoch=0)
    assert log.log_end_offset == 6  # all or nothing
    with pytest.raises(DuplicateSequenceError):
        log.append(_idem(4) + _idem(6), leader_epoch=0)
    assert log.append(_idem(4), leader_epoch=0).duplicate


def test_sequence_wraps_at_int32_max(log: PartitionLog) -> None:
    log.append(_idem(0), leader_epoch=0)
    state = log.producer_state.producers[PID]
    # Pretend the producer got near the end of the sequence space.
    from headrace.storage.producer_state import BatchRecord

    state.batches.append(BatchRecord(2**31 - 3, 2**31 - 2, 2, 3))
    log.append(_idem(2**31 - 1, count=3), leader_epoch=0)  # last sequence wraps to 1
    assert log.append(_idem(2), leader_epoch=0).base_offset == 5


def test_state_survives_clean_and_unclean_restart(open_manager: OpenManager) -> None:
    manager = open_manager(LogConfig(segment_bytes=400))
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    for seq in range(0, 20, 2):
        log.append(_idem(seq), leader_epoch=0)
    manager.close()
    manager = open_manager(LogConfig(segment_bytes=400))
    log = manager.get_partition("t", 0)
    assert log.append(_idem(18), leader_epoch=0).duplicate
    log.append(_idem(20), leader_epoch=0)
    # Unclean: the process "dies" (files closed without the shutdown marker or snapshot).
    manager.files.close_all()
    manager._closed = True
    manager = open_manager(LogConfig(segment_bytes=400))
    log = manager.get_partition("t", 0)
    retry = log.append(_idem(20), leader_epoch=0)
    assert retry.duplicate and retry.base_offset == 20
    with pytest.raises(OutOfOrderSequenceError):
        log.append(_idem(24), leader_epoch=0)


def test_truncation_and_retention_keep_state_consistent(log: PartitionLog) -> None:
    for seq in range(0, 20, 2):
        log.append(_idem(seq), leader_epoch=0)
    log.flush()  # snapshot at offset 20
    log.truncate_to(14)  # batches with sequences 14..19 are gone
    assert log.log_end_offset == 14
    assert log.append(_idem(14), leader_epoch=0).base_offset == 14  # not a duplicate any more
    log.delete_records_before(12)
    assert log.segment_count >= 1
    assert log.append(_idem(14), leader_epoch=0).duplicate
    assert log.append(_idem(16), leader_epoch=0).base_offset == 16
    log.truncate_fully_and_start_at(100)
    with pytest.raises(OutOfOrderSequenceError):
        log.append(_idem(18), leader_epoch=0)  # state cleared with the log
