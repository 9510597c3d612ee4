"""The transaction coordinator over real storage with a scripted marker writer: a coordinator
that loads ``__transaction_state`` completes the transactions it finds prepared, retries
markers until they land, and aborts transactions past their timeout."""

from __future__ import annotations

from pathlib import Path

from kio.schema.errors import ErrorCode

from headrace.groups.coordinator import CoordinatorNode
from headrace.storage import LogManager
from headrace.transactions.coordinator import TransactionConfig, TransactionCoordinator
from headrace.transactions.model import TxnState
from headrace.transactions.records import TRANSACTION_TOPIC
from tests.support.waiting import eventually_async

Marker = tuple[str, int, int, int, bool]


class ScriptedMarkers:
    def __init__(self) -> None:
        self.written: list[Marker] = []
        self.failing = False

    async def write_marker(self, topic: str, partition: int, producer_id: int,
                           producer_epoch: int, commit: bool, coordinator_epoch: int) -> ErrorCode:
        if self.failing:
            return ErrorCode.not_leader_or_follower
        self.written.append((topic, partition, producer_id, producer_epoch, commit))
        return ErrorCode.none


class Ids:
    def __init__(self) -> None:
        self.next = 100

    async def allocate(self) -> int:
        self.next += 1
        return self.next


def _coordinator(logs: LogManager, markers: ScriptedMarkers, clock: list[int] | None = None,
                 ) -> TransactionCoordinator:
    async def append(partition: int, batch: bytes) -> None:
        logs.get_partition(TRANSACTION_TOPIC, partition).append(
            batch, leader_epoch=0, coordinator=True)

    extra = {} if clock is None else {"wall_clock_ms": lambda: clock[0]}
    return TransactionCoordinator(
        logs, Ids(), markers, lambda group: 0, CoordinatorNode(1, "127.0.0.1", 9092),
        TransactionConfig(state_log_partitions=1, marker_retry_backoff_ms=10),
        append=append, **extra,  # type: ignore[arg-type]
    )


async def test_a_loading_coordinator_completes_a_prepared_commit(tmp_path: Path) -> None:
    logs = LogManager(tmp_path / "data")
    markers = ScriptedMarkers()
    first = _coordinator(logs, markers)
    first.ensure_topic()
    await first.load_partition(0)
    error, pid, epoch = await first.init_producer_id("tx", 60_000)
    assert (error, epoch) == (ErrorCode.none, 0)
    parts = frozenset({("out", 0), ("out", 1)})
    assert await first.add_partitions("tx", pid, epoch, parts) is ErrorCode.none
    markers.failing = True  # the markers cannot land: the commit stays prepared
    assert await first.end_txn("tx", pid, epoch, True) is ErrorCode.none
    assert first.transactions["tx"].state is TxnState.PREPARE_COMMIT
    await first.stop()  # the broker goes away with the commit prepared but not done
    assert not markers.written

    markers.failing = False
    second = _coordinator(logs, markers)
    await second.load_partition(0)
    await eventually_async(lambda: second.transactions["tx"].state is TxnState.COMPLETE_COMMIT,
                           timeout=10, message="the prepared commit completed")
    assert sorted(markers.written) == [("out", 0, pid, 0, True), ("out", 1, pid, 0, True)]
    await second.stop()

    third = _coordinator(logs, markers)  # and what it persisted is what a third one reads
    await third.load_partition(0)
    assert third.transactions["tx"].state is TxnState.COMPLETE_COMMIT
    await third.stop()
    logs.close()


async def test_a_timed_out_transaction_is_aborted_and_its_producer_fenced(
    tmp_path: Path,
) -> None:
    logs = LogManager(tmp_path / "data")
    markers = ScriptedMarkers()
    clock = [1_000_000]
    coordinator = _coordinator(logs, markers, clock)
    coordinator.ensure_topic()
    await coordinator.load_partition(0)
    _error, pid, epoch = await coordinator.init_producer_id("slow", 5_000)
    assert await coordinator.add_partitions("slow", pid, epoch, frozenset({("t", 0)})) is (
        ErrorCode.none)
    assert await coordinator.abort_timed_out() == []
    clock[0] += 5_001
    assert await coordinator.abort_timed_out() == ["slow"]
    await coordinator.wait_idle()
    assert markers.written == [("t", 0, pid, epoch + 1, False)]
    assert coordinator.transactions["slow"].state is TxnState.COMPLETE_ABORT
    assert await coordinator.end_txn("slow", pid, epoch, True) is ErrorCode.producer_fenced
    await coordinator.stop()
    logs.close()


async def test_transaction_timeout_is_bounded_and_ids_expire(tmp_path: Path) -> None:
    logs = LogManager(tmp_path / "data")
    clock = [1_000_000]
    coordinator = _coordinator(logs, ScriptedMarkers(), clock)
    coordinator.ensure_topic()
    await coordinator.load_partition(0)
    assert (await coordinator.init_producer_id("x", 900_001))[0] is (
        ErrorCode.invalid_transaction_timeout)
    assert (await coordinator.init_producer_id("x", 1000))[0] is ErrorCode.none
    clock[0] += coordinator.config.id_expiration_ms
    assert await coordinator.remove_expired() == ["x"]
    await coordinator.stop()
    reloaded = _coordinator(logs, ScriptedMarkers(), clock)
    await reloaded.load_partition(0)
    assert "x" not in reloaded.transactions  # the tombstone is what the log says
    await reloaded.stop()
    logs.close()
