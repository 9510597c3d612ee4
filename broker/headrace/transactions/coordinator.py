"""The asyncio transaction coordinator: the pure state machine plus the log, markers and timers.

It owns the transactional ids whose ``__transaction_state`` partition this broker leads (the
internal-topics registry calls :meth:`load_partition`/:meth:`unload_partition` as leadership
moves). Each request is decided by :mod:`headrace.transactions.model`, persisted through
:class:`~headrace.transactions.persistence.TxnLog`, and only then made current. An EndTxn is
answered once its Prepare state is durable; a background task then writes the COMMIT/ABORT
marker to every partition of the transaction through the :class:`MarkerWriter` (retrying each
until it lands) and persists the Complete state. A coordinator that loads a partition finishes
every prepared transaction it finds there, so a crash between the two steps loses nothing.

A timer aborts transactions open longer than their ``transaction.timeout.ms`` (fencing the
producer by bumping its epoch, as Kafka does) and forgets ids idle longer than
``transactional.id.expiration.ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kio.schema.errors import ErrorCode

from headrace.core.producer_ids import ProducerIdSource
from headrace.groups.coordinator import CoordinatorNode
from headrace.observability.transactions import TransactionStats
from headrace.storage import LogManagerAPI
from headrace.transactions import model
from headrace.transactions.model import TopicPartition, TxnMetadata, TxnState
from headrace.transactions.persistence import AppendHook, TxnLog
from headrace.transactions.records import TRANSACTION_TOPIC

log = logging.getLogger(__name__)

#: Marker write errors that mean "try again shortly" (leadership moving, replicas catching up).
_GIVE_UP_AFTER_UNKNOWN = 20


class MarkerWriter(Protocol):
    """Writes one transaction marker to a partition's leader (in-process or over Kafka)."""

    async def write_marker(
        self, topic: str, partition: int, producer_id: int, producer_epoch: int,
        commit: bool, coordinator_epoch: int,
    ) -> ErrorCode: ...


