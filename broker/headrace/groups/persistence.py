"""This broker's share of ``__consumer_offsets``: the partitions it leads, and their records.

The coordinator leads a partition (at a leader epoch) once it has replayed it: offsets and
group metadata go back into the state machine in log order, so a restart or a leadership move
restores every group. While leading, every commit, settled group and tombstone is written to
that partition through the normal append path (or the broker's append hook, which replicates).

A group's stored metadata carries the wall-clock moment it became Empty, which offset
retention counts from; :class:`GroupLog` keeps that moment per group across stores and loads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from kio.schema.errors import ErrorCode

from headrace.groups import records
from headrace.groups.model import CommittedOffset, Group, GroupState, JoinProtocol, Member
from headrace.groups.partitioning import OFFSETS_TOPIC, offsets_partition_for
from headrace.groups.records import (
    ConsumerGroupKey,
    ConsumerGroupValue,
    GroupKey,
    GroupValue,
    OffsetKey,
    OffsetValue,
    StoredMember,
)
from headrace.groups.state import GroupStateMachine
from headrace.storage import LogManagerAPI

log = logging.getLogger(__name__)

AppendHook = Callable[[int, bytes], Awaitable[None]]
#: Rebuilds (or, given None, forgets) a KIP-848 group from its stored record.
ConsumerGroupRestorer = Callable[[str, bytes | None], None]
Entries = list[tuple[records.Key, records.Value | None]]


class GroupLog:
    """Loads, writes and tracks ownership of the offsets partitions for one state machine."""

    def __init__(
        self,
        logs: LogManagerAPI,
        machine: GroupStateMachine,
        partitions: int,
        *,
        append: AppendHook | None,
        clock_ms: Callable[[], int],
        wall_clock_ms: Callable[[], int],
        restore_consumer_group: ConsumerGroupRestorer | None = None,
    ) -> None:
        self._logs = logs
        self._restore_consumer_group = restore_consumer_group
        self._machine = machine
        self._partitions = partitions
        self._append_hook = append
        self._clock_ms = clock_ms
        self._wall_clock_ms = wall_clock_ms
        self._owned: dict[int, int] = {}  # partition -> leader epoch
        self._replaying = -1
        self._loading: set[int] = set()
        #: group -> (generation, wall-clock ms) of its latest transition to Empty; every such
        #: transition bumps the generation, so a stale entry is recognisable
        self._empty_since: dict[str, tuple[int, int]] = {}
        #: (group, producer id) -> offsets a transaction committed, applied by its COMMIT
        #: marker and dropped by its ABORT marker (TxnOffsetCommit, KIP-98/KIP-447)
        self.pending_txn: dict[tuple[str, int], dict[tuple[str, int], CommittedOffset]] = {}

    def ensure_topic(self) -> None:
        if self._logs.topic(OFFSETS_TOPIC) is None:
            # Compacted, as in Kafka: the cleaner keeps the latest record per key, and
            # time/size retention never deletes live commits.
            self._logs.create_topic(
                OFFSETS_TOPIC, self._partitions, configs={"cleanup.policy": "compact"}
            )

    # -------------------------------------------------------------------- ownership

    def partition_for(self, group_id: str) -> int:
        return offsets_partition_for(group_id, self._partitions)

    def owned_partitions(self) -> list[int]:
        return list(self._owned)

    def ownership_error(self, group_id: str) -> ErrorCode:
        """NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / NONE for a request about a group."""
        partition = self.partition_for(group_id)
        if partition in self._loading:
            return ErrorCode.coordinator_load_in_progress
        if partition not in self._owned:
            return ErrorCode.not_coordinator
        return ErrorCode.none

    async def load(self, partition: int, leader_epoch: int) -> None:
        """Become coordinator for the groups of one offsets partition by replaying it.

        Loading a partition we already lead only records the new epoch: the groups in memory
        are at least as new as the log, and replaying would strand parked JoinGroup calls.
        """
        if partition in self._owned:
            self._owned[partition] = leader_epoch
            return
        self._loading.add(partition)
        try:
            consumer_groups: dict[str, bytes | None] = {}
            groups = await self._replay(partition, consumer_groups)
            if self._restore_consumer_group is not None:
                for group_id, snapshot in consumer_groups.items():
                    self._restore_consumer_group(group_id, snapshot)
            now = self._clock_ms()
            for group_id, value in groups.items():
                if value is None:  # deleted (already forgotten during the replay)
                    continue
                if not value.members:
                    self._empty_since[group_id] = (value.generation_id, value.state_timestamp_ms)
                self._machine.restore_group(
                    group_id,
                    value.protocol_type,
                    value.generation_id,
                    value.protocol_name,
                    value.leader_id,
                    [_member_from_stored(m, value) for m in value.members],
                    now,
                )
            self._owned[partition] = leader_epoch
        finally:
            self._loading.discard(partition)

    def unload(self, partition: int) -> list[str]:
        """Stop coordinating the groups of a partition we no longer lead; returns them."""
        self._owned.pop(partition, None)
        dropped = [g for g in self._machine.groups if self.partition_for(g) == partition]
        for group_id in dropped:
            self._machine.forget_group(group_id)
        for key in [k for k in self.pending_txn if self.partition_for(k[0]) == partition]:
            del self.pending_txn[key]
        return dropped

    def has_pending_offset(self, group_id: str, partition: tuple[str, int]) -> bool:
        return any(
            key[0] == group_id and partition in offsets
            for key, offsets in self.pending_txn.items()
        )

    def complete_transaction(self, partition: int, producer_id: int, commit: bool) -> None:
        """A marker of ``producer_id`` reached ``partition``: apply or drop its offsets."""
        for key in [k for k in self.pending_txn
                    if k[1] == producer_id and self.partition_for(k[0]) == partition]:
            offsets = self.pending_txn.pop(key)
            if commit:
                for (topic, index), committed in offsets.items():
                    self._machine.apply_offset(key[0], topic, index, committed)

    # ------------------------------------------------------------------------ replay

    def partition_for_marker(self, marker: records.LoggedMarker) -> int:
        return self._replaying

    async def _replay(
        self, partition: int, consumer_groups: dict[str, bytes | None]
    ) -> dict[str, GroupValue | None]:
        """Apply the partition's offsets in log order; returns each classic group's last
        metadata, and fills ``consumer_groups`` with each KIP-848 group's last record."""
        self._replaying = partition
        log_ = self._logs.get_partition(OFFSETS_TOPIC, partition)
        offset = log_.log_start_offset
        groups: dict[str, GroupValue | None] = {}
        while offset < log_.log_end_offset:
            with log_.read(offset, 1 << 20) as read:
                data = read.to_bytes()
                next_offset = read.high_offset
            for entry in records.parse_batches(data, _skip_unreadable(partition)):
                if entry.offset < offset:
                    continue
                self._replay_entry(entry, groups, consumer_groups)
            if next_offset <= offset:
                break
            offset = next_offset
            await asyncio.sleep(0)  # let other requests through during a long replay
        return groups

    def _replay_entry(
        self,
        entry: records.LoggedEntry | records.LoggedMarker,
        groups: dict[str, GroupValue | None],
        consumer_groups: dict[str, bytes | None],
    ) -> None:
        if isinstance(entry, records.LoggedMarker):
            self.complete_transaction(
                self.partition_for_marker(entry), entry.producer_id, entry.commit
            )
            return
        key, value = entry.key, entry.value
        if entry.producer_id >= 0 and isinstance(key, OffsetKey):
            if isinstance(value, OffsetValue):
                pending = self.pending_txn.setdefault((key.group_id, entry.producer_id), {})
                pending[(key.topic, key.partition)] = CommittedOffset(
                    value.offset, value.leader_epoch, value.metadata, value.commit_timestamp_ms
                )
            return
        if isinstance(key, ConsumerGroupKey):
            consumer_groups[key.group_id] = (
                value.snapshot if isinstance(value, ConsumerGroupValue) else None
            )
        elif isinstance(key, OffsetKey):
            committed = None
            if isinstance(value, OffsetValue):
                committed = CommittedOffset(
                    value.offset, value.leader_epoch, value.metadata, value.commit_timestamp_ms
                )
            self._machine.apply_offset(key.group_id, key.topic, key.partition, committed)
        elif value is None:
            groups[key.group_id] = None
            self._machine.forget_group(key.group_id)
        elif isinstance(value, GroupValue):
            groups[key.group_id] = value

    # ------------------------------------------------------------------------ writes

    async def store_group(self, group_id: str) -> None:
        """Write a settled group's metadata (members, generation, assignments)."""
        group = self._machine.groups.get(group_id)
        if group is None:
            return
        state_timestamp = self._wall_clock_ms()
        if group.state is GroupState.EMPTY:
            state_timestamp = self.empty_since_ms(group) or state_timestamp
            self._empty_since[group_id] = (group.generation_id, state_timestamp)
        value = GroupValue(
            protocol_type=group.protocol_type or "",
            generation_id=group.generation_id,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id,
            state_timestamp_ms=state_timestamp,
            members=tuple(
                StoredMember(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata_for(group.protocol_name),
                    assignment=m.assignment,
                )
                for m in group.members.values()
            ),
        )
        await self.write(group_id, [(GroupKey(group_id), value)])

    async def write(
        self, group_id: str, entries: Entries, *, producer: tuple[int, int] | None = None
    ) -> ErrorCode:
        """Append records about ``group_id`` to its partition; the error clients should see.
        ``producer`` (id, epoch) makes them a transaction's pending offsets."""
        partition = self.partition_for(group_id)
        epoch = self._owned.get(partition)
        if epoch is None:
            return ErrorCode.not_coordinator
        batch = records.build_batch(entries, self._wall_clock_ms())
        if producer is not None:
            batch = records.transactional_batch(batch, *producer)
        try:
            if self._append_hook is not None:
                await self._append_hook(partition, batch)
            else:
                self._logs.get_partition(OFFSETS_TOPIC, partition).append(
                    batch, leader_epoch=epoch, coordinator=True
                )
        except Exception as error:  # a failed write must not strand parked requests
            log.exception("cannot write group %s to %s-%d", group_id, OFFSETS_TOPIC, partition)
            return append_error_to_group_error(error)
        return ErrorCode.none

    # ------------------------------------------------------------ when groups emptied

    def empty_since_ms(self, group: Group) -> int | None:
        """When the group last became Empty, if it still is in that same generation."""
        recorded = self._empty_since.get(group.group_id)
        if recorded is None or recorded[0] != group.generation_id:
            return None
        return recorded[1]

    def forget_empty_since(self, group_id: str) -> None:
        self._empty_since.pop(group_id, None)


