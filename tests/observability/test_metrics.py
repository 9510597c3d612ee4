"""The broker metrics: names, labels, hot-path hooks, scrape-time gauges and the series bound."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from headrace.core.requests import RequestObserver
from headrace.observability.metrics import (
    BrokerMetrics,
    GroupStats,
    PartitionStats,
    api_name,
    counter_value,
    error_name,
)
from headrace.observability.replication import ReplicationStats


@dataclass
class StaticStats:
    """A fixed set of figures standing in for the broker at scrape time."""

    partitions: list[PartitionStats]
    groups: list[GroupStats] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)

    def partition_stats(self) -> Iterable[PartitionStats]:
        return self.partitions

    def group_stats(self) -> Iterable[GroupStats]:
        return self.groups

    def log_dirs(self) -> Iterable[str]:
        return self.dirs


def test_names_of_apis_and_errors() -> None:
    assert api_name(0) == "Produce"
    assert api_name(18) == "ApiVersions"
    assert api_name(9999) == "Unknown9999"
    assert error_name(3) == "UNKNOWN_TOPIC_OR_PARTITION"


def test_metrics_is_a_request_observer_and_counts_requests() -> None:
    metrics = BrokerMetrics(broker_id=7, version="1.2.3")
    observer: RequestObserver = metrics
    observer.on_request(0, 9, 0.002, 0, 100, 50)
    observer.on_request(0, 9, 0.004, 3, 100, 50)
    observer.on_request(3, 12, 0.0001, 0, 10, 10)
    registry = metrics.registry
    assert counter_value(registry, "headrace_requests_total", {"api": "Produce"}) == 2
    assert counter_value(registry, "headrace_requests_total", {"api": "Metadata"}) == 1
    assert counter_value(registry, "headrace_request_errors_total",
                         {"api": "Produce", "error": "UNKNOWN_TOPIC_OR_PARTITION"}) == 1
    assert counter_value(registry, "headrace_request_duration_seconds_count",
                         {"api": "Produce"}) == 2
    assert abs(counter_value(registry, "headrace_request_duration_seconds_sum",
                             {"api": "Produce"}) - 0.006) < 1e-9
    assert counter_value(registry, "headrace_broker_info",
                         {"broker_id": "7", "version": "1.2.3"}) == 1


def test_topic_connection_and_fetch_counters() -> None:
    metrics = BrokerMetrics(broker_id=1, version="0")
    metrics.on_produced("orders", 0, records=10, size=1000)
    metrics.on_produced("orders", 1, records=5, size=400)
    metrics.on_fetched("orders", 0, size=1400)
    metrics.on_connection_opened()
    metrics.on_connection_opened()
    metrics.on_connection_closed()
    metrics.on_fetch_waiting(+1)
    metrics.on_fetch_waiting(+1)
    metrics.on_fetch_waiting(-1)
    registry = metrics.registry
    topic = {"topic": "orders"}
    assert counter_value(registry, "headrace_topic_bytes_in_total", topic) == 1400
    assert counter_value(registry, "headrace_topic_records_in_total", topic) == 15
    assert counter_value(registry, "headrace_topic_bytes_out_total", topic) == 1400
    assert counter_value(registry, "headrace_connections_total") == 2
    assert counter_value(registry, "headrace_connections_active") == 1
    assert counter_value(registry, "headrace_fetch_waiting") == 1
    metrics.forget_topic("orders")
    assert registry.get_sample_value("headrace_topic_bytes_in_total", topic) is None


def test_two_brokers_in_one_process_keep_separate_registries() -> None:
    first = BrokerMetrics(broker_id=1, version="0")
    second = BrokerMetrics(broker_id=2, version="0")
    first.on_request(1, 12, 0.01, 0)
    assert counter_value(first.registry, "headrace_requests_total", {"api": "Fetch"}) == 1
    assert counter_value(second.registry, "headrace_requests_total", {"api": "Fetch"}) == 0


def _partition(topic: str, partition: int, end: int) -> PartitionStats:
    return PartitionStats(topic=topic, partition=partition, size_bytes=end * 100, segments=1,
                          log_start_offset=0, log_end_offset=end, high_watermark=end,
                          is_leader=partition % 2 == 0)


def test_scrape_time_gauges_come_from_the_source(tmp_path: object) -> None:
    metrics = BrokerMetrics(broker_id=1, version="0")
    metrics.stats_source = StaticStats(
        partitions=[_partition("a", 0, 5), _partition("a", 1, 7)],
        groups=[GroupStats(group="g", members=2, lag={("a", 0): 3, ("a", 1): 0})],
        dirs=[str(tmp_path)],
    )
    registry = metrics.registry
    assert counter_value(registry, "headrace_log_end_offset", {"topic": "a", "partition": "1"}) == 7
    size = counter_value(registry, "headrace_log_size_bytes", {"topic": "a", "partition": "0"})
    assert size == 500
    assert counter_value(registry, "headrace_partitions") == 2
    assert counter_value(registry, "headrace_leader_partitions") == 1
    assert counter_value(registry, "headrace_under_replicated_partitions") == 0
    assert counter_value(registry, "headrace_consumer_group_lag",
                         {"group": "g", "topic": "a", "partition": "0"}) == 3
    assert counter_value(registry, "headrace_consumer_group_members", {"group": "g"}) == 2
    assert counter_value(registry, "headrace_log_dir_total_bytes", {"dir": str(tmp_path)}) > 0
    # The values move with the source: nothing is cached between scrapes.
    metrics.stats_source = StaticStats(partitions=[_partition("a", 0, 9)])
    assert counter_value(registry, "headrace_log_end_offset", {"topic": "a", "partition": "0"}) == 9
    assert registry.get_sample_value("headrace_log_end_offset",
                                     {"topic": "a", "partition": "1"}) is None


@dataclass
class StaticReplication:
    stats: ReplicationStats

    def replication_stats(self) -> ReplicationStats:
        return self.stats


def test_replication_gauges_and_isr_counters() -> None:
    metrics = BrokerMetrics(broker_id=1, version="0")
    registry = metrics.registry
    gauges = ("headrace_under_replicated_partitions", "headrace_under_min_isr_partitions",
              "headrace_offline_partitions")
    # A single broker (no replication source) exports them at 0, so alerts can read them.
    assert [registry.get_sample_value(name) for name in gauges] == [0, 0, 0]
    assert counter_value(registry, "headrace_isr_shrinks_total") == 0
    metrics.replication_source = StaticReplication(ReplicationStats(3, 1, 2))
    assert [counter_value(registry, name) for name in gauges] == [3, 1, 2]
    metrics.replication_source = StaticReplication(ReplicationStats())  # read on each scrape
    assert [counter_value(registry, name) for name in gauges] == [0, 0, 0]
    metrics.on_isr_shrink("t", 0)
    metrics.on_isr_shrink("t", 1)
    metrics.on_isr_expand("t", 0)
    assert counter_value(registry, "headrace_isr_shrinks_total") == 2
    assert counter_value(registry, "headrace_isr_expands_total") == 1


def test_the_docs_list_exactly_the_replication_series() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    section = docs.split("\n## Replication\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(headrace_\w+)`", section, re.MULTILINE))
    text = BrokerMetrics(broker_id=1, version="0").exposition().decode()
    exported = {sample.name for family in text_string_to_metric_families(text)
                for sample in family.samples if re.search(r"isr|replicated|offline", sample.name)}
    assert documented == exported


def test_partition_series_are_bounded() -> None:
    metrics = BrokerMetrics(broker_id=1, version="0", max_partition_series=3)
    metrics.stats_source = StaticStats(partitions=[_partition("t", p, p) for p in range(10)])
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert len(families["headrace_log_end_offset"].samples) == 3
    assert families["headrace_partitions"].samples[0].value == 10
    assert families["headrace_metrics_partition_series_dropped"].samples[0].value == 7


def test_series_bound_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_METRICS_MAX_PARTITION_SERIES", "1")
    metrics = BrokerMetrics(broker_id=1, version="0")
    metrics.stats_source = StaticStats(partitions=[_partition("t", p, p) for p in range(4)])
    assert counter_value(metrics.registry, "headrace_metrics_partition_series_dropped") == 3
    monkeypatch.setenv("HEADRACE_METRICS_MAX_PARTITION_SERIES", "many")
    with pytest.raises(ValueError, match="HEADRACE_METRICS_MAX_PARTITION_SERIES"):
        BrokerMetrics(broker_id=1, version="0")


def test_exposition_has_every_documented_name() -> None:
    metrics = BrokerMetrics(broker_id=1, version="0")
    metrics.stats_source = StaticStats(partitions=[_partition("t", 0, 1)],
                                       groups=[GroupStats("g", 1, {("t", 0): 1})], dirs=["/"])
    metrics.on_request(0, 9, 0.001, 2)
    metrics.on_produced("t", 0, 1, 10)
    metrics.on_fetched("t", 0, 10)
    metrics.on_group_rebalance("g")
    text = metrics.exposition().decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    expected = {
        "headrace_broker_info", "headrace_requests_total",
        "headrace_request_duration_seconds_bucket",
        "headrace_request_errors_total", "headrace_topic_bytes_in_total",
        "headrace_topic_bytes_out_total", "headrace_topic_records_in_total",
        "headrace_connections_active", "headrace_connections_total", "headrace_fetch_waiting",
        "headrace_log_size_bytes", "headrace_log_segments", "headrace_log_start_offset",
        "headrace_log_end_offset", "headrace_high_watermark", "headrace_log_dir_free_bytes",
        "headrace_log_dir_total_bytes", "headrace_consumer_group_lag",
        "headrace_consumer_group_members", "headrace_consumer_group_rebalances_total",
        "headrace_partitions", "headrace_leader_partitions",
        "headrace_under_replicated_partitions", "headrace_offline_partitions",
        "headrace_under_min_isr_partitions", "headrace_isr_shrinks_total",
        "headrace_isr_expands_total", "process_cpu_seconds_total",
    }
    assert expected <= names, expected - names
