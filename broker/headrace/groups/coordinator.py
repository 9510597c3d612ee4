"""The asyncio group coordinator: the pure state machine plus futures, timers and the log.

It owns the groups whose ``__consumer_offsets`` partition this broker leads (Kafka's rule:
``abs(java hashCode(group id)) % partitions``), writes every commit and every settled group to
that partition through the normal append path, and rebuilds its state by replaying the
partition when it becomes leader ("load") — which is also how a restart restores offsets.

JoinGroup and SyncGroup calls that must wait for other members park on futures; one timer task
sleeps until the state machine's next deadline (session expiry, rebalance timeout) and ticks it.
The HTTP API and metrics read :meth:`GroupCoordinator.list_groups`, :meth:`describe_group` and
:meth:`committed_offsets`, and may subscribe to rebalances with :meth:`add_rebalance_listener`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from kio.schema.errors import ErrorCode

from headrace.groups import records
from headrace.groups.records import GroupKey, GroupValue, OffsetKey, OffsetValue, StoredMember
from headrace.groups.state import (
    CommittedOffset,
    Effects,
    GroupLimits,
    GroupState,
    GroupStateMachine,
    JoinProtocol,
    JoinRequest,
    JoinResult,
    Member,
    SyncResult,
    expired_offsets,
)
from headrace.storage import LogManagerAPI

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


def java_string_hashcode(value: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units, wrapped to a signed int32)."""
    result = 0
    encoded = value.encode("utf-16-be")
    for index in range(0, len(encoded), 2):
        result = (31 * result + ((encoded[index] << 8) | encoded[index + 1])) & 0xFFFFFFFF
    return result - (1 << 32) if result & 0x80000000 else result


def offsets_partition_for(group_id: str, partitions: int) -> int:
    """Kafka's ``Utils.abs(groupId.hashCode) % partitions`` (abs(MIN_VALUE) is 0 there)."""
    code = java_string_hashcode(group_id)
    return (0 if code == -(1 << 31) else abs(code)) % partitions


@dataclass(frozen=True, slots=True)
class CoordinatorNode:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Kafka's ``offsets.topic.num.partitions`` and ``group.*`` settings."""

    offsets_topic_partitions: int = 50
    limits: GroupLimits = field(default_factory=GroupLimits)
    #: Lead every offsets partition at start (single broker); replication turns this off and
    #: calls load_partition/unload_partition as leadership moves.
    own_all_partitions: bool = True
    max_offset_metadata_bytes: int = 4096
    #: Kafka's ``offsets.retention.minutes`` (7 days) and ``offsets.retention.check.interval.ms``.
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600_000


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass(frozen=True, slots=True)
class GroupOverview:
    group_id: str
    protocol_type: str
    state: str


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    error: ErrorCode
    group_id: str
    state: str
    protocol_type: str
    protocol_name: str
    generation_id: int
    leader_id: str
    members: tuple[MemberDescription, ...]
    rebalances: int = 0


