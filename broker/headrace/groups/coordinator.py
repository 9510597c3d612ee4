"""The asyncio group coordinator: the pure state machine plus futures, timers and the log.

It owns the groups whose ``__consumer_offsets`` partition this broker leads (see
:mod:`~headrace.groups.partitioning`), and is the one object the broker, the Kafka handlers,
the HTTP API and the cluster talk to. It joins the parts:

* :class:`~headrace.groups.state.GroupStateMachine` decides; its effects are applied here:
  JoinGroup and SyncGroup calls that must wait for other members park on futures, and one
  timer task sleeps until the machine's next deadline (session expiry, rebalance timeout) and
  ticks it;
* :class:`~headrace.groups.persistence.GroupLog` replays a partition when this broker becomes
  its leader ("load", also how a restart restores offsets) and writes every settled group;
* :class:`~headrace.groups.offsets.OffsetBook` commits, fetches, deletes and expires offsets;
* :class:`~headrace.groups.consumer.service.ConsumerGroups` runs KIP-848 groups beside the
  classic ones (same offsets, same log, same timer).

The HTTP API and metrics read :meth:`GroupCoordinator.list_groups`,
:meth:`describe_any_protocol` and :meth:`committed_offsets`, and may subscribe to rebalances
with :meth:`add_rebalance_listener`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from kio.schema.errors import ErrorCode

from headrace.groups import views
from headrace.groups.consumer.machine import ConsumerGroupSettings
from headrace.groups.consumer.service import ConsumerGroups, LogTopics
from headrace.groups.consumer.subscriptions import TopicCatalog
from headrace.groups.model import CommittedOffset, Effects, JoinRequest, JoinResult, SyncResult
from headrace.groups.offsets import OffsetBook, OffsetCommit
from headrace.groups.persistence import AppendHook, Entries, GroupLog
from headrace.groups.records import GroupKey, OffsetKey
from headrace.groups.state import GroupLimits, GroupStateMachine
from headrace.groups.views import GroupDescription, GroupOverview
from headrace.storage import LogManagerAPI

log = logging.getLogger(__name__)


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
    #: Load every offsets partition at start: for a coordinator run on its own (tests). A
    #: broker's app turns it off and drives load_partition/unload_partition through the
    #: internal-topics registry (headrace.core.internal_topics), lone broker or cluster alike.
    own_all_partitions: bool = True
    max_offset_metadata_bytes: int = 4096
    #: Kafka's ``offsets.retention.minutes`` (7 days) and ``offsets.retention.check.interval.ms``.
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600_000
    #: KIP-848 groups: ``group.consumer.*``
    consumer: ConsumerGroupSettings = field(default_factory=ConsumerGroupSettings)


_Result = TypeVar("_Result", JoinResult, SyncResult)
RebalanceListener = Callable[[str, int], None]


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
        topics: Callable[[], TopicCatalog] | None = None,
    ) -> None:
        self.node = node
        self.config = config or GroupConfig()
        self.machine = GroupStateMachine(self.config.limits)
        local_topics = LogTopics(logs)
        self.consumer_groups = ConsumerGroups(
            self.config.consumer,
            self.machine,
            write=lambda group_id, entries: self._log.write(group_id, entries),
            ownership_error=self.ownership_error,
            partition_for=self.partition_for,
            topics=topics or (lambda: local_topics),
            clock_ms=clock_ms,
            wake_timer=lambda: self._wake.set(),
            classic_changed=lambda: self._apply(self.machine.drain_effects()),
        )
        self._log = GroupLog(
            logs,
            self.machine,
            self.config.offsets_topic_partitions,
            append=append,
            clock_ms=clock_ms,
            wall_clock_ms=wall_clock_ms,
            restore_consumer_group=self.consumer_groups.restore,
        )
        self._offsets = OffsetBook(
            self.machine,
            self._log,
            max_metadata_bytes=self.config.max_offset_metadata_bytes,
            retention_ms=self.config.offsets_retention_ms,
            wall_clock_ms=wall_clock_ms,
            validate_commit=self._validate_commit,
            keeps_offsets=self.consumer_groups.has_members,
        )
        self._partition_leader = partition_leader
        self._clock_ms = clock_ms
        self._join_waiters: dict[tuple[str, str], asyncio.Future[JoinResult]] = {}
        self._sync_waiters: dict[tuple[str, str], asyncio.Future[SyncResult]] = {}
        self._rebalance_listeners: list[RebalanceListener] = []
        self._wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._retention_task: asyncio.Task[None] | None = None

    # --------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._log.ensure_topic()
        self._timer_task = asyncio.create_task(self._run_timers(), name="group-timers")
        self._retention_task = asyncio.create_task(
            self._offsets.run_retention(self.config.offsets_retention_check_interval_ms),
            name="offsets-retention",
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
        for partition in self._log.owned_partitions():
            await self.unload_partition(partition)

    def set_partition_leader(
        self, partition_leader: Callable[[int], CoordinatorNode | None] | None
    ) -> None:
        """Route FindCoordinator through ``partition_leader(p)`` (None: this node leads all)."""
        self._partition_leader = partition_leader

    async def load_partition(self, partition: int, leader_epoch: int = 0) -> None:
        """Become coordinator for the groups of one offsets partition by replaying it."""
        await self._log.load(partition, leader_epoch)
        self._wake.set()

    async def unload_partition(self, partition: int) -> None:
        """Stop coordinating the groups of a partition we no longer lead."""
        for group_id in self._log.unload(partition):
            self._fail_waiters(group_id, ErrorCode.not_coordinator)
        self.consumer_groups.unload(partition)

    def _fail_waiters(self, group_id: str, error: ErrorCode) -> None:
        for (waiting_group, member_id), future in list(self._join_waiters.items()):
            if waiting_group == group_id and not future.done():
                future.set_result(JoinResult(error, member_id))
        for (waiting_group, _member_id), sync_future in list(self._sync_waiters.items()):
            if waiting_group == group_id and not sync_future.done():
                sync_future.set_result(SyncResult(error))

    # ---------------------------------------------------------------------- routing

    def partition_for(self, group_id: str) -> int:
        return self._log.partition_for(group_id)

    def coordinator_for(self, group_id: str) -> CoordinatorNode | None:
        """The broker that coordinates ``group_id``, or None while it has no leader."""
        partition = self.partition_for(group_id)
        if self._partition_leader is not None:
            return self._partition_leader(partition)
        return self.node

    def ownership_error(self, group_id: str) -> ErrorCode:
        """NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / NONE for a request about a group."""
        return self._log.ownership_error(group_id)

    # ------------------------------------------------------------------- membership

    async def join_group(self, request: JoinRequest) -> JoinResult:
        error = self.ownership_error(request.group_id)
        if error is not ErrorCode.none:
            return JoinResult(error, request.member_id)
        if self.consumer_groups.has_members(request.group_id):
            # KIP-848's online migration: a classic member of a consumer group.
            return await self.consumer_groups.classic_join(request)
        error = await self.consumer_groups.yield_to_classic(request.group_id)
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
        if self.consumer_groups.owns(group_id):
            return self.consumer_groups.classic_sync(
                group_id, generation_id, member_id, group_instance_id, protocol_type,
                protocol_name,
            )
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
        if self.consumer_groups.owns(group_id):
            return self.consumer_groups.classic_heartbeat(
                group_id, generation_id, member_id, group_instance_id
            )
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
        if self.consumer_groups.owns(group_id):
            return ErrorCode.none, await self.consumer_groups.classic_leave(group_id, leavers)
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
        return await self._offsets.commit(
            group_id, generation_id, member_id, group_instance_id, commits
        )

    def _validate_commit(
        self, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        """A commit to a consumer-protocol group carries a member epoch (KIP-848)."""
        if self.consumer_groups.owns(group_id):
            return self.consumer_groups.validate_commit(group_id, generation_id, member_id)
        return self.machine.validate_commit(group_id, generation_id, member_id, group_instance_id)

    async def commit_transactional_offsets(
        self,
        group_id: str,
        producer_id: int,
        producer_epoch: int,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        commits: list[OffsetCommit],
    ) -> dict[tuple[str, int], ErrorCode]:
        return await self._offsets.commit_transactional(
            group_id, (producer_id, producer_epoch), generation_id, member_id,
            group_instance_id, commits,
        )

    def has_pending_offset(self, group_id: str, topic: str, partition: int) -> bool:
        """Whether an undecided transaction holds an offset of ``group_id`` for a partition."""
        return self._log.has_pending_offset(group_id, (topic, partition))

    def complete_transaction(self, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker was written to ``partition`` of ``__consumer_offsets``."""
        self._log.complete_transaction(partition, producer_id, commit)

    def fetch_offsets(
        self, group_id: str, partitions: list[tuple[str, int]] | None
    ) -> tuple[ErrorCode, dict[tuple[str, int], CommittedOffset | None]]:
        """Committed offsets for the partitions asked for (None: all the group has)."""
        return self._offsets.fetch(group_id, partitions)

    def committed_offsets(self, group_id: str) -> dict[tuple[str, int], CommittedOffset]:
        """For the HTTP API / lag metrics: every committed offset of a group we coordinate."""
        return self.machine.committed(group_id)

    async def delete_offsets(
        self, group_id: str, partitions: list[tuple[str, int]]
    ) -> tuple[ErrorCode, dict[tuple[str, int], ErrorCode]]:
        subscribed = self.consumer_groups.subscribed_topics(group_id)
        refused = {
            (t, p): ErrorCode.group_subscribed_to_topic for t, p in partitions if t in subscribed
        }
        error, results = await self._offsets.delete(
            group_id, [tp for tp in partitions if tp not in refused]
        )
        return error, results | refused if error is ErrorCode.none else results

    async def expire_offsets(self) -> dict[str, list[tuple[str, int]]]:
        """Apply offset retention now: tombstone expired offsets, and drop Empty groups left
        with none (Kafka turns them Dead). Returns what expired, per group."""
        return await self._offsets.expire()

    # ------------------------------------------------------------------- admin views

    def list_groups(self, states: Iterable[str] = ()) -> list[GroupOverview]:
        wanted = {state.lower() for state in states}
        overviews = [
            views.overview(group)
            for group_id, group in self.machine.groups.items()
            if not self.consumer_groups.owns(group_id)
        ] + [
            GroupOverview(group_id, "consumer", group.state.value)
            for group_id, group in self.consumer_groups.groups.items()
        ]
        return sorted(
            (
                o for o in overviews
                if self.ownership_error(o.group_id) is ErrorCode.none
                and (not wanted or o.state.lower() in wanted)
            ),
            key=lambda o: o.group_id,
        )

    def describe_group(self, group_id: str) -> GroupDescription:
        """The classic view (DescribeGroups): a consumer-protocol group is not there (Dead),
        as Kafka answers; ConsumerGroupDescribe describes it."""
        error = self.ownership_error(group_id)
        group = self.machine.groups.get(group_id)
        if error is not ErrorCode.none or group is None or self.consumer_groups.owns(group_id):
            return views.describe_missing(group_id, error)
        return views.describe(group)

    def describe_any_protocol(self, group_id: str) -> GroupDescription:
        """For the HTTP API, lag and metrics: a consumer-protocol group as
        ConsumerGroupDescribe sees it, any other as DescribeGroups does."""
        group = self.consumer_groups.groups.get(group_id)
        if group is None or self.ownership_error(group_id) is not ErrorCode.none:
            return self.describe_group(group_id)
        return views.describe_consumer(group, self.consumer_groups.machine.settings.assignors[0])

    async def delete_groups(self, group_ids: list[str]) -> dict[str, ErrorCode]:
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            error = self.ownership_error(group_id)
            if error is ErrorCode.none and self.consumer_groups.owns(group_id):
                error = await self.consumer_groups.delete(group_id)
                if error is ErrorCode.none and group_id not in self.machine.groups:
                    results[group_id] = error  # no offsets were ever committed
                    continue
            if error is ErrorCode.none:
                group = self.machine.groups.get(group_id)
                offsets = list(group.offsets) if group is not None else []
                error = self.machine.delete_group(group_id)
                if error is ErrorCode.none:
                    entries: Entries = [(OffsetKey(group_id, t, p), None) for t, p in offsets]
                    entries.append((GroupKey(group_id), None))
                    error = await self._log.write(group_id, entries)
            results[group_id] = error
        return results

    def add_rebalance_listener(self, listener: RebalanceListener) -> None:
        """``listener(group_id, generation_id)`` after every completed rebalance."""
        self._rebalance_listeners.append(listener)

    # -------------------------------------------------------------- effects, timers

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
            await self._log.store_group(group_id)
        for group_id, member_id, sync in effects.sync_results:
            sync_waiter = self._sync_waiters.get((group_id, member_id))
            if sync_waiter is not None and not sync_waiter.done():
                sync_waiter.set_result(sync)

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            deadline = min(
                (
                    d for d in (
                        self.machine.next_deadline_ms(), self.consumer_groups.next_deadline_ms()
                    )
                    if d is not None
                ),
                default=None,
            )
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
                await self.consumer_groups.tick()
            except Exception:  # the timer must survive anything one group does
                log.exception("group timer tick failed")
