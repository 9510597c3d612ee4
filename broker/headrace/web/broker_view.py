"""Read-only figures about a running broker, shared by the REST API and the metrics scrape.

It adapts the broker services object (``headrace.core.broker.Broker``) and its group
coordinator to :class:`headrace.observability.metrics.BrokerStatsSource`, and computes consumer
lag (log end offset - committed offset) in one place for ``/metrics``, ``/v3/.../lags`` and the
CLI-equivalent HTTP views.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.schema.consumer_protocol_assignment.v0 import ConsumerProtocolAssignment
from kio.serial import entity_reader

from headrace.core.errors import KafkaError
from headrace.core.internal_topics import is_internal
from headrace.observability.metrics import GroupStats, PartitionStats

if TYPE_CHECKING:
    from headrace.core.broker import Broker
    from headrace.groups.coordinator import GroupCoordinator

log = logging.getLogger(__name__)

_read_assignment = entity_reader(ConsumerProtocolAssignment)

#: Attribute names under which the broker may hold its group coordinator.
def decode_assignment(data: bytes) -> list[tuple[str, int]]:
    """Topic-partitions in a consumer protocol assignment (any version; empty if unreadable)."""
    if len(data) < 2:
        return []
    try:
        assignment, _ = _read_assignment(memoryview(data)[2:], 0)
    except Exception:  # a non-consumer protocol (e.g. connect) carries other bytes
        return []
    return [(tp.topic, int(p)) for tp in assignment.assigned_partitions for p in tp.partitions]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed_offset: int
    log_end_offset: int
    lag: int
    member_id: str | None
    instance_id: str | None
    client_id: str | None


class BrokerView:
    """Scrape-time and REST-time figures computed from a broker; no state of its own."""

    def __init__(self, broker: Broker, groups: GroupCoordinator | None) -> None:
        self.broker = broker
        self.groups = groups

    # -- BrokerStatsSource ----------------------------------------------------------------

    def partition_stats(self) -> Iterator[PartitionStats]:
        logs = self.broker.logs
        node_id = self.broker.config.node_id
        for name, topic in list(logs.topics().items()):
            # Leadership comes from the metadata view, which replication keeps current.
            state = self.broker.metadata.topic(name)
            for partition in range(topic.partitions):
                try:
                    log_ = logs.get_partition(name, partition)
                    high_watermark = self.broker.replicas.high_watermark(name, partition)
                except Exception:  # deleted between listing and reading, or not hosted here
                    continue
                is_leader = True
                if state is not None and partition < len(state.partitions):
                    is_leader = state.partitions[partition].leader == node_id
                yield PartitionStats(
                    topic=name,
                    partition=partition,
                    size_bytes=log_.size_bytes,
                    segments=log_.segment_count,
                    log_start_offset=log_.log_start_offset,
                    log_end_offset=log_.log_end_offset,
                    high_watermark=high_watermark,
                    is_leader=is_leader,
                    last_stable_offset=log_.last_stable_offset(high_watermark),
                )

    def group_stats(self) -> Iterator[GroupStats]:
        coordinator = self.groups
        if coordinator is None:
            return
        for overview in coordinator.list_groups():
            description = coordinator.describe_group(overview.group_id)
            lag = {(entry.topic, entry.partition): entry.lag
                   for entry in self.group_lags(overview.group_id)}
            yield GroupStats(group=overview.group_id, members=len(description.members), lag=lag)

    def log_dirs(self) -> Iterable[str]:
        return [str(self.broker.config.data_dir)]

    # -- groups -------------------------------------------------------------------------------

    def group_lags(self, group: str) -> list[PartitionLag]:
        """Lag of every partition the group has committed or is assigned."""
        coordinator = self.groups
        if coordinator is None:
            return []
        description = coordinator.describe_group(group)
        owners: dict[tuple[str, int], Any] = {}
        for member in description.members:
            for topic_partition in decode_assignment(member.assignment):
                owners[topic_partition] = member
        committed = coordinator.committed_offsets(group)
        lags = []
        for topic_partition in sorted(set(committed) | set(owners)):
            topic, partition = topic_partition
            try:
                _, end = self.broker.offsets(topic, partition)
            except KafkaError:
                continue
            offset = committed[topic_partition].offset if topic_partition in committed else -1
            owner = owners.get(topic_partition)
            lags.append(PartitionLag(
                group=group,
                topic=topic,
                partition=partition,
                committed_offset=offset,
                log_end_offset=end,
                lag=max(0, end - offset) if offset >= 0 else end,
                member_id=owner.member_id if owner else None,
                instance_id=owner.group_instance_id if owner else None,
                client_id=owner.client_id if owner else None,
            ))
        return lags

    def visible_topics(self, include_internal: bool = False) -> list[str]:
        logs = self.broker.logs
        if logs is None:
            return []
        return sorted(n for n in logs.topics() if include_internal or not is_internal(n))


__all__ = ["BrokerView", "PartitionLag", "decode_assignment"]
