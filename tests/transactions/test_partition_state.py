"""A partition's transaction state: the Last Stable Offset, markers, the aborted-transaction
index (``.txnindex``) and how they survive restarts, crashes and truncation."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace import record
from headrace.storage import InvalidBatchError, LogConfig, PartitionLog, control_batch
from headrace.storage.txn_index import TXN_INDEX_SUFFIX

PID = 1000


def _txn_batch(values: list[bytes], sequence: int, *, pid: int = PID) -> bytes:
    plain = record.build_batch([(1, None, v, ()) for v in values])
    header = record.parse_header(plain)
    return record.pack_batch(plain[61:], header.record_count, header.last_offset_delta,
                             header.base_timestamp, header.max_timestamp, attributes=0x10,
                             producer_id=pid, producer_epoch=0, base_sequence=sequence)


def _marker(commit: bool, *, pid: int = PID, epoch: int = 0) -> bytes:
    return control_batch(pid, epoch, commit=commit, coordinator_epoch=0, timestamp_ms=1)


def _open(path: Path, **kwargs: bool) -> PartitionLog:
    return PartitionLog(path, "t", 0, LogConfig(segment_bytes=1 << 16), **kwargs)


def test_lso_and_aborted_ranges(tmp_path: Path) -> None:
    log = _open(tmp_path / "p")
    log.append(record.build_batch([(1, None, b"plain", ())]), leader_epoch=0)  # offset 0
    assert log.last_stable_offset(log.log_end_offset) == 1
    log.append(_txn_batch([b"a", b"b"], 0), leader_epoch=0)  # offsets 1-2
    assert log.ongoing_transaction(PID)
    assert log.last_stable_offset(log.log_end_offset) == 1  # held at the open transaction
    log.append(_marker(commit=False), leader_epoch=0, coordinator=True)  # offset 3
    assert log.last_stable_offset(log.log_end_offset) == 4
    assert log.aborted_transactions(0, 4) == [(PID, 1)]
    assert log.aborted_transactions(4, 10) == []
    log.append(_txn_batch([b"c"], 2), leader_epoch=0)  # offset 4
    log.append(_marker(commit=True), leader_epoch=0, coordinator=True)  # offset 5
    assert log.aborted_transactions(0, 10) == [(PID, 1)]  # commits are not indexed
    # A marker the high watermark has not passed keeps the LSO at its transaction.
    assert log.last_stable_offset(5) == 4
    assert log.last_stable_offset(log.log_end_offset) == 6
    assert list(tmp_path.joinpath("p").glob("*" + TXN_INDEX_SUFFIX))
    log.close()


def test_clients_cannot_write_markers(tmp_path: Path) -> None:
    log = _open(tmp_path / "p")
    with pytest.raises(InvalidBatchError):
        log.append(_marker(commit=True), leader_epoch=0)
    log.close()


@pytest.mark.parametrize("clean", [True, False])
def test_open_transactions_and_aborted_ranges_survive_a_restart(
    tmp_path: Path, clean: bool,
) -> None:
    log = _open(tmp_path / "p")
    log.append(_txn_batch([b"a"], 0), leader_epoch=0)  # 0
    log.append(_marker(commit=False), leader_epoch=0, coordinator=True)  # 1
    log.append(_txn_batch([b"b"], 1), leader_epoch=0)  # 2: still open
    if clean:
        log.close()
    else:
        log.flush()
        for path in tmp_path.joinpath("p").glob("*.snapshot"):
            path.unlink()  # as if the crash came before any snapshot: a full replay
        for path in tmp_path.joinpath("p").glob("*" + TXN_INDEX_SUFFIX):
            path.unlink()  # and the index was lost with it
    reopened = _open(tmp_path / "p", clean_shutdown=clean)
    assert reopened.aborted_transactions(0, 10) == [(PID, 0)]
    assert reopened.ongoing_transaction(PID)
    assert reopened.last_stable_offset(reopened.log_end_offset) == 2
    reopened.close()


def test_truncation_forgets_ranges_past_the_cut(tmp_path: Path) -> None:
    log = _open(tmp_path / "p")
    log.append(_txn_batch([b"a"], 0), leader_epoch=0)  # 0
    log.append(_marker(commit=False), leader_epoch=0, coordinator=True)  # 1
    assert log.aborted_transactions(0, 10) == [(PID, 0)]
    log.truncate_to(1)  # the marker goes: the transaction is open again
    assert log.aborted_transactions(0, 10) == []
    assert log.ongoing_transaction(PID)
    assert log.last_stable_offset(log.log_end_offset) == 0
    log.close()
    reopened = _open(tmp_path / "p")
    assert reopened.aborted_transactions(0, 10) == []
    reopened.close()


def test_compaction_keeps_a_committed_value_over_a_later_aborted_one(tmp_path: Path) -> None:
    from headrace.storage import LogManager
    from tests.support.batches import make_keyed_batch
    from tests.support.log_reads import read_records

    manager = LogManager(tmp_path / "data")
    manager.create_topic("c", 1, {"cleanup.policy": "compact", "segment.bytes": "400",
                                  "min.cleanable.dirty.ratio": "0.01"})
    log = manager.get_partition("c", 0)
    log.append(make_keyed_batch([(b"k", b"committed")]), leader_epoch=0)
    log.append(make_keyed_batch([(b"k", b"aborted")], producer_id=PID, producer_epoch=0,
                                base_sequence=0, attributes=0x10), leader_epoch=0)
    log.append(_marker(commit=False), leader_epoch=0, coordinator=True)
    for index in range(30):  # roll segments past the transaction so they are cleanable
        log.append(make_keyed_batch([(b"other-%d" % index, b"x" * 20)]), leader_epoch=0)
    tasks = manager.clean(now_ms=2**62)
    assert tasks and all(task.error is None for task in tasks)
    values = {r.value for r in read_records(log) if r.key == b"k"}
    assert b"committed" in values  # the aborted value did not replace it
    assert log.aborted_transactions(0, log.log_end_offset) == [(PID, 1)]
    manager.close()


def test_a_marker_from_an_older_coordinator_is_fenced(tmp_path: Path) -> None:
    from headrace.storage.errors import TransactionCoordinatorFencedError

    log = _open(tmp_path / "p")
    log.append(_txn_batch([b"a"], 0), leader_epoch=0)
    log.append(control_batch(PID, 0, commit=True, coordinator_epoch=5, timestamp_ms=1),
               leader_epoch=0, coordinator=True)
    log.append(_txn_batch([b"b"], 1), leader_epoch=0)
    zombie = control_batch(PID, 0, commit=False, coordinator_epoch=4, timestamp_ms=1)
    with pytest.raises(TransactionCoordinatorFencedError):
        log.append(zombie, leader_epoch=0, coordinator=True)
    assert log.ongoing_transaction(PID)  # the open transaction was not ended by the zombie
    log.close()
    reopened = _open(tmp_path / "p", clean_shutdown=True)  # the epoch is in the snapshot
    with pytest.raises(TransactionCoordinatorFencedError):
        reopened.append(zombie, leader_epoch=0, coordinator=True)
    reopened.close()
