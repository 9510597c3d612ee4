"""Topic changes on a cluster member: written to etcd (the source of truth), followed locally.

See :class:`ClusterTopicManager` for how local logs, etcd writes and the metadata watch stay in
step, and :func:`place_partitions` for replica placement of new partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.cluster.decisions import initial_states, round_robin_assignment
from headrace.cluster.model import (
    ClusterSnapshot,
    PartitionState,
    TopicRecord,
)
from headrace.cluster.store import EtcdMetadataStore
from headrace.cluster.topic_writes import TopicWrites, WriteDone
from headrace.core.errors import KafkaError
from headrace.core.gc_pauses import LONG_LIVED
from headrace.core.topics import (
    DEFAULT_MAX_BROKER_PARTITIONS,
    DEFAULT_MAX_TOPIC_PARTITIONS,
    ConfigChange,
    TopicManager,
    TopicSpec,
    storage_errors,
)
from headrace.storage import LogManagerAPI, NewPartitions, StorageError, TopicMetadata

log = logging.getLogger(__name__)


@dataclass
class _LocalChange:
    """A local creation or deletion whose etcd write or watch echo is still to come."""

    topic_id: uuid.UUID
    #: The etcd revision that records it, once written (creations); None before.
    revision: int | None = None
    written: bool = False


@dataclass(frozen=True, slots=True)
class _Plan:
    """A topic about to be created: its metadata, and its etcd record and partition states
    (None and empty when only validated)."""

    meta: TopicMetadata
    record: TopicRecord | None
    states: list[PartitionState]


class ClusterTopicManager(TopicManager):
    """Topic changes go to etcd (the source of truth); local logs follow via the watch.

    The handlers' API is synchronous, so creations and deletions are applied to the local logs
    at once (Kafka clients retry until leaders are elected, as with Kafka's own asynchronous
    topic creation) and written to etcd in the background, one name's writes in the order they
    were made. Until etcd and then the cached metadata confirm such a local change, the watch
    neither undoes it nor replays the older state over it; a creation etcd refused (another
    broker won the name) or that failed is removed again, so the cluster's topic (if any) takes
    its place and a retry can create it. Config changes are not applied locally at all: they are
    written to etcd and the local config follows the watch, so a failed write changes nothing;
    the request that made one awaits its write (:meth:`committed`) and reports a failure.
    """

    def __init__(
        self,
        logs: LogManagerAPI,
        store: EtcdMetadataStore,
        *,
        default_partitions: int,
        default_replication_factor: int,
        follow_metadata: Callable[[], None],
        max_broker_partitions: int = DEFAULT_MAX_BROKER_PARTITIONS,
        max_topic_partitions: int = DEFAULT_MAX_TOPIC_PARTITIONS,
    ) -> None:
        super().__init__(
            logs,
            default_partitions=default_partitions,
            default_replication_factor=default_replication_factor,
            live_brokers=lambda: max(1, len(store.cache.brokers)),
            max_broker_partitions=max_broker_partitions,
            max_topic_partitions=max_topic_partitions,
        )
        self._store = store
        self._default_replication_factor = default_replication_factor
        self._follow_metadata = follow_metadata
        self._writes = TopicWrites()
        self._creations: dict[str, _LocalChange] = {}
        self._deletions: dict[str, _LocalChange] = {}
        #: The outcome of the latest write of each name, until its request collects it.
        self._stored: dict[str, asyncio.Future[None]] = {}

    def pending(self, name: str) -> bool:
        """Whether a write of topic ``name`` to etcd is queued or running."""
        return self._writes.pending(name)

    async def settled(self) -> None:
        """Wait until every topic write made so far has reached etcd or failed."""
        await self._writes.settled()

    def _write(
        self, name: str, write: Callable[[], Awaitable[Any]], done: WriteDone | None = None
    ) -> None:
        def finished(outcome: Any) -> None:
            if done is not None:
                done(outcome)
            self._follow_metadata()

        self._writes.submit(name, write, finished)

    # -- what the metadata watch must leave alone ---------------------------------------------

    def creation_unconfirmed(self, name: str, topic_id: uuid.UUID) -> bool:
        """Whether our local creation of ``name`` as ``topic_id`` has not reached the cached
        metadata yet (the watch must neither replace nor delete that local log)."""
        creation = self._creations.get(name)
        if creation is None or creation.topic_id != topic_id:
            return False
        revision = creation.revision
        if revision is not None and self._store.cache.revision >= revision:
            del self._creations[name]
            return False
        return True

    def deletion_unconfirmed(self, name: str, topic_id: uuid.UUID) -> bool:
        """Whether we deleted ``name`` (as ``topic_id``) locally and the cached metadata may
        still show it from before the deletion (the watch must not re-create it)."""
        deletion = self._deletions.get(name)
        return deletion is not None and deletion.topic_id == topic_id

    def forget_confirmed_deletions(self, snapshot: ClusterSnapshot) -> None:
        for name, deletion in list(self._deletions.items()):
            record = snapshot.topics.get(name)
            if deletion.written and (record is None or record.topic_id != deletion.topic_id.hex):
                del self._deletions[name]

    # -- TopicManager ----------------------------------------------------------------------------

    def get(self, name: str) -> TopicMetadata | None:
        local = super().get(name)
        if local is not None:
            return local
        record = self._store.cache.topics.get(name)
        if record is None:
            return None
        count = max(record.assignment, default=-1) + 1
        return TopicMetadata(name, uuid.UUID(record.topic_id), count, dict(record.configs))

    def plan_topic(
        self,
        name: str,
        partitions: int,
        replication: int,
        configs: Mapping[str, str],
        topic_id: uuid.UUID,
        snapshot: ClusterSnapshot,
    ) -> tuple[TopicRecord, list[PartitionState]]:
        assignment = place_partitions(snapshot, partitions, replication)
        record = TopicRecord(name, topic_id.hex, assignment, dict(configs))
        return record, initial_states(record, snapshot.brokers, range(partitions))

    def create(self, spec: TopicSpec, *, validate_only: bool = False) -> TopicMetadata:
        """Create one topic's local log on the calling thread and write it to etcd in the
        background (tests, tools; requests use :meth:`create_many`)."""
        plan = self._plan(spec, self._store.snapshot(), validate_only=validate_only)
        if validate_only:
            return plan.meta
        with storage_errors(f"creating topic {spec.name!r}"):
            created = self._logs.create_topic(
                spec.name, plan.meta.partitions, plan.meta.configs, plan.meta.topic_id)
        self._publish(plan)
        return created

    def _plan(
        self, spec: TopicSpec, snapshot: ClusterSnapshot, *, validate_only: bool = False,
        planned: int = 0,
    ) -> _Plan:
        """Check ``spec`` and place its partitions; raises KafkaError."""
        live = max(1, len(snapshot.brokers))
        if spec.replication_factor == -1:
            self.default_replication_factor = min(
                self._default_replication_factor, live
            )
        if spec.name in snapshot.topics:
            raise KafkaError(ErrorCode.topic_already_exists, f"topic {spec.name!r} already exists")
        partitions, configs = self.check_spec(spec, planned=planned)
        replication = (
            self.default_replication_factor
            if spec.replication_factor == -1
            else spec.replication_factor
        )
        if validate_only:
            return _Plan(TopicMetadata(spec.name, uuid.UUID(int=0), partitions, configs),
                         None, [])
        topic_id = uuid.uuid4()
        try:
            record, states = self.plan_topic(
                spec.name, partitions, replication, configs, topic_id, snapshot
            )
        except ValueError as error:
            raise KafkaError(ErrorCode.invalid_replication_factor, str(error)) from error
        return _Plan(TopicMetadata(spec.name, topic_id, partitions, configs), record, states)

    def _publish(self, plan: _Plan) -> None:
        """Write a topic whose local log exists to etcd, in the background."""
        record, states, topic_id = plan.record, plan.states, plan.meta.topic_id
        assert record is not None
        name = plan.meta.name
        self._creations[name] = _LocalChange(topic_id)

        settle = self._track(name)

        def written(outcome: Any) -> None:
            landed = isinstance(outcome, int) and outcome > 0
            settle(outcome if landed or isinstance(outcome, BaseException) else KafkaError(
                ErrorCode.topic_already_exists, f"topic {name!r} already exists"))
            creation = self._creations.get(name)
            if creation is None or creation.topic_id != topic_id:
                return  # deleted (or re-created) locally since
            if landed:
                creation.revision = outcome
                creation.written = True
            else:
                del self._creations[name]
                self._remove_refused_creation(name, topic_id)

        self._write(name, lambda: self._store.create_topic(record, states), written)

    async def create_many(
        self, specs: Sequence[TopicSpec], *, validate_only: bool = False
    ) -> list[TopicMetadata | KafkaError]:
        """Create a batch of topics: each spec checked and placed on its own, the valid ones'
        local logs made together off the event loop (one metadata fsync), then written to
        etcd, where creations of one turn of the loop share transactions
        (:mod:`headrace.cluster.create_batches`). One result per spec, in order."""
        snapshot = self._store.snapshot()
        results: list[TopicMetadata | KafkaError] = []
        plans: list[_Plan] = []
        names: set[str] = set()
        planned = 0
        for spec in specs:
            try:
                if spec.name in names:  # the first entry creates it
                    raise KafkaError(ErrorCode.topic_already_exists,
                                     f"topic {spec.name!r} already exists")
                plan = self._plan(spec, snapshot, validate_only=validate_only, planned=planned)
            except KafkaError as error:
                results.append(error)
                continue
            names.add(spec.name)
            planned += plan.meta.partitions
            results.append(plan.meta)
            plans.append(plan)
        if validate_only or not plans:
            return results
        failure = await self._make_logs([NewPartitions(plan.meta) for plan in plans])
        if failure is not None:
            return [failure if isinstance(r, TopicMetadata) and r.name in names else r
                    for r in results]
        for plan in plans:
            self._publish(plan)
        return results

    def _remove_refused_creation(self, name: str, topic_id: uuid.UUID) -> None:
        """etcd refused (the name was taken) or failed our creation: drop the local log."""
        record = self._store.cache.topics.get(name)
        if record is not None and record.topic_id == topic_id.hex:
            return  # it did land (a write that timed out after etcd applied it)
        local = self._logs.topic(name)
        if local is not None and local.topic_id == topic_id:
            log.warning("topic %s (id %s) was not created in the cluster; removing its log",
                        name, topic_id)
            with contextlib.suppress(StorageError):
                self._logs.delete_topic(name)

    def delete(self, name: str) -> None:
        topic = self.require(name)
        self._creations.pop(name, None)
        with contextlib.suppress(StorageError):
            self._logs.delete_topic(name)
        LONG_LIVED.thaw()  # its objects may form cycles the frozen generation would keep
        deletion = self._deletions[name] = _LocalChange(topic.topic_id)

        settle = self._track(name)

        def written(outcome: Any) -> None:
            settle(outcome)  # False (etcd had no such topic) is gone all the same
            if self._deletions.get(name) is not deletion:
                return
            if isinstance(outcome, BaseException):
                del self._deletions[name]  # etcd still has it: the watch brings it back
            else:
                deletion.written = True

        self._write(name, lambda: self._store.delete_topic(name), written)

    def add_partitions(
        self, name: str, total: int, *, validate_only: bool = False
    ) -> TopicMetadata:
        record = self._store.cache.topics.get(name)
        updated = super().add_partitions(name, total, validate_only=validate_only)
        if validate_only or (record is None and name not in self._creations):
            self._stored.pop(name, None)  # nothing written now: no earlier outcome to report
            return updated

        def grow(record: TopicRecord) -> tuple[TopicRecord, list[PartitionState]] | None:
            snapshot = self._store.snapshot()
            current = max(record.assignment, default=-1) + 1
            if current >= total:
                return None
            replication = len(next(iter(record.assignment.values()), ())) or 1
            extra = place_partitions(
                snapshot, total - current, replication, existing=record.assignment,
                first_partition=current,
            )
            new_record = TopicRecord(
                name, record.topic_id, {**record.assignment, **extra}, dict(record.configs)
            )
            return new_record, initial_states(new_record, snapshot.brokers, range(current, total))

        # Derived from etcd's current record at write time, not the cached one, which may
        # not yet show a change just made (a stale copy would drop that change). False (no
        # change: the partitions were already there) counts as stored.
        self._write(name, lambda: self._store.modify_topic(name, grow), self._track(name))
        return updated

    def set_configs(
        self, name: str, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> None:
        wanted = dict(configs)
        self.update_configs(name, lambda _current: wanted, validate_only=validate_only)

    def update_configs(
        self, name: str, change: ConfigChange, *, validate_only: bool = False
    ) -> None:
        """Write ``change(overrides)`` to etcd, applied to the record etcd holds at write time
        (so back-to-back changes compose); the local config follows the watch."""
        self.check_configs(name, change(self.require(name).configs))
        if validate_only:
            return

        def reconfigure(record: TopicRecord) -> tuple[TopicRecord, list[PartitionState]]:
            configs = dict(change(record.configs))
            return TopicRecord(name, record.topic_id, record.assignment, configs), []

        settle = self._track(name)

        def written(outcome: Any) -> None:
            if outcome is False:  # the record was gone: the topic was deleted meanwhile
                outcome = KafkaError(
                    ErrorCode.unknown_topic_or_partition, f"topic {name!r} was deleted")
            settle(outcome)

        self._write(name, lambda: self._store.modify_topic(name, reconfigure), written)

    def _track(self, name: str) -> Callable[[Any], None]:
        """Let the request making a change of ``name`` await its write (:meth:`committed`);
        the returned function settles it with the write's outcome: an exception (or a
        KafkaError saying what the client should hear) fails it, anything else stores it."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stored.add_done_callback(lambda f: f.cancelled() or f.exception())  # never unretrieved
        self._stored[name] = stored

        def settle(outcome: Any) -> None:
            if stored.done():
                return
            if isinstance(outcome, KafkaError):
                stored.set_exception(outcome)
            elif isinstance(outcome, BaseException):
                stored.set_exception(KafkaError(
                    ErrorCode.request_timed_out,
                    f"the change of topic {name!r} could not be stored in the cluster "
                    f"metadata (etcd): {outcome!r}"))
            else:
                stored.set_result(None)

        return settle

    async def committed(self, name: str) -> None:
        # The request that made a change collects it right away, before any other change of
        # the name: the future found here is that change's.
        stored = self._stored.get(name)
        if stored is None:
            return
        try:
            await asyncio.shield(stored)
        finally:
            if self._stored.get(name) is stored and stored.done():
                del self._stored[name]


def place_partitions(
    snapshot: ClusterSnapshot,
    count: int,
    replication: int,
    *,
    existing: Mapping[int, tuple[int, ...]] | None = None,
    first_partition: int = 0,
) -> dict[int, tuple[int, ...]]:
    """Zone-aware placement over the live brokers, balanced against the other topics' load."""
    brokers = [r for r in snapshot.brokers.values() if not r.shutting_down]
    if replication > len(brokers):
        raise ValueError(f"replication factor {replication} > {len(brokers)} live brokers")
    try:
        from headrace.placement import BrokerSlot, load_of, place_new_partitions
    except ImportError:  # placement not available: Kafka's rack-interleaved round robin
        return round_robin_assignment(brokers, count, replication, first_partition)
    load, leader_load = load_of(t.assignment for t in snapshot.topics.values())
    placed = place_new_partitions(
        [BrokerSlot(r.broker_id, r.rack) for r in sorted(brokers, key=lambda r: r.broker_id)],
        count,
        replication,
        existing={p: list(r) for p, r in (existing or {}).items()},
        first_partition=first_partition,
        load=load,
        leader_load=leader_load,
    )
    return {p: tuple(r) for p, r in placed.items()}
