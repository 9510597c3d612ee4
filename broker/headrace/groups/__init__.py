"""Consumer groups and committed offsets: Kafka's classic group coordinator.

Pure code first: ``model`` (what a group is made of), ``rebalance`` (the JoinGroup/SyncGroup
protocol that forms generations), ``state`` (the state machine over all groups: sessions,
leaving, offsets bookkeeping), ``partitioning`` (which offsets partition holds a group),
``records`` (the ``__consumer_offsets`` record format) and ``views`` (what admin APIs see).
Then the asyncio side: ``persistence`` (replaying and writing the offsets partitions this
broker leads), ``offsets`` (the offset APIs and retention), ``coordinator`` (the service that
joins them, with futures and timers) and ``handlers`` (the Kafka API adapters). The broker
constructs one :class:`GroupCoordinator` and registers ``group_api_handlers(coordinator)``;
see docs/groups.md.
"""

from headrace.groups.coordinator import (
    CoordinatorNode,
    GroupConfig,
    GroupCoordinator,
)
from headrace.groups.model import (
    CommittedOffset,
    GroupState,
    JoinProtocol,
    JoinRequest,
)
from headrace.groups.offsets import OffsetCommit
from headrace.groups.partitioning import OFFSETS_TOPIC, offsets_partition_for
from headrace.groups.state import GroupLimits
from headrace.groups.views import GroupDescription, GroupOverview, MemberDescription

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
