"""Replication health gauges, computed from the cluster's state whenever Prometheus scrapes.

Only the cluster layer knows which partitions this broker leads, their ISRs and which have no
leader, so it hands :class:`~headrace.observability.metrics.BrokerMetrics` a
:class:`ReplicationStatsSource`; nothing is kept in step by hand, so a gauge can never drift
from the metadata it describes. A single broker has no source: it leads every partition with
ISR = {itself} and refuses no acks=all write, so every gauge is 0 there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class ReplicationStats:
    """Partition counts of one broker at scrape time (Kafka's ReplicaManager and controller
    gauges: UnderReplicatedPartitions, UnderMinIsrPartitionCount, OfflinePartitionsCount)."""

    #: Partitions this broker leads with a replica out of the ISR.
    under_replicated: int = 0
    #: Partitions this broker leads whose ISR is smaller than min.insync.replicas.
    under_min_isr: int = 0
    #: Partitions without a live leader; only the active controller counts them.
    offline: int = 0


class ReplicationStatsSource(Protocol):
    """What the collector asks on each scrape (the cluster node in a clustered broker)."""

    def replication_stats(self) -> ReplicationStats: ...


class ReplicationCollector(Collector):
    """Yields the replication gauges from the source, or zeros without one."""

    def __init__(self, source: Callable[[], ReplicationStatsSource | None]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        # An empty description keeps the registry from calling collect() at registration time.
        return []

    def collect(self) -> Iterator[Metric]:
        source = self._source()
        stats = source.replication_stats() if source is not None else ReplicationStats()
        yield GaugeMetricFamily(
            "headrace_under_replicated_partitions",
            "Led partitions with a replica out of the in-sync replica set.",
            value=stats.under_replicated)
        yield GaugeMetricFamily(
            "headrace_under_min_isr_partitions",
            "Led partitions whose in-sync replica set is smaller than min.insync.replicas "
            "(acks=all writes to them are refused).", value=stats.under_min_isr)
        yield GaugeMetricFamily(
            "headrace_offline_partitions",
            "Partitions without a live leader (counted by the active controller only).",
            value=stats.offline)


__all__ = ["ReplicationCollector", "ReplicationStats", "ReplicationStatsSource"]
