"""KIP-890 part 2 (transaction version 2) in the coordinator's state machine and log: EndTxn
bumps the epoch (the markers and the next transaction carry the new one, a late write of the
old one is fenced), a retried EndTxn is recognised by the epoch before the bump, an abort of
nothing only bumps, and an exhausted epoch moves the producer to a new id. Then the same over
real storage, where the v1 ``__transaction_state`` value survives a reload, and the produce
path, where the next transaction's first write waits for the last one's marker."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

from kio.schema.errors import ErrorCode

from headrace import record
from headrace.core.turns import Turns
from headrace.server.handlers.produce import _open_and_append, _verify_transactional
from headrace.storage import LogConfig, LogManager, PartitionLog, control_batch
from headrace.transactions import model, records
from headrace.transactions.model import MAX_EPOCH, TxnMetadata, TxnState
from tests.transactions.test_coordinator import ScriptedMarkers, _coordinator

NOW = 1_000_000
PID = 1000
PARTS = frozenset({("out", 0), ("out", 1)})


def _ongoing(epoch: int = 0) -> TxnMetadata:
    empty = TxnMetadata("t", 7, epoch, 60_000, last_update_ms=NOW)
    added = model.decide_add_partitions(empty, 7, epoch, PARTS, NOW + 1)
    assert isinstance(added, TxnMetadata)
    return added


def test_end_txn_of_a_version_2_client_bumps_the_epoch_for_markers_and_what_follows() -> None:
    end = model.decide_end(_ongoing(), 7, 0, True, NOW + 2, bump_epoch=True)
    prepared = end.metadata
    assert prepared is not None and not end.needs_new_producer_id
    assert (prepared.state, prepared.producer_epoch, prepared.client_version) == (
        TxnState.PREPARE_COMMIT, 1, 2)
    assert prepared.producer_after_end() == (7, 1)
    done = model.complete(prepared, NOW + 3)
    assert (done.state, done.producer_id, done.producer_epoch) == (TxnState.COMPLETE_COMMIT, 7, 1)
    # A write of the finished transaction arriving late (its epoch 0) is fenced ...
    assert model.decide_add_partitions(done, 7, 0, PARTS, NOW + 4) is ErrorCode.producer_fenced
    # ... and the next transaction, at epoch 1, starts.
    following = model.decide_add_partitions(done, 7, 1, PARTS, NOW + 4)
    assert isinstance(following, TxnMetadata) and following.state is TxnState.ONGOING


def test_a_version_1_end_keeps_the_epoch() -> None:
    end = model.decide_end(_ongoing(), 7, 0, True, NOW + 2)
    assert end.metadata is not None
    assert (end.metadata.producer_epoch, end.metadata.client_version) == (0, 0)


def test_a_retried_version_2_end_is_known_by_the_epoch_before_the_bump() -> None:
    prepared = model.decide_end(_ongoing(), 7, 0, False, NOW, bump_epoch=True).metadata
    assert prepared is not None
    # While the markers go out: retry later; once complete: success, the same outcome only.
    retry = model.decide_end(prepared, 7, 0, False, NOW, bump_epoch=True)
    assert (retry.metadata, retry.error) == (None, ErrorCode.concurrent_transactions)
    done = model.complete(prepared, NOW)
    assert model.decide_end(done, 7, 0, False, NOW, bump_epoch=True) == model.EndDecision(None)
    opposite = model.decide_end(done, 7, 0, True, NOW, bump_epoch=True)
    assert opposite.metadata is None and opposite.error is ErrorCode.producer_fenced
    # An epoch older still is a zombie.
    older = model.decide_end(replace(done, producer_epoch=5), 7, 3, False, NOW,
                             bump_epoch=True)
    assert older.error is ErrorCode.producer_fenced


def test_a_version_2_abort_of_nothing_bumps_the_epoch_to_fence_writes_in_flight() -> None:
    empty = TxnMetadata("t", 7, 4, 60_000, last_update_ms=NOW)
    end = model.decide_end(empty, 7, 4, False, NOW, bump_epoch=True)
    assert end.metadata is not None
    assert (end.metadata.state, end.metadata.producer_epoch, end.metadata.partitions) == (
        TxnState.PREPARE_ABORT, 5, frozenset())
    # A version 1 client aborting nothing is refused, as before.
    assert model.decide_end(empty, 7, 4, False, NOW).error is ErrorCode.invalid_txn_state


def test_an_exhausted_epoch_moves_the_producer_to_its_next_id() -> None:
    end = model.decide_end(_ongoing(MAX_EPOCH), 7, MAX_EPOCH, True, NOW, bump_epoch=True)
    assert end.needs_new_producer_id and end.metadata is not None
    assert end.metadata.producer_epoch == MAX_EPOCH + 1  # Short.MAX_VALUE: the markers' epoch
    prepared = replace(end.metadata, next_producer_id=8)
    assert prepared.producer_after_end() == (8, 0)
    done = model.complete(prepared, NOW)
    assert (done.producer_id, done.producer_epoch, done.next_producer_id) == (8, 0, -1)


def test_version_2_state_is_logged_as_kafkas_flexible_value_v1() -> None:
    prepared = TxnMetadata("t", 7, 32767, 60_000, TxnState.PREPARE_COMMIT, PARTS, NOW, NOW + 5,
                           next_producer_id=8, client_version=2)
    encoded = records.encode_value(prepared)
    assert encoded[:2] == b"\x00\x01"
    assert records.decode_value("t", encoded) == prepared
    # Version 1 state keeps the v0 layout earlier brokers read.
    plain = TxnMetadata("t", 7, 3, 60_000, TxnState.ONGOING, PARTS, NOW, NOW + 5)
    assert records.encode_value(plain)[:2] == b"\x00\x00"
    assert records.decode_value("t", records.encode_value(plain)) == plain


async def test_a_version_2_producer_commits_under_bumped_epochs_across_a_reload(
    tmp_path: Path,
) -> None:
    logs = LogManager(tmp_path / "data")
    markers = ScriptedMarkers()
    coordinator = _coordinator(logs, markers)
    coordinator.ensure_topic()
    await coordinator.load_partition(0)
    error, pid, epoch = await coordinator.init_producer_id("tx", 60_000)
    assert (error, epoch) == (ErrorCode.none, 0)
    for transaction in range(3):
        # Produce v12 adds the partitions through the verifier (add=True): add_partitions.
        assert await coordinator.add_partitions("tx", pid, epoch, PARTS) is ErrorCode.none
        assert await coordinator.end_txn("tx", pid, epoch, True, bump_epoch=True) is (
            ErrorCode.none)
        assert coordinator.producer_after_end("tx") == (pid, epoch + 1)
        await coordinator.wait_idle()
        # The markers carry the bumped epoch.
        assert {m[3] for m in markers.written[-2:]} == {epoch + 1}, markers.written
        epoch += 1
        assert coordinator.transactions["tx"].state is TxnState.COMPLETE_COMMIT
        # The end's answer was lost: the retry, with the old epoch, is a success.
        assert await coordinator.end_txn("tx", pid, epoch - 1, True, bump_epoch=True) is (
            ErrorCode.none)
        assert coordinator.producer_after_end("tx") == (pid, epoch), transaction
    await coordinator.stop()

    reloaded = _coordinator(logs, ScriptedMarkers())
    await reloaded.load_partition(0)
    state = reloaded.transactions["tx"]
    assert (state.producer_id, state.producer_epoch, state.client_version) == (pid, 3, 2)
    assert await reloaded.add_partitions("tx", pid, 2, PARTS) is ErrorCode.producer_fenced
    await reloaded.stop()


class _Verifier:
    """The coordinator as the produce path sees it: still writing the last markers."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, bool]] = []

    async def verify(self, transactional_id: str, producer_id: int, producer_epoch: int,
                     topic: str, partition: int, *, add: bool = False) -> ErrorCode:
        self.asked.append((producer_epoch, add))
        return ErrorCode.concurrent_transactions


