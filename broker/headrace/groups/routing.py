"""Where a consumer group's requests go: the seam that lets any broker's HTTP API answer about
every group of the cluster.

A group lives on its coordinator (the leader of its ``__consumer_offsets`` partition). The HTTP
API asks a :class:`GroupRouter`; :class:`LocalGroupRouter` answers from this broker's
coordinator (a lone broker coordinates every group), and a cluster member's router
(``headrace.cluster.group_forwarding``) sends ConsumerGroupDescribe or DescribeGroups and
OffsetFetch to the group's coordinator and ListGroups to every broker. Either kind of group is
described: classic and KIP-848 (``group.protocol=consumer``).
"""

from __future__ import annotations

from typing import Protocol

from headrace.groups.coordinator import GroupCoordinator
from headrace.groups.views import GroupDescription, GroupOverview

PartitionKey = tuple[str, int]


class GroupRouter(Protocol):
    async def list_groups(self) -> list[GroupOverview]:
        """Every group of the cluster (each coordinator's, merged)."""
        ...

    async def describe_group(self, group_id: str) -> GroupDescription:
        """The group as its coordinator describes it, classic or consumer-protocol (state
        ``Dead`` when unknown)."""
        ...

    async def committed_offsets(self, group_id: str) -> dict[PartitionKey, int]:
        """Every offset the group has committed."""
        ...

    def coordinator_id(self, group_id: str) -> int:
        """The broker coordinating the group (-1: none right now)."""
        ...


class LocalGroupRouter:
    """This broker's coordinator answers for every group."""

    def __init__(self, coordinator: GroupCoordinator, node_id: int) -> None:
        self.coordinator = coordinator
        self.node_id = node_id

    async def list_groups(self) -> list[GroupOverview]:
        return self.coordinator.list_groups()

    async def describe_group(self, group_id: str) -> GroupDescription:
        return self.coordinator.describe_any_protocol(group_id)

    async def committed_offsets(self, group_id: str) -> dict[PartitionKey, int]:
        return {key: committed.offset
                for key, committed in self.coordinator.committed_offsets(group_id).items()}

    def coordinator_id(self, group_id: str) -> int:
        return self.node_id


__all__ = ["GroupRouter", "LocalGroupRouter"]
