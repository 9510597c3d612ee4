"""The asyncio side of KIP-848 groups: the consumer-group machine plus the log and the clock.

The group coordinator owns one :class:`ConsumerGroups`; consumer-protocol groups live beside
classic groups, keyed by the same group ids in the same ``__consumer_offsets`` partitions,
and share committed offsets with them (the classic machine keeps every group's offsets; a
consumer group's entry there is an Empty, member-less holder of its offsets).

Conversion between the two kinds follows Kafka's ``group.consumer.migration.policy=
bidirectional``: a consumer-protocol member may take over an Empty classic group, and a
classic JoinGroup an empty consumer group, offsets kept. A Stable classic group *with* members
that a consumer-protocol member joins becomes a consumer group whose classic members go on
with the classic protocol (:mod:`.migration`, :mod:`.classic_members`), and a consumer group
left with only classic members becomes classic again. A classic group in the middle of a
rebalance is not converted: the newcomer is told to retry (COORDINATOR_LOAD_IN_PROGRESS).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from headrace.groups.consumer import classic_members, migration, snapshot
from headrace.groups.consumer.machine import (
    ConsumerGroupMachine,
    ConsumerGroupSettings,
    HeartbeatRequest,
    HeartbeatResult,
)
from headrace.groups.consumer.model import ConsumerGroup, TopicPartition
from headrace.groups.consumer.subscriptions import TopicCatalog
from headrace.groups.model import JoinRequest, JoinResult, SyncResult
from headrace.groups.records import ConsumerGroupKey, ConsumerGroupValue, Key, Value
from headrace.groups.state import GroupStateMachine
from headrace.storage import LogManagerAPI

log = logging.getLogger(__name__)

Write = Callable[[str, list[tuple[Key, Value | None]]], Awaitable[ErrorCode]]


@dataclass(frozen=True, slots=True)
class _LogTopic:
    topic_id: uuid.UUID
    partitions: range
    is_internal: bool


class LogTopics:
    """A :class:`TopicCatalog` over the local logs, for a coordinator run without a broker."""

    def __init__(self, logs: LogManagerAPI) -> None:
        self._logs = logs

    def topic_names(self) -> list[str]:
        return sorted(self._logs.topics())

    def topic(self, name: str) -> _LogTopic | None:
        meta = self._logs.topic(name)
        if meta is None:
            return None
        return _LogTopic(meta.topic_id, range(meta.partitions), name.startswith("__"))


class ConsumerGroups:
    """KIP-848 groups of the offsets partitions the coordinator leads."""

    def __init__(
        self,
        settings: ConsumerGroupSettings,
        classic: GroupStateMachine,
        *,
        write: Write,
        ownership_error: Callable[[str], ErrorCode],
        partition_for: Callable[[str], int],
        topics: Callable[[], TopicCatalog],
        clock_ms: Callable[[], int],
        wake_timer: Callable[[], None] = lambda: None,
        classic_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.machine = ConsumerGroupMachine(settings)
        #: a changed group may have an earlier deadline than the timer sleeps towards
        self._wake_timer = wake_timer
        self._classic = classic
        self._write = write
        self._ownership_error = ownership_error
        self._partition_for = partition_for
        self._topics = topics
        self._clock_ms = clock_ms
        #: stores (and schedules) what a conversion changed in the classic machine
        self._classic_changed = classic_changed

    @property
    def groups(self) -> dict[str, ConsumerGroup]:
        return self.machine.groups

    def owns(self, group_id: str) -> bool:
        """Whether ``group_id`` is a consumer-protocol group."""
        return group_id in self.machine.groups

    # ---------------------------------------------------------------------- heartbeat

    async def heartbeat(self, request: HeartbeatRequest) -> HeartbeatResult:
        error = self._ownership_error(request.group_id)
        if error is not ErrorCode.none:
            return HeartbeatResult(error)
        if not self.owns(request.group_id):
            classic = self._classic.groups.get(request.group_id)
            if classic is not None and classic.members:
                refused = await self._upgrade(request.group_id)
                if refused is not None:
                    return refused
        result = self.machine.heartbeat(request, self._clock_ms(), self._topics())
        if self.machine.dirty:
            self._wake_timer()
        await self._downgrade_if_classic(request.group_id)
        write_error = await self.store_dirty()
        if write_error is not ErrorCode.none and result.error is ErrorCode.none:
            return HeartbeatResult(write_error)
        return result

    async def store_dirty(self) -> ErrorCode:
        """Write every changed group; the first error, if any, for the caller to answer."""
        first = ErrorCode.none
        while self.machine.dirty:
            group_id = self.machine.dirty.pop()
            group = self.machine.groups.get(group_id)
            value = ConsumerGroupValue(snapshot.encode(group)) if group is not None else None
            error = await self._write(group_id, [(ConsumerGroupKey(group_id), value)])
            if error is not ErrorCode.none and first is ErrorCode.none:
                first = error
        return first

    async def tick(self) -> None:
        self.machine.tick(self._clock_ms())
        for group_id in list(self.machine.dirty):
            await self._downgrade_if_classic(group_id)
        if self.machine.dirty:
            await self.store_dirty()

    # ------------------------------------------------------------ online migration

    async def _upgrade(self, group_id: str) -> HeartbeatResult | None:
        """The classic group with members becomes a consumer group; why not, if it cannot."""
        classic = self._classic.groups[group_id]
        try:
            group = migration.upgrade(
                classic, self.machine.settings.assignors[0], self._topics(), self._clock_ms()
            )
        except migration.NotMigratable as error:
            if classic.state.value != "Stable":  # mid-rebalance: the newcomer retries later
                return HeartbeatResult(ErrorCode.coordinator_load_in_progress, str(error))
            return HeartbeatResult(ErrorCode.group_id_not_found, str(error))
        log.info("group %s: classic group of %d member(s) upgraded to a consumer group",
                 group_id, len(group.members))
        self.machine.groups[group_id] = group
        self.machine.dirty.add(group_id)
        self._classic.release_members(group_id)
        if self._classic_changed is not None:
            await self._classic_changed()
        return None

    async def _downgrade_if_classic(self, group_id: str) -> None:
        """A consumer group left with only classic members becomes classic and rebalances."""
        group = self.machine.groups.get(group_id)
        if group is None or not migration.downgradable(group):
            return
        holder = self._classic.holder(group_id)
        now_ms = self._clock_ms()
        self._classic.adopt(migration.downgrade(group, holder, now_ms), now_ms)
        log.info("group %s: consumer group of %d classic member(s) downgraded to classic",
                 group_id, len(group.members))
        del self.machine.groups[group_id]
        self.machine.dirty.discard(group_id)
        # The classic group is stored first: a restart between the two writes finds the
        # consumer group still there, which a replay prefers, rather than neither.
        if self._classic_changed is not None:
            await self._classic_changed()
        await self._write(group_id, [(ConsumerGroupKey(group_id), None)])

    # -------------------------------------------------- classic members of a consumer group

    def has_classic_members(self, group_id: str) -> bool:
        group = self.machine.groups.get(group_id)
        return group is not None and any(m.classic is not None for m in group.members.values())

    async def classic_join(self, request: JoinRequest) -> JoinResult:
        group = self.machine.groups[request.group_id]
        result = classic_members.join(
            self.machine, group, request, self._clock_ms(), self._topics()
        )
        self._wake_timer()
        error = await self.store_dirty()
        if error is not ErrorCode.none and result.error is ErrorCode.none:
            return JoinResult(error, result.member_id)
        return result

    def classic_sync(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None,
        protocol_type: str | None, protocol_name: str | None,
    ) -> SyncResult:
        return classic_members.sync(
            self.machine.groups[group_id], generation_id, member_id, instance_id,
            protocol_type, protocol_name, self._clock_ms(),
        )

    def classic_heartbeat(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        return classic_members.heartbeat(
            self.machine.groups[group_id], generation_id, member_id, instance_id,
            self._clock_ms(),
        )

    async def classic_leave(
        self, group_id: str, leavers: list[tuple[str, str | None]]
    ) -> list[ErrorCode]:
        group = self.machine.groups[group_id]
        results = [classic_members.leave(self.machine, group, member_id, instance_id)
                   for member_id, instance_id in leavers]
        await self._downgrade_if_classic(group_id)
        await self.store_dirty()
        return results

    def next_deadline_ms(self) -> int | None:
        return self.machine.next_deadline_ms()

    # -------------------------------------------------------------- classic handover

    async def yield_to_classic(self, group_id: str) -> ErrorCode:
        """Before a classic JoinGroup: an empty consumer group becomes classic (its record is
        deleted, its offsets stay); one with members refuses the join."""
        group = self.machine.groups.get(group_id)
        if group is None:
            return ErrorCode.none
        if group.members:
            return ErrorCode.inconsistent_group_protocol
        del self.machine.groups[group_id]
        return await self._write(group_id, [(ConsumerGroupKey(group_id), None)])

    # ----------------------------------------------------------------- load, unload

    def restore(self, group_id: str, data: bytes | None) -> None:
        """Rebuild a group from its stored record (None: it was deleted)."""
        if data is None:
            self.machine.groups.pop(group_id, None)
            return
        try:
            group = snapshot.decode(group_id, data)
        except snapshot.SnapshotError as error:
            log.warning("consumer group %s: unreadable record skipped: %s", group_id, error)
            return
        self.machine.restart_sessions(group, self._clock_ms())
        self.machine.groups[group_id] = group

    def unload(self, partition: int) -> None:
        for group_id in [g for g in self.machine.groups if self._partition_for(g) == partition]:
            del self.machine.groups[group_id]
            self.machine.dirty.discard(group_id)

    # ------------------------------------------------------------ offsets and admin

    def validate_commit(self, group_id: str, member_epoch: int, member_id: str) -> ErrorCode:
        return self.machine.validate_commit(group_id, member_epoch, member_id)

    def has_members(self, group_id: str) -> bool:
        group = self.machine.groups.get(group_id)
        return group is not None and bool(group.members)

    def subscribed_topics(self, group_id: str) -> set[str]:
        return self.machine.subscribed_topics(group_id)

    def assignment_of(self, group_id: str) -> dict[str, frozenset[TopicPartition]]:
        group = self.machine.groups.get(group_id)
        return {m.member_id: m.assigned for m in group.members.values()} if group else {}

    async def delete(self, group_id: str) -> ErrorCode:
        """DeleteGroups on a consumer group: only an empty one goes."""
        group = self.machine.groups.get(group_id)
        if group is None:
            return ErrorCode.group_id_not_found
        if group.members:
            return ErrorCode.non_empty_group
        del self.machine.groups[group_id]
        return await self._write(group_id, [(ConsumerGroupKey(group_id), None)])
