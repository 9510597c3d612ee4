"""Transaction metrics: the coordinator's open transactions and how its transactions ended.

Read from the transaction coordinator at scrape time (``TransactionStatsSource``); the
per-partition Last Stable Offset lag is with the partition gauges (:mod:`.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class TransactionStats:
    ongoing: int = 0
    committed: int = 0
    aborted: int = 0
    timed_out: int = 0


class TransactionStatsSource(Protocol):
    def transaction_stats(self) -> TransactionStats: ...


class TransactionCollector(Collector):
    """Yields the transaction figures from the source, or zeros without one."""

    def __init__(self, source: Callable[[], TransactionStatsSource | None]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []  # keeps the registry from calling collect() at registration time

    def collect(self) -> Iterator[Metric]:
        source = self._source()
        stats = source.transaction_stats() if source is not None else TransactionStats()
        yield GaugeMetricFamily(
            "headrace_transactions_ongoing",
            "Open transactions (Ongoing or being completed) this broker coordinates.",
            value=stats.ongoing)
        yield CounterMetricFamily(
            "headrace_transactions_committed", "Transactions this broker completed as committed.",
            value=stats.committed)
        yield CounterMetricFamily(
            "headrace_transactions_aborted", "Transactions this broker completed as aborted.",
            value=stats.aborted)
        yield CounterMetricFamily(
            "headrace_transactions_timed_out",
            "Transactions aborted by this broker after transaction.timeout.ms.",
            value=stats.timed_out)
