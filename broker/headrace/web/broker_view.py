"""Read-only figures about a running broker for the metrics scrape.

It adapts the broker services object (``headrace.core.broker.Broker``), its group coordinator
and the consumer-lag monitor to :class:`headrace.observability.metrics.BrokerStatsSource`:
per-replica log figures for the partitions this broker hosts (led or followed), and the lag of
the groups it coordinates as last refreshed by :class:`~headrace.groups.lag.LagMonitor` (a
scrape never waits on other brokers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from headrace.core.internal_topics import is_internal
from headrace.groups.lag import LagMonitor, PartitionLag
from headrace.observability.metrics import GroupStats, PartitionStats

if TYPE_CHECKING:
    from headrace.core.broker import Broker
    from headrace.groups.coordinator import GroupCoordinator

log = logging.getLogger(__name__)


class BrokerView:
    """Scrape-time figures computed from a broker; no state of its own."""

    def __init__(self, broker: Broker, groups: GroupCoordinator | None,
                 lag: LagMonitor | None = None) -> None:
        self.broker = broker
        self.groups = groups
        self.lag = lag

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
                    high_watermark = self.broker.replicas.hosted_high_watermark(name, partition)
                except Exception:  # deleted between listing and reading
                    continue
                if high_watermark is None:  # materialized here, but no replica of ours
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
        lags = self.lag.lag if self.lag is not None else {}
        for overview in coordinator.list_groups():
            description = coordinator.describe_any_protocol(overview.group_id)
            yield GroupStats(group=overview.group_id, members=len(description.members),
                             lag=lags.get(overview.group_id, {}))

    def log_dirs(self) -> Iterable[str]:
        return [str(self.broker.config.data_dir)]

    # -- topics -------------------------------------------------------------------------------

    def visible_topics(self, include_internal: bool = False) -> list[str]:
        logs = self.broker.logs
        if logs is None:
            return []
        return sorted(n for n in logs.topics() if include_internal or not is_internal(n))


__all__ = ["BrokerView", "PartitionLag"]