async def test_a_bumped_write_waits_until_the_last_transactions_marker_is_in(
    tmp_path: Path,
) -> None:
    """The partition still holds the epoch-0 transaction (its commit marker not yet written):
    the epoch-1 batch of the next transaction must not slip into it unverified; the coordinator
    is asked to add the partition and answers "retry" until the marker is in."""
    log = PartitionLog(tmp_path / "p", "out", 0, LogConfig(segment_bytes=1 << 16))
    log.append(_txn_batch(0), leader_epoch=0)
    assert log.ongoing_transaction(PID, 0) and not log.ongoing_transaction(PID, 1)
    verifier = _Verifier()
    broker = SimpleNamespace(replicas=SimpleNamespace(log=lambda topic, partition: log),
                             transaction_verifier=verifier)
    same = await _verify_transactional(broker, "tx", "out", 0, (PID, 0), add=True)
    assert same is None and verifier.asked == []  # part of the open transaction: no question
    refusal = await _verify_transactional(broker, "tx", "out", 0, (PID, 1), add=True)
    assert refusal is not None and refusal.code is ErrorCode.concurrent_transactions
    assert verifier.asked == [(1, True)]
    log.append(control_batch(PID, 1, commit=True, coordinator_epoch=0, timestamp_ms=1),
               leader_epoch=0, coordinator=True)
    assert not log.ongoing_transaction(PID)


def _txn_batch(epoch: int, sequence: int = 0) -> bytes:
    plain = record.build_batch([(1, None, b"v", ())])
    header = record.parse_header(plain)
    return record.pack_batch(plain[61:], header.record_count, header.last_offset_delta,
                             header.base_timestamp, header.max_timestamp, attributes=0x10,
                             producer_id=PID, producer_epoch=epoch, base_sequence=sequence)


async def test_pipelined_writes_wait_behind_the_first_write_of_a_transaction(
    tmp_path: Path,
) -> None:
    """Two pipelined batches open a transaction in a partition while the coordinator is slow
    to answer the first: the second must not overtake it (its sequence check would fail)."""
    log = PartitionLog(tmp_path / "p", "out", 0, LogConfig(segment_bytes=1 << 16))
    answer = asyncio.Event()
    asked: list[int] = []

    class SlowVerifier:
        async def verify(self, transactional_id: str, producer_id: int, producer_epoch: int,
                         topic: str, partition: int, *, add: bool = False) -> ErrorCode:
            asked.append(producer_epoch)
            await answer.wait()
            return ErrorCode.none

    async def produce(topic: str, partition: int, records: bytes, *, acks: int) -> object:
        return log.append(records, leader_epoch=0)

    broker = SimpleNamespace(replicas=SimpleNamespace(log=lambda topic, partition: log),
                             transaction_verifier=SlowVerifier(), produce=produce,
                             transactional_first_writes=Turns())
    first = asyncio.create_task(_open_and_append(
        broker, "tx", "out", 0, _txn_batch(0, sequence=0), (PID, 0), acks=-1, add=True))
    second = asyncio.create_task(_open_and_append(
        broker, "tx", "out", 0, _txn_batch(0, sequence=1), (PID, 0), acks=-1, add=True))
    await asyncio.sleep(0.01)
    assert asked == [0] and not second.done()  # waiting its turn, not asking, not appending
    answer.set()
    await asyncio.gather(first, second)
    assert asked == [0]  # the second found the transaction open: no second question
    assert log.log_end_offset == 2
