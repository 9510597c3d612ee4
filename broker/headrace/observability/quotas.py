"""Quota metrics: how often and for how long clients were throttled.

Counted by the client-quota manager and the listeners' connection-rate limits as plain numbers
(the hot path never touches prometheus) and read at scrape time (``QuotaStatsSource``). Labels
are the quota type only: a label per user or client id would let clients mint series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

#: Client quota types (Kafka's Produce, Fetch and Request quota managers).
CLIENT_QUOTA_TYPES = ("produce", "fetch", "request")
#: Where a connection-creation limit applies: broker-wide or per client address (KIP-612).
CONNECTION_SCOPES = ("broker", "ip")


@dataclass(slots=True)
class QuotaStats:
    """Throttles handed out since the broker started."""

    throttled: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CLIENT_QUOTA_TYPES, 0))
    throttle_seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(CLIENT_QUOTA_TYPES, 0.0))
    connections_throttled: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(CONNECTION_SCOPES, 0))
    connection_throttle_seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(CONNECTION_SCOPES, 0.0))


class QuotaStatsSource(Protocol):
    def quota_stats(self) -> QuotaStats: ...


class QuotaCollector(Collector):
    """Yields the throttle counters from the source, or zeros without one."""

    def __init__(self, source: Callable[[], QuotaStatsSource | None]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []  # keeps the registry from calling collect() at registration time

    def collect(self) -> Iterator[Metric]:
        source = self._source()
        stats = source.quota_stats() if source is not None else QuotaStats()
        for name, help_text, label, values in (
            ("headrace_quota_throttled", "Responses throttled by a client quota.", "quota",
             stats.throttled),
            ("headrace_quota_throttle_seconds", "Throttle time handed out by client quotas.",
             "quota", stats.throttle_seconds),
            ("headrace_connection_creation_throttled",
             "Connections delayed (broker) or closed (ip) by a connection creation rate.",
             "scope", stats.connections_throttled),
            ("headrace_connection_creation_throttle_seconds",
             "Time connections were held back by a connection creation rate.", "scope",
             stats.connection_throttle_seconds),
        ):
            family = CounterMetricFamily(name, help_text, labels=[label])
            for key, value in values.items():
                family.add_metric([key], value)
            yield family