@dataclass(frozen=True, slots=True)
class TransactionConfig:
    """Kafka's ``transaction.*`` broker settings."""

    state_log_partitions: int = 50
    max_timeout_ms: int = 900_000
    id_expiration_ms: int = 604_800_000
    abort_timed_out_interval_ms: int = 10_000
    remove_expired_interval_ms: int = 3_600_000
    marker_retry_backoff_ms: int = 100


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class TransactionCoordinator:
    """Transactional ids of the ``__transaction_state`` partitions this broker leads."""

    def __init__(
        self,
        logs: LogManagerAPI,
        producer_ids: ProducerIdSource,
        markers: MarkerWriter,
        group_partition: Callable[[str], int],
        node: CoordinatorNode,
        config: TransactionConfig | None = None,
        *,
        append: AppendHook,
        wall_clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.config = config or TransactionConfig()
        self.node = node
        #: Who leads each ``__transaction_state`` partition (a cluster sets it).
        self.partition_leader: Callable[[int], CoordinatorNode | None] | None = None
        self._logs = logs
        self._producer_ids = producer_ids
        self._markers = markers
        self._group_partition = group_partition
        self._clock = wall_clock_ms
        self.log = TxnLog(logs, self.config.state_log_partitions, append=append,
                          wall_clock_ms=wall_clock_ms)
        self.transactions: dict[str, TxnMetadata] = {}
        self._busy: set[str] = set()  # ids with a state write in flight
        self._completions: dict[str, asyncio.Task[None]] = {}
        self._timer: asyncio.Task[None] | None = None
        #: How this broker's transactions ended (metrics).
        self.committed = self.aborted = self.timed_out = 0

    # ------------------------------------------------------------------ lifecycle

    def ensure_topic(self) -> None:
        if self._logs.topic(TRANSACTION_TOPIC) is None:
            self._logs.create_topic(TRANSACTION_TOPIC, self.config.state_log_partitions,
                                    configs={"cleanup.policy": "compact"})

    async def start(self) -> None:
        self.ensure_topic()
        self._timer = asyncio.create_task(self._run_timers(), name="transaction-timers")

    async def stop(self) -> None:
        tasks = [t for t in (self._timer, *self._completions.values()) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._timer = None
        self._completions.clear()
        for partition in self.log.owned_partitions():
            await self.unload_partition(partition)

    async def load_partition(self, partition: int, leader_epoch: int = 0) -> None:
        """Lead one ``__transaction_state`` partition: replay it, finish what was prepared."""
        loaded = await self.log.load(partition, leader_epoch)
        if loaded is None:
            return
        for txn_id, metadata in loaded.items():
            self.transactions[txn_id] = metadata
            if metadata.state.is_prepared:
                log.info("transaction %s: completing %s found on load", txn_id,
                         metadata.state.name)
                self._start_completion(txn_id)

    async def unload_partition(self, partition: int) -> None:
        self.log.unload(partition)
        for txn_id in [t for t in self.transactions if self.log.partition_for(t) == partition]:
            del self.transactions[txn_id]
            task = self._completions.pop(txn_id, None)
            if task is not None:
                task.cancel()

    def partition_for(self, transactional_id: str) -> int:
        return self.log.partition_for(transactional_id)

    def coordinator_for(self, transactional_id: str) -> CoordinatorNode | None:
        """FindCoordinator key type 1: the leader of the id's ``__transaction_state``
        partition (this broker unless a cluster says otherwise), None while it has none."""
        if self.partition_leader is None:
            return self.node
        return self.partition_leader(self.partition_for(transactional_id))

    # ------------------------------------------------------------------- requests

    async def init_producer_id(
        self, transactional_id: str, timeout_ms: int,
        producer_id: int = model.NO_PRODUCER_ID, producer_epoch: int = model.NO_EPOCH,
    ) -> tuple[ErrorCode, int, int]:
        """InitProducerId with a transactional id: (error, producer id, epoch)."""
        if timeout_ms <= 0 or timeout_ms > self.config.max_timeout_ms:
            return ErrorCode.invalid_transaction_timeout, -1, -1
        error = self._gate(transactional_id)
        if error is not ErrorCode.none:
            return error, -1, -1
        decision = model.decide_init(
            self.transactions.get(transactional_id), transactional_id, timeout_ms, self._clock(),
            expected_producer_id=producer_id, expected_epoch=producer_epoch,
        )
        if isinstance(decision, ErrorCode):
            return decision, -1, -1
        metadata = decision.metadata
        if decision.needs_new_producer_id:
            try:
                new_id = await self._producer_ids.allocate()
            except Exception as failure:  # the id source names its own Kafka error
                code = getattr(failure, "code", ErrorCode.coordinator_not_available)
                return ErrorCode(int(code)), -1, -1
            metadata = model.replace_producer(metadata, new_id)
        error = await self._persist(transactional_id, metadata)
        if error is not ErrorCode.none:
            return error, -1, -1
        if decision.abort_first:
            # The open transaction is being aborted under the bumped epoch; the client retries.
            self._start_completion(transactional_id)
            return ErrorCode.concurrent_transactions, -1, -1
        return ErrorCode.none, metadata.producer_id, metadata.producer_epoch

    async def add_partitions(
        self, transactional_id: str, producer_id: int, producer_epoch: int,
        partitions: frozenset[TopicPartition],
    ) -> ErrorCode:
        error = self._gate(transactional_id)
        if error is not ErrorCode.none:
            return error
        decision = model.decide_add_partitions(
            self.transactions.get(transactional_id), producer_id, producer_epoch, partitions,
            self._clock(),
        )
        if decision is None:
            return ErrorCode.none
        if isinstance(decision, ErrorCode):
            return decision
        return await self._persist(transactional_id, decision)

    async def add_offsets(
        self, transactional_id: str, producer_id: int, producer_epoch: int, group_id: str
    ) -> ErrorCode:
        """AddOffsetsToTxn: the group's ``__consumer_offsets`` partition joins the transaction,
        so the EndTxn marker reaches the group coordinator there."""
        partition = ("__consumer_offsets", self._group_partition(group_id))
        return await self.add_partitions(
            transactional_id, producer_id, producer_epoch, frozenset({partition})
        )

    def verify(
        self, transactional_id: str, producer_id: int, producer_epoch: int,
        partition: TopicPartition,
    ) -> ErrorCode:
        """KIP-890 part 1: may this producer write ``partition`` in its ongoing transaction?"""
        error = self.log.ownership_error(transactional_id)
        if error is not ErrorCode.none:
            return error
        current = self.transactions.get(transactional_id)
        error = model.check_producer(current, producer_id, producer_epoch)
        if error is not ErrorCode.none:
            return error
        assert current is not None
        if current.state is not TxnState.ONGOING or partition not in current.partitions:
            return ErrorCode.invalid_txn_state
        return ErrorCode.none

    async def end_txn(
        self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool,
        *, bump_epoch: bool = False,
    ) -> ErrorCode:
        """EndTxn; ``bump_epoch`` for a transaction version 2 client (KIP-890 part 2), which
        then goes on with :meth:`producer_after_end`."""
        error = self._gate(transactional_id)
        if error is not ErrorCode.none:
            return error
        decision = model.decide_end(
            self.transactions.get(transactional_id), producer_id, producer_epoch, commit,
            self._clock(), bump_epoch=bump_epoch,
        )
        metadata = decision.metadata
        if metadata is None:
            return decision.error
        if decision.needs_new_producer_id:
            try:
                next_id = await self._producer_ids.allocate()
            except Exception as failure:  # the id source names its own Kafka error
                return ErrorCode(int(getattr(failure, "code", ErrorCode.coordinator_not_available)))
            metadata = dataclasses.replace(metadata, next_producer_id=next_id)
        error = await self._persist(transactional_id, metadata)
        if error is ErrorCode.none:
            self._start_completion(transactional_id)
        return error

    def producer_after_end(self, transactional_id: str) -> tuple[int, int]:
        """The producer id and epoch an EndTxn v5 answers with, read right after
        :meth:`end_txn` (no await in between): (-1, -1) for an unknown id."""
        metadata = self.transactions.get(transactional_id)
        if metadata is None:
            return model.NO_PRODUCER_ID, model.NO_EPOCH
        return metadata.producer_after_end()

    def transaction_stats(self) -> TransactionStats:
        ongoing = sum(
            1 for m in self.transactions.values()
            if m.state is TxnState.ONGOING or m.state.is_prepared
        )
        return TransactionStats(ongoing, self.committed, self.aborted, self.timed_out)

    def now_ms(self) -> int:
        return self._clock()

    def describe(self, transactional_id: str) -> TxnMetadata | None:
        return self.transactions.get(transactional_id)

    # ----------------------------------------------------------------- internals

    def _gate(self, transactional_id: str) -> ErrorCode:
        error = self.log.ownership_error(transactional_id)
        if error is not ErrorCode.none:
            return error
        if transactional_id in self._busy:
            return ErrorCode.concurrent_transactions
        return ErrorCode.none

    async def _persist(self, transactional_id: str, metadata: TxnMetadata | None) -> ErrorCode:
        self._busy.add(transactional_id)
        try:
            error = await self.log.write(transactional_id, metadata)
        finally:
            self._busy.discard(transactional_id)
        if error is ErrorCode.none:
            if metadata is None:
                self.transactions.pop(transactional_id, None)
            elif self.log.ownership_error(transactional_id) is ErrorCode.none:
                self.transactions[transactional_id] = metadata
        return error

    def _start_completion(self, transactional_id: str) -> None:
        if transactional_id in self._completions:
            return
        task = asyncio.create_task(self._complete(transactional_id),
                                   name=f"transaction-markers-{transactional_id}")
        self._completions[transactional_id] = task
        task.add_done_callback(lambda _t: self._completions.pop(transactional_id, None))

    async def _complete(self, transactional_id: str) -> None:
        """Write every marker of a prepared transaction, then persist its Complete state."""
        backoff = self.config.marker_retry_backoff_ms / 1000
        while True:
            prepared = self.transactions.get(transactional_id)
            if prepared is None or not prepared.state.is_prepared:
                return
            commit = prepared.state is TxnState.PREPARE_COMMIT
            epoch = self.log.coordinator_epoch(self.partition_for(transactional_id))
            pending = sorted(prepared.partitions)
            unknown: dict[TopicPartition, int] = {}
            while pending:
                failed = []
                for topic, partition in pending:
                    try:
                        error = await self._markers.write_marker(
                            topic, partition, prepared.producer_id, prepared.producer_epoch,
                            commit, epoch,
                        )
                    except Exception as failure:
                        log.warning("marker to %s-%d failed: %s", topic, partition, failure)
                        error = ErrorCode.unknown_server_error
                    if error is ErrorCode.transaction_coordinator_fenced:
                        log.warning("transaction %s: a newer coordinator wrote to %s-%d; "
                                    "leaving the transaction to it", transactional_id, topic,
                                    partition)
                        return
                    if error is ErrorCode.unknown_topic_or_partition:
                        unknown[(topic, partition)] = unknown.get((topic, partition), 0) + 1
                        if unknown[(topic, partition)] >= _GIVE_UP_AFTER_UNKNOWN:
                            log.warning("transaction %s: %s-%d is gone; no marker written",
                                        transactional_id, topic, partition)
                            continue
                    if error is not ErrorCode.none:
                        failed.append((topic, partition))
                pending = failed
                if pending:
                    await asyncio.sleep(backoff)
                    if self.transactions.get(transactional_id) is not prepared:
                        break  # unloaded or replaced: the new owner finishes it
            if pending:
                continue
            done = model.complete(prepared, self._clock())
            if await self._persist(transactional_id, done) is ErrorCode.none:
                log.debug("transaction %s: %s", transactional_id, done.state.name)
                if commit:
                    self.committed += 1
                else:
                    self.aborted += 1
                return
            if self.log.ownership_error(transactional_id) is not ErrorCode.none:
                return
            await asyncio.sleep(backoff)

    async def _run_timers(self) -> None:
        interval = self.config.abort_timed_out_interval_ms / 1000
        last_expiry = self._clock()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.abort_timed_out()
                now = self._clock()
                if now - last_expiry >= self.config.remove_expired_interval_ms:
                    last_expiry = now
                    await self.remove_expired()
            except Exception:
                log.exception("transaction timer failed")

    async def abort_timed_out(self) -> list[str]:
        """Abort (fencing the producer) every transaction open longer than its timeout."""
        now = self._clock()
        aborted = []
        for txn_id, metadata in list(self.transactions.items()):
            if txn_id in self._busy or not model.timed_out(metadata, now):
                continue
            log.info("transaction %s timed out after %d ms: aborting", txn_id,
                     metadata.timeout_ms)
            if await self._persist(txn_id, model.fence(metadata, now)) is ErrorCode.none:
                self._start_completion(txn_id)
                aborted.append(txn_id)
                self.timed_out += 1
        return aborted

    async def remove_expired(self) -> list[str]:
        """Forget ids idle beyond ``transactional.id.expiration.ms`` (a tombstone each)."""
        now = self._clock()
        removed = []
        for txn_id, metadata in list(self.transactions.items()):
            if txn_id in self._busy or not model.expired(
                metadata, now, self.config.id_expiration_ms
            ):
                continue
            if await self._persist(txn_id, None) is ErrorCode.none:
                removed.append(txn_id)
        return removed

    async def wait_idle(self) -> None:
        """Until no marker task runs (tests and orderly shutdown)."""
        while self._completions:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(list(self._completions.values()))
