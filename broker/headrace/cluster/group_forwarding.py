"""A cluster member's :class:`~headrace.groups.routing.GroupRouter`: a group's requests go to its
coordinator (the leader of its ``__consumer_offsets`` partition, read from the cluster metadata as
FindCoordinator answers it) as ConsumerGroupDescribe / DescribeGroups and OffsetFetch; ListGroups
goes to every broker and the answers are merged. Groups this broker coordinates are answered
in-process.

A group is described as Kafka's admin client does: ConsumerGroupDescribe first (KIP-848
groups), DescribeGroups when the coordinator answers GROUP_ID_NOT_FOUND (a classic group).
DescribeGroups carries no generation id, so a classic group described through another broker
reports generation -1; a consumer group reports its group epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kio.schema.consumer_group_describe.v0 import request as consumer_describe_v0
from kio.schema.describe_groups.v5 import request as describe_v5
from kio.schema.errors import ErrorCode
from kio.schema.list_groups.v4 import request as list_groups_v4
from kio.schema.offset_fetch.v8 import request as offset_fetch_v8
from kio.schema.types import GroupId

from headrace.cluster.connections import ConnectionPool
from headrace.cluster.forwarding import retriable
from headrace.core.errors import KafkaError
from headrace.groups.routing import LocalGroupRouter, PartitionKey
from headrace.groups.views import (
    CONSUMER_PROTOCOL_TYPE,
    GroupDescription,
    GroupOverview,
    MemberDescription,
    decode_assignment,
)

if TYPE_CHECKING:
    from headrace.cluster.store import EtcdMetadataStore
    from headrace.groups.coordinator import CoordinatorNode

T = TypeVar("T")


class ForwardingGroupRouter:
    """Answers about any group of the cluster from its coordinator."""

    def __init__(self, local: LocalGroupRouter, store: EtcdMetadataStore,
                 coordinator_of: Callable[[str], CoordinatorNode | None],
                 pool: ConnectionPool, *, refresh_timeout: float = 2.0) -> None:
        self.local = local
        self.store = store
        self.coordinator_of = coordinator_of
        self.pool = pool
        self.refresh_timeout = refresh_timeout

    def coordinator_id(self, group_id: str) -> int:
        node = self.coordinator_of(group_id)
        return -1 if node is None else node.node_id

    async def _at_coordinator(self, group_id: str, local: Callable[[], Awaitable[T]],
                              remote: Callable[[int], Awaitable[T]]) -> T:
        """Ask the coordinator; once more after the metadata moved if it no longer is one."""
        seen = self.coordinator_id(group_id)
        try:
            return await self._ask(group_id, seen, local, remote)
        except KafkaError as error:
            if not retriable(error):
                raise

        def moved(_snapshot: object) -> bool:
            return self.coordinator_id(group_id) not in (seen, -1)

        with contextlib.suppress(TimeoutError):
            await self.store.wait_until(moved, timeout=self.refresh_timeout)
        return await self._ask(group_id, self.coordinator_id(group_id), local, remote)

    async def _ask(self, group_id: str, coordinator: int, local: Callable[[], Awaitable[T]],
                   remote: Callable[[int], Awaitable[T]]) -> T:
        if coordinator == self.local.node_id:
            result = await local()
            error = getattr(result, "error", ErrorCode.none)
            if error is not ErrorCode.none:
                raise KafkaError(error, f"group {group_id!r}")
            return result
        if coordinator < 0:
            raise KafkaError(ErrorCode.coordinator_not_available,
                             f"group {group_id!r} has no coordinator right now")
        return await remote(coordinator)

    async def describe_group(self, group_id: str) -> GroupDescription:
        async def remote(broker_id: int) -> GroupDescription:
            consumer_request = consumer_describe_v0.ConsumerGroupDescribeRequest(
                group_ids=(GroupId(group_id),), include_authorized_operations=False)
            answer: Any = await self.pool.request(broker_id, consumer_request)
            (consumer_group,) = answer.groups
            if consumer_group.error_code == ErrorCode.none:
                return _consumer_description(consumer_group)
            if consumer_group.error_code != ErrorCode.group_id_not_found:
                raise KafkaError(consumer_group.error_code,
                                 f"group {group_id!r} at broker {broker_id}")
            request = describe_v5.DescribeGroupsRequest(
                groups=(GroupId(group_id),), include_authorized_operations=False)
            response = await self.pool.request(broker_id, request)
            (group,) = response.groups
            if group.error_code != ErrorCode.none:
                raise KafkaError(group.error_code, f"group {group_id!r} at broker {broker_id}")
            return _description(group)

        return await self._at_coordinator(
            group_id, lambda: self.local.describe_group(group_id), remote)

    async def committed_offsets(self, group_id: str) -> dict[PartitionKey, int]:
        async def local() -> dict[PartitionKey, int]:
            error = self.local.coordinator.ownership_error(group_id)
            if error is not ErrorCode.none:
                raise KafkaError(error, f"group {group_id!r}")
            return await self.local.committed_offsets(group_id)

        async def remote(broker_id: int) -> dict[PartitionKey, int]:
            request = offset_fetch_v8.OffsetFetchRequest(groups=(
                offset_fetch_v8.OffsetFetchRequestGroup(group_id=GroupId(group_id), topics=None),
            ))
            response = await self.pool.request(broker_id, request)
            (group,) = response.groups
            if group.error_code != ErrorCode.none:
                raise KafkaError(group.error_code, f"group {group_id!r} at broker {broker_id}")
            return {
                (str(topic.name), int(p.partition_index)): int(p.committed_offset)
                for topic in group.topics for p in topic.partitions
                if p.error_code == ErrorCode.none and int(p.committed_offset) >= 0
            }

        return await self._at_coordinator(group_id, local, remote)

    async def list_groups(self) -> list[GroupOverview]:
        """Every broker's groups (ListGroups answers only the coordinator's own)."""
        own = await self.local.list_groups()
        others = [b for b in self.store.cache.brokers if b != self.local.node_id]
        answers = await asyncio.gather(*(self._list_at(b) for b in others))
        merged = {g.group_id: g for g in own}
        for answer in answers:
            for overview in answer:
                merged.setdefault(overview.group_id, overview)
        return [merged[name] for name in sorted(merged)]

    async def _list_at(self, broker_id: int) -> list[GroupOverview]:
        response: Any = await self.pool.request(
            broker_id, list_groups_v4.ListGroupsRequest(states_filter=()))
        if response.error_code != ErrorCode.none:
            raise KafkaError(response.error_code, f"ListGroups at broker {broker_id}")
        return [GroupOverview(str(g.group_id), g.protocol_type, g.group_state)
                for g in response.groups]


def _description(group: Any) -> GroupDescription:
    members = tuple(
        MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                          bytes(m.member_metadata), bytes(m.member_assignment),
                          decode_assignment(bytes(m.member_assignment)))
        for m in group.members
    )
    return GroupDescription(ErrorCode.none, str(group.group_id), group.group_state,
                            group.protocol_type, group.protocol_data, -1, "", members)


def _consumer_description(group: Any) -> GroupDescription:
    """A ConsumerGroupDescribe answer as the description of a KIP-848 group."""
    members = tuple(
        MemberDescription(
            m.member_id, m.instance_id, m.client_id, m.client_host, b"", b"",
            tuple(sorted((str(tp.topic_name), int(p))
                         for tp in m.assignment.topic_partitions for p in tp.partitions)),
        )
        for m in group.members
    )
    return GroupDescription(ErrorCode.none, str(group.group_id), group.group_state,
                            CONSUMER_PROTOCOL_TYPE, group.assignor_name, int(group.group_epoch),
                            "", members)


__all__ = ["ForwardingGroupRouter"]