def _skip_unreadable(partition: int) -> records.SkipHandler:
    def skip(offset: int, error: Exception) -> None:
        # One unreadable record must not keep every group of the partition offline.
        log.warning("%s-%d: skipping unreadable record at offset %d: %s",
                    OFFSETS_TOPIC, partition, offset, error)

    return skip


def _member_from_stored(stored: StoredMember, group: GroupValue) -> Member:
    return Member(
        member_id=stored.member_id,
        group_instance_id=stored.group_instance_id,
        client_id=stored.client_id,
        client_host=stored.client_host,
        session_timeout_ms=stored.session_timeout_ms,
        rebalance_timeout_ms=stored.rebalance_timeout_ms,
        protocol_type=group.protocol_type,
        protocols=(JoinProtocol(group.protocol_name or "", stored.subscription),),
        assignment=stored.assignment,
    )


def _kafka_code(error: BaseException) -> int | None:
    """The Kafka error number an exception stands for; the innermost wrapped one wins, since
    wrappers (such as the broker's append hook) are less specific than what they wrap."""
    found: int | None = None
    seen: BaseException | None = error
    while seen is not None:
        code = getattr(seen, "kafka_error_code", None)
        if code is None:
            code = getattr(seen, "code", None)
        if isinstance(code, int):
            found = int(code)
        seen = seen.__cause__
    return found


def append_error_to_group_error(error: BaseException) -> ErrorCode:
    """Kafka's mapping of a failed ``__consumer_offsets`` append to what group clients see:
    lost leadership or a broken log means "find the coordinator again"."""
    code = _kafka_code(error)
    if code in (
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.not_enough_replicas,
        ErrorCode.not_enough_replicas_after_append,
        ErrorCode.request_timed_out,
    ):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    return ErrorCode.unknown_server_error