_Result = TypeVar("_Result", JoinResult, SyncResult)
RebalanceListener = Callable[[str, int], None]
AppendHook = Callable[[int, bytes], Awaitable[None]]


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class GroupCoordinator:
    """Consumer groups and committed offsets for the offsets partitions this broker leads."""

    def __init__(
        self,
        logs: LogManagerAPI,
        node: CoordinatorNode,
        config: GroupConfig | None = None,
        *,
        partition_leader: Callable[[int], CoordinatorNode | None] | None = None,
        append: AppendHook | None = None,
        clock_ms: Callable[[], int] = _monotonic_ms,
        wall_clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.logs = logs
        self.node = node
        self.config = config or GroupConfig()
        self.machine = GroupStateMachine(self.config.limits)
        self._partition_leader = partition_leader
        self._append_hook = append
        self._clock_ms = clock_ms
        self._wall_clock_ms = wall_clock_ms
        self._owned: dict[int, int] = {}  # partition -> leader epoch
        self._loading: set[int] = set()
        self._join_waiters: dict[tuple[str, str], asyncio.Future[JoinResult]] = {}
        self._sync_waiters: dict[tuple[str, str], asyncio.Future[SyncResult]] = {}
        self._rebalance_listeners: list[RebalanceListener] = []
        self._wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None
        #: group -> (generation, wall-clock ms) of its latest transition to Empty; every such
        #: transition bumps the generation, so a stale entry is recognisable
        self._empty_since: dict[str, tuple[int, int]] = {}

    # --------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._ensure_offsets_topic()
        self._timer_task = asyncio.create_task(self._run_timers(), name="group-timers")
        self._retention_task = asyncio.create_task(
            self._run_retention(), name="offsets-retention"
        )
        if self.config.own_all_partitions:
            for partition in range(self.config.offsets_topic_partitions):
                await self.load_partition(partition)

    async def stop(self) -> None:
        tasks = [t for t in (self._timer_task, self._retention_task) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            # asyncio.wait, unlike awaiting the tasks, does not re-raise their CancelledError
            # into (and so mark as cancelling) the task that stops us.
            await asyncio.wait(tasks)
        self._timer_task = self._retention_task = None
        for partition in list(self._owned):
            await self.unload_partition(partition)

    def _ensure_offsets_topic(self) -> None:
        if self.logs.topic(OFFSETS_TOPIC) is None:
            # Compacted, as in Kafka: the cleaner keeps the latest record per key, and
            # time/size retention never deletes live commits.
            self.logs.create_topic(
                OFFSETS_TOPIC,
                self.config.offsets_topic_partitions,
                configs={"cleanup.policy": "compact"},
            )

    def set_partition_leader(
        self, partition_leader: Callable[[int], CoordinatorNode | None] | None
    ) -> None:
        """Route FindCoordinator through ``partition_leader(p)`` (None: this node leads all)."""
        self._partition_leader = partition_leader

    async def load_partition(self, partition: int, leader_epoch: int = 0) -> None:
        """Become coordinator for the groups of one offsets partition by replaying it.

        Loading a partition we already lead only records the new epoch: the groups in memory
        are at least as new as the log, and replaying would strand parked JoinGroup calls.
        """
        if partition in self._owned:
            self._owned[partition] = leader_epoch
            return
        self._loading.add(partition)
        try:
            log_ = self.logs.get_partition(OFFSETS_TOPIC, partition)
            offset = log_.log_start_offset
            groups: dict[str, GroupValue | None] = {}
            while offset < log_.log_end_offset:
                with log_.read(offset, 1 << 20) as read:
                    data = read.to_bytes()
                    next_offset = read.high_offset
                for entry in records.parse_batches(data, self._skip_unreadable(partition)):
                    if entry.offset < offset:
                        continue
                    self._replay(entry, groups)
                if next_offset <= offset:
                    break
                offset = next_offset
                await asyncio.sleep(0)  # let other requests through during a long replay
            now = self._clock_ms()
            for group_id, value in groups.items():
                if value is None:  # deleted (already forgotten during the replay)
                    continue
                if not value.members:
                    self._empty_since[group_id] = (value.generation_id, value.state_timestamp_ms)
                self.machine.restore_group(
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
        self._wake.set()

    @staticmethod
    def _skip_unreadable(partition: int) -> records.SkipHandler:
        def skip(offset: int, error: Exception) -> None:
            # One unreadable record must not keep every group of the partition offline.
            log.warning("%s-%d: skipping unreadable record at offset %d: %s",
                        OFFSETS_TOPIC, partition, offset, error)

        return skip

    def _replay(self, entry: records.LoggedEntry, groups: dict[str, GroupValue | None]) -> None:
        key, value = entry.key, entry.value
        if isinstance(key, OffsetKey):
            committed = None
            if isinstance(value, OffsetValue):
                committed = CommittedOffset(
                    value.offset, value.leader_epoch, value.metadata, value.commit_timestamp_ms
                )
            self.machine.apply_offset(key.group_id, key.topic, key.partition, committed)
        elif value is None:
            groups[key.group_id] = None
            self.machine.forget_group(key.group_id)
        elif isinstance(value, GroupValue):
            groups[key.group_id] = value

    async def unload_partition(self, partition: int) -> None:
        """Stop coordinating the groups of a partition we no longer lead."""
        self._owned.pop(partition, None)
        for group_id in list(self.machine.groups):
            if self.partition_for(group_id) == partition:
                self.machine.forget_group(group_id)
                self._fail_waiters(group_id, ErrorCode.not_coordinator)

    def _fail_waiters(self, group_id: str, error: ErrorCode) -> None:
        for (waiting_group, member_id), future in list(self._join_waiters.items()):
            if waiting_group == group_id and not future.done():
                future.set_result(JoinResult(error, member_id))
        for (waiting_group, _member_id), sync_future in list(self._sync_waiters.items()):
            if waiting_group == group_id and not sync_future.done():
                sync_future.set_result(SyncResult(error))

    # ---------------------------------------------------------------------- routing

    def partition_for(self, group_id: str) -> int:
        return offsets_partition_for(group_id, self.config.offsets_topic_partitions)

    def coordinator_for(self, group_id: str) -> CoordinatorNode | None:
        """The broker that coordinates ``group_id``, or None while it has no leader."""
        partition = self.partition_for(group_id)
        if self._partition_leader is not None:
            return self._partition_leader(partition)
        return self.node

    def ownership_error(self, group_id: str) -> ErrorCode:
        """NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / NONE for a request about a group."""
        partition = self.partition_for(group_id)
        if partition in self._loading:
            return ErrorCode.coordinator_load_in_progress
        if partition not in self._owned:
            return ErrorCode.not_coordinator
        return ErrorCode.none

    # ------------------------------------------------------------------- membership

    async def join_group(self, request: JoinRequest) -> JoinResult:
        error = self.ownership_error(request.group_id)
        if error is not ErrorCode.none:
            return JoinResult(error, request.member_id)
        outcome = self.machine.join(request, self._clock_ms())
        if isinstance(outcome, JoinResult):
            await self._apply(self.machine.drain_effects())
            return outcome
        # Park before applying the effects: they may already hold this member's answer.
        key = (request.group_id, outcome.member_id)
        waiter = self._new_waiter(
            self._join_waiters, key, JoinResult(ErrorCode.rebalance_in_progress, key[1])
        )
        await self._apply(self.machine.drain_effects())
        try:
            return await waiter
        finally:
            if self._join_waiters.get(key) is waiter:
                del self._join_waiters[key]

    def _new_waiter(
        self,
        waiters: dict[tuple[str, str], asyncio.Future[_Result]],
        key: tuple[str, str],
        superseded: _Result,
    ) -> asyncio.Future[_Result]:
        previous = waiters.get(key)
        if previous is not None and not previous.done():
            previous.set_result(superseded)
        future: asyncio.Future[_Result] = asyncio.get_running_loop().create_future()
        waiters[key] = future
        return future

    async def sync_group(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        error = self.ownership_error(group_id)
        if error is not ErrorCode.none:
            return SyncResult(error)
        immediate = self.machine.sync(
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            protocol_type,
            protocol_name,
            assignments,
            self._clock_ms(),
        )
        key = (group_id, member_id)
        waiter = None
        if immediate is None:
            waiter = self._new_waiter(
                self._sync_waiters, key, SyncResult(ErrorCode.rebalance_in_progress)
            )
        await self._apply(self.machine.drain_effects())
        if waiter is None:
            assert immediate is not None
            return immediate
        try:
            return await waiter
        finally:
            if self._sync_waiters.get(key) is waiter:
                del self._sync_waiters[key]

    def heartbeat(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        error = self.ownership_error(group_id)
        if error is not ErrorCode.none:
            return error
        # No timer wake-up: a heartbeat only ever moves a deadline later.
        return self.machine.heartbeat(
            group_id, generation_id, member_id, group_instance_id, self._clock_ms()
        )

    async def leave_group(
        self, group_id: str, leavers: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """(group-level error, one error per leaver)."""
        error = self.ownership_error(group_id)
        if error is not ErrorCode.none:
            return error, [error] * len(leavers)
        results = self.machine.leave(group_id, leavers, self._clock_ms())
        await self._apply(self.machine.drain_effects())
        return ErrorCode.none, results

    # ------------------------------------------------------------------------ offsets

    async def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        commits: list[OffsetCommit],
    ) -> dict[tuple[str, int], ErrorCode]:
        error = self.ownership_error(group_id)
        if error is ErrorCode.none:
            error = self.machine.validate_commit(
                group_id, generation_id, member_id, group_instance_id
            )
        if error is not ErrorCode.none:
            return {(c.topic, c.partition): error for c in commits}
        results: dict[tuple[str, int], ErrorCode] = {}
        accepted: list[tuple[OffsetCommit, CommittedOffset]] = []
        now = self._wall_clock_ms()
        for commit in commits:
            metadata = commit.metadata or ""
            if len(metadata.encode()) > self.config.max_offset_metadata_bytes:
                results[(commit.topic, commit.partition)] = ErrorCode.offset_metadata_too_large
                continue
            accepted.append(
                (commit, CommittedOffset(commit.offset, commit.leader_epoch, metadata, now))
            )
        if accepted:
            entries: list[tuple[records.Key, records.Value | None]] = [
                (
                    OffsetKey(group_id, commit.topic, commit.partition),
                    OffsetValue(c.offset, c.leader_epoch, c.metadata, c.commit_timestamp_ms),
                )
                for commit, c in accepted
            ]
            write_error = await self._write(group_id, entries)
            for commit, committed in accepted:
                if write_error is ErrorCode.none:
                    self.machine.apply_offset(
                        group_id, commit.topic, commit.partition, committed
                    )
                results[(commit.topic, commit.partition)] = write_error
        return results

    def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None
    ) -> tuple[ErrorCode, dict[tuple[str, int], CommittedOffset | None]]:
        """Committed offsets for the partitions asked for (None: all the group has)."""
        error = self.ownership_error(group_id)
        if error is not ErrorCode.none:
            return error, {}
        committed = self.machine.committed(group_id)
        if partitions is None:
            return ErrorCode.none, dict(sorted(committed.items()))
        return ErrorCode.none, {tp: committed.get(tp) for tp in partitions}

    def committed_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        """For the HTTP API / lag metrics: every committed offset of a group we coordinate."""
        return self.machine.committed(group_id)

    async def delete_offsets(
        self, group_id: str, partitions: list[tuple[str, int]]
    ) -> tuple[ErrorCode, dict[tuple[str, int], ErrorCode]]:
        error = self.ownership_error(group_id)
        if error is not ErrorCode.none:
            return error, {}
        group = self.machine.groups.get(group_id)
        if group is None:
            return ErrorCode.group_id_not_found, {}
        subscribed = self.machine.subscribed_topics(group_id)
        if subscribed is None:
            return ErrorCode.non_empty_group, {}
        results: dict[tuple[str, int], ErrorCode] = {}
        to_delete: list[tuple[str, int]] = []
        for topic, partition in partitions:
            if topic in subscribed:
                results[(topic, partition)] = ErrorCode.group_subscribed_to_topic
            else:
                results[(topic, partition)] = ErrorCode.none
                if (topic, partition) in group.offsets:
                    to_delete.append((topic, partition))
        if to_delete:
            write_error = await self._write(
                group_id, [(OffsetKey(group_id, t, p), None) for t, p in to_delete]
            )
            if write_error is not ErrorCode.none:
                return write_error, {}
            for topic, partition in to_delete:
                self.machine.apply_offset(group_id, topic, partition, None)
        return ErrorCode.none, results

    # ------------------------------------------------------------------- admin views

    def list_groups(self, states: Iterable[str] = ()) -> list[GroupOverview]:
        wanted = {state.lower() for state in states}
        overviews = []
        for group_id, group in sorted(self.machine.groups.items()):
            if self.ownership_error(group_id) is not ErrorCode.none:
                continue
            if wanted and group.state.value.lower() not in wanted:
                continue
            overviews.append(GroupOverview(group_id, group.protocol_type or "", group.state.value))
        return overviews

    def describe_group(self, group_id: str) -> GroupDescription:
        error = self.ownership_error(group_id)
        group = self.machine.groups.get(group_id)
        if error is not ErrorCode.none or group is None:
            state = "" if error is not ErrorCode.none else GroupState.DEAD.value
            return GroupDescription(error, group_id, state, "", "", -1, "", ())
        # As Kafka: protocol, member metadata and assignments only once the group is Stable.
        stable = group.state is GroupState.STABLE
        members = tuple(
            MemberDescription(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata_for(group.protocol_name) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return GroupDescription(
            ErrorCode.none,
            group_id,
            group.state.value,
            group.protocol_type or "",
            (group.protocol_name or "") if stable else "",
            group.generation_id,
            group.leader_id or "",
            members,
            group.rebalances,
        )

    async def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            error = self.ownership_error(group_id)
            if error is ErrorCode.none:
                group = self.machine.groups.get(group_id)
                offsets = list(group.offsets) if group is not None else []
                error = self.machine.delete_group(group_id)
                if error is ErrorCode.none:
                    entries: list[tuple[records.Key, records.Value | None]] = [
                        (OffsetKey(group_id, t, p), None) for t, p in offsets
                    ]
                    entries.append((GroupKey(group_id), None))
                    error = await self._write(group_id, entries)
            results[group_id] = error
        return results

    async def expire_offsets(self) -> dict[str, list[tuple[str, int]]]:
        """Apply offset retention now: tombstone expired offsets, and drop Empty groups left
        with none (Kafka turns them Dead). Returns what expired, per group."""
        now = self._wall_clock_ms()
        expired: dict[str, list[tuple[str, int]]] = {}
        for group_id, group in list(self.machine.groups.items()):
            if self.ownership_error(group_id) is not ErrorCode.none:
                continue
            gone = expired_offsets(
                group, self._empty_since_ms(group_id), now, self.config.offsets_retention_ms
            )
            if not gone:
                continue
            entries: list[tuple[records.Key, records.Value | None]] = [
                (OffsetKey(group_id, t, p), None) for t, p in gone
            ]
            drop_group = len(gone) == len(group.offsets)
            if drop_group:
                entries.append((GroupKey(group_id), None))
            if await self._write(group_id, entries) is not ErrorCode.none:
                continue
            for topic, partition in gone:
                self.machine.apply_offset(group_id, topic, partition, None)
            if drop_group and self.machine.delete_group(group_id) is ErrorCode.none:
                self._empty_since.pop(group_id, None)
            expired[group_id] = gone
        return expired

    def _empty_since_ms(self, group_id: str) -> int | None:
        """When the group last became Empty, if it still is in that same generation."""
        group = self.machine.groups.get(group_id)
        recorded = self._empty_since.get(group_id)
        if group is None or recorded is None or recorded[0] != group.generation_id:
            return None
        return recorded[1]

    async def _run_retention(self) -> None:
        while True:
            await asyncio.sleep(self.config.offsets_retention_check_interval_ms / 1000)
            try:
                expired = await self.expire_offsets()
                if expired:
                    log.info("offset retention expired %d offset(s) of %d group(s)",
                             sum(map(len, expired.values())), len(expired))
            except Exception:  # retention must keep running whatever one pass hits
                log.exception("offset retention pass failed")

    def add_rebalance_listener(self, listener: RebalanceListener) -> None:
        """``listener(group_id, generation_id)`` after every completed rebalance."""
        self._rebalance_listeners.append(listener)

    # ----------------------------------------------------------------- effects, log I/O

    async def _apply(self, effects: Effects) -> None:
        self._wake.set()
        if not effects:
            return
        for group_id in effects.rebalances_completed:
            group = self.machine.groups.get(group_id)
            if group is not None:
                log.info(
                    "group %s: generation %d, %d member(s), protocol %s",
                    group_id, group.generation_id, len(group.members), group.protocol_name,
                )
            for listener in self._rebalance_listeners:
                try:
                    listener(group_id, group.generation_id if group else -1)
                except Exception:  # a broken metrics hook must not break the group
                    log.exception("rebalance listener failed")
        # Answer joins first: they do not depend on the log.
        for group_id, member_id, join in effects.join_results:
            join_waiter = self._join_waiters.get((group_id, member_id))
            if join_waiter is not None and not join_waiter.done():
                join_waiter.set_result(join)
        for group_id in sorted(effects.groups_to_store):
            await self._store_group(group_id)
        for group_id, member_id, sync in effects.sync_results:
            sync_waiter = self._sync_waiters.get((group_id, member_id))
            if sync_waiter is not None and not sync_waiter.done():
                sync_waiter.set_result(sync)

    async def _store_group(self, group_id: str) -> None:
        group = self.machine.groups.get(group_id)
        if group is None:
            return
        state_timestamp = self._wall_clock_ms()
        if group.state is GroupState.EMPTY:
            state_timestamp = self._empty_since_ms(group_id) or state_timestamp
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
        await self._write(group_id, [(GroupKey(group_id), value)])

    async def _write(
        self, group_id: str, entries: list[tuple[records.Key, records.Value | None]]
    ) -> ErrorCode:
        partition = self.partition_for(group_id)
        epoch = self._owned.get(partition)
        if epoch is None:
            return ErrorCode.not_coordinator
        batch = records.build_batch(entries, self._wall_clock_ms())
        try:
            if self._append_hook is not None:
                await self._append_hook(partition, batch)
            else:
                self.logs.get_partition(OFFSETS_TOPIC, partition).append(
                    batch, leader_epoch=epoch
                )
        except Exception as error:  # a failed write must not strand parked requests
            log.exception("cannot write group %s to %s-%d", group_id, OFFSETS_TOPIC, partition)
            return append_error_to_group_error(error)
        return ErrorCode.none

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            deadline = self.machine.next_deadline_ms()
            # No asyncio.wait_for: on Python 3.11 it can swallow a cancellation that races
            # with its timeout. A call_later that sets the wake event does the same job.
            alarm = None
            if deadline is not None:
                delay = max(0, deadline - self._clock_ms()) / 1000
                alarm = loop.call_later(delay, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                if alarm is not None:
                    alarm.cancel()
            try:
                self.machine.tick(self._clock_ms())
                effects = self.machine.drain_effects()
                if effects:
                    await self._apply(effects)
            except Exception:  # the timer must survive anything one group does
                log.exception("group timer tick failed")


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
