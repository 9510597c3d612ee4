"""Consumer groups and committed offsets: Kafka's classic group coordinator.

``state`` is the pure state machine, ``records`` the ``__consumer_offsets`` record format,
``coordinator`` the asyncio service that joins them to the log, and ``handlers`` the Kafka API
adapters. The broker constructs one :class:`GroupCoordinator` and registers
``group_api_handlers(coordinator)``; see docs/groups.md.
"""

from headrace.groups.coordinator import (
    OFFSETS_TOPIC,
    CoordinatorNode,
    GroupConfig,
    GroupCoordinator,
    GroupDescription,
    GroupOverview,
    MemberDescription,
    OffsetCommit,
    offsets_partition_for,
)
from headrace.groups.state import (
    CommittedOffset,
    GroupLimits,
    GroupState,
    JoinProtocol,
    JoinRequest,
)

__all__ = [
    "OFFSETS_TOPIC",
    "CommittedOffset",
    "CoordinatorNode",
    "GroupConfig",
    "GroupCoordinator",
    "GroupDescription",
    "GroupLimits",
    "GroupOverview",
    "GroupState",
    "JoinProtocol",
    "JoinRequest",
    "MemberDescription",
    "OffsetCommit",
    "offsets_partition_for",
]
