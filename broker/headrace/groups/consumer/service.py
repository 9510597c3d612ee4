"""The asyncio side of KIP-848 groups: the consumer-group machine plus the log and the clock.

The group coordinator owns one :class:`ConsumerGroups`; consumer-protocol groups live beside
classic groups, keyed by the same group ids in the same ``__consumer_offsets`` partitions,
and share committed offsets with them (the classic machine keeps every group's offsets; a
consumer group's entry there is an Empty, member-less holder of its offsets).

Conversion between the two kinds on upgrade and downgrade follows Kafka for empty groups: a
consumer-protocol member may take over an Empty classic group, and a classic JoinGroup an
empty consumer group, offsets kept. A group of the other kind that still has members is
refused: GROUP_ID_NOT_FOUND to a heartbeat, INCONSISTENT_GROUP_PROTOCOL to a JoinGroup
(Kafka's answers with ``group.consumer.migration.policy=disabled``; Headrace has no online
migration of a live group).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from headrace.groups.consumer import snapshot
from headrace.groups.consumer.machine import (
    ConsumerGroupMachine,
    ConsumerGroupSettings,
    HeartbeatRequest,
    HeartbeatResult,
)
from headrace.groups.consumer.model import ConsumerGroup, TopicPartition
from headrace.groups.consumer.subscriptions import TopicCatalog
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
                return HeartbeatResult(
                    ErrorCode.group_id_not_found,
                    f"group {request.group_id} is a classic group with members",
                )
        result = self.machine.heartbeat(request, self._clock_ms(), self._topics())
        if self.machine.dirty:
            self._wake_timer()
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
        if self.machine.dirty:
            await self.store_dirty()

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
