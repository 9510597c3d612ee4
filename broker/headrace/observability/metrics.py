"""Prometheus metrics for one broker, cheap enough for the Kafka hot path.

Every broker owns its own :class:`prometheus_client.CollectorRegistry` (plus process metrics), so
several brokers in one test process never collide. Request, byte and connection figures are plain
integers in per-API and per-topic slots resolved once and cached, so an update on the Kafka hot
path is a dict lookup and an integer add (no lock: the hooks run on the broker's event loop
thread, as do scrapes); a collector turns them into Prometheus counters and a histogram.
Storage, group and partition gauges are not updated on the hot path at all:
:class:`ScrapeCollector` reads them from a :class:`BrokerStatsSource` when Prometheus scrapes, and
the replication gauges come from the cluster's state the same way
(:mod:`headrace.observability.replication`); the cluster's leaders report ISR changes through
``on_isr_shrink`` / ``on_isr_expand``.
Log maintenance (retention deletions, producer-id expiry, log cleaner passes) reaches the
metrics through the broker's retention loop calling ``on_retention_pass`` / ``on_cleaning_pass``
(the storage package itself never imports prometheus). docs/metrics.md documents every name.
"""

from __future__ import annotations

import os
import shutil
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from headrace.observability.quotas import QuotaCollector, QuotaStatsSource
from headrace.observability.replication import ReplicationCollector, ReplicationStatsSource
from headrace.observability.transactions import TransactionCollector, TransactionStatsSource
from headrace.storage import CleaningTask, RetentionReport

#: The ``limit`` label values of ``headrace_connections_refused_total`` (Kafka's config names).
CONNECTION_LIMITS = ("max.connections", "max.connections.per.ip")

#: Default bound on per-partition series (per gauge name); see docs/metrics.md.
DEFAULT_MAX_PARTITION_SERIES = 2000
#: Environment variable that overrides the bound for a broker process.
MAX_PARTITION_SERIES_ENV = "HEADRACE_METRICS_MAX_PARTITION_SERIES"


def default_max_partition_series() -> int:
    raw = os.environ.get(MAX_PARTITION_SERIES_ENV)
    if raw is None:
        return DEFAULT_MAX_PARTITION_SERIES
    try:
        return max(0, int(raw))
    except ValueError:
        raise ValueError(f"{MAX_PARTITION_SERIES_ENV} must be an integer, got {raw!r}") from None

#: ``result`` label values of ``headrace_log_cleaner_passes_total``: committed, failed (an I/O
#: or corruption error while cleaning or swapping), or given up because the log changed meanwhile.
CLEANING_RESULTS = ("ok", "error", "aborted")

#: Kafka request latencies span ~50 µs (metadata) to the long-poll wait of a fetch (seconds).
REQUEST_DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
)


def api_name(api_key: int) -> str:
    """Kafka's CamelCase name of an API key (``0`` → ``Produce``), ``Unknown<N>`` otherwise."""
    module = api_key_map.get(api_key)
    if module is None:
        return f"Unknown{api_key}"
    return "".join(part.capitalize() for part in module.split("_"))


def error_name(error_code: int) -> str:
    """Kafka's upper-case error name (``3`` → ``UNKNOWN_TOPIC_OR_PARTITION``)."""
    try:
        return ErrorCode(error_code).name.upper()
    except ValueError:
        return f"ERROR_{error_code}"


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """What the broker knows about one hosted partition replica at scrape time."""

    topic: str
    partition: int
    size_bytes: int
    segments: int
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    is_leader: bool = True
    #: The Last Stable Offset (read_committed consumers read up to it); -1 when unknown.
    last_stable_offset: int = -1


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One consumer group: member count and lag per committed partition."""

    group: str
    members: int
    #: (topic, partition) → lag in records (log end offset - committed offset, never negative).
    lag: dict[tuple[str, int], int]


class BrokerStatsSource(Protocol):
    """Read-only view the scrape collector asks for storage, group and log-dir figures."""

    def partition_stats(self) -> Iterable[PartitionStats]: ...

    def group_stats(self) -> Iterable[GroupStats]: ...

    def log_dirs(self) -> Iterable[str]: ...


class ScrapeCollector(Collector):
    """Yields storage, partition, group and disk gauges computed from the source on each scrape."""

    def __init__(
        self,
        source: Callable[[], BrokerStatsSource | None],
        max_partition_series: int,
    ) -> None:
        self._source = source
        self._max_partition_series = max_partition_series

    def describe(self) -> list[Metric]:
        # An empty description keeps the registry from calling collect() at registration time.
        return []

    def collect(self) -> Iterator[Metric]:
        source = self._source()
        if source is None:
            return
        yield from self._partition_metrics(source)
        yield from self._group_metrics(source)
        yield from self._disk_metrics(source)

    def _partition_metrics(self, source: BrokerStatsSource) -> Iterator[Metric]:
        labels = ["topic", "partition"]
        size = GaugeMetricFamily("headrace_log_size_bytes", "Bytes on disk of the partition log.",
                                 labels=labels)
        segments = GaugeMetricFamily("headrace_log_segments", "Segments in the partition log.",
                                     labels=labels)
        start = GaugeMetricFamily("headrace_log_start_offset", "First offset still in the log.",
                                  labels=labels)
        end = GaugeMetricFamily("headrace_log_end_offset", "Offset the next record will get.",
                                labels=labels)
        hwm = GaugeMetricFamily("headrace_high_watermark",
                                "Offset up to which records are committed (visible to consumers).",
                                labels=labels)
        lso_lag = GaugeMetricFamily(
            "headrace_last_stable_offset_lag",
            "High watermark minus Last Stable Offset: records held back from read_committed "
            "consumers by undecided transactions.", labels=labels)
        hosted = led = dropped = 0
        stats = sorted(source.partition_stats(), key=lambda s: (s.topic, s.partition))
        for stat in stats:
            hosted += 1
            led += stat.is_leader
            if hosted > self._max_partition_series:
                dropped += 1
                continue
            values = [stat.topic, str(stat.partition)]
            size.add_metric(values, stat.size_bytes)
            segments.add_metric(values, stat.segments)
            start.add_metric(values, stat.log_start_offset)
            end.add_metric(values, stat.log_end_offset)
            hwm.add_metric(values, stat.high_watermark)
            if stat.is_leader and stat.last_stable_offset >= 0:
                lso_lag.add_metric(values, stat.high_watermark - stat.last_stable_offset)
        yield from (size, segments, start, end, hwm, lso_lag)
        yield GaugeMetricFamily("headrace_partitions", "Partition replicas hosted by this broker.",
                                value=hosted)
        yield GaugeMetricFamily("headrace_leader_partitions", "Partitions this broker leads.",
                                value=led)
        yield GaugeMetricFamily("headrace_metrics_partition_series_dropped",
                                "Partitions left out of the per-partition gauges by the series "
                                "bound (HEADRACE_METRICS_MAX_PARTITION_SERIES).", value=dropped)

    def _group_metrics(self, source: BrokerStatsSource) -> Iterator[Metric]:
        lag = GaugeMetricFamily("headrace_consumer_group_lag",
                                "Records between the committed offset and the log end offset.",
                                labels=["group", "topic", "partition"])
        lag_sum = GaugeMetricFamily("headrace_consumer_group_lag_sum",
                                    "Records the consumer group has yet to read, summed over "
                                    "its partitions.", labels=["group"])
        members = GaugeMetricFamily("headrace_consumer_group_members",
                                    "Members currently in the consumer group.", labels=["group"])
        series = 0
        for group in source.group_stats():
            members.add_metric([group.group], group.members)
            if group.lag:
                lag_sum.add_metric([group.group], sum(group.lag.values()))
            for (topic, partition), records in sorted(group.lag.items()):
                series += 1
                if series <= self._max_partition_series:
                    lag.add_metric([group.group, topic, str(partition)], records)
        yield lag
        yield lag_sum
        yield members

    def _disk_metrics(self, source: BrokerStatsSource) -> Iterator[Metric]:
        free = GaugeMetricFamily("headrace_log_dir_free_bytes",
                                 "Free bytes on the file system of the log directory.",
                                 labels=["dir"])
        total = GaugeMetricFamily("headrace_log_dir_total_bytes",
                                  "Size of the file system of the log directory.", labels=["dir"])
        for directory in source.log_dirs():
            try:
                usage = shutil.disk_usage(directory)
            except OSError:
                continue
            free.add_metric([directory], usage.free)
            total.add_metric([directory], usage.total)
        yield free
        yield total


class _TopicTotals:
    """Plain integer totals of one topic (the hot path adds to them; scrapes read them)."""

    __slots__ = ("bytes_in", "bytes_out", "records_in", "records_out")

    def __init__(self) -> None:
        self.bytes_in = self.bytes_out = self.records_in = self.records_out = 0


class _ApiTotals:
    """Request count, latency histogram and errors of one API key."""

    __slots__ = ("buckets", "count", "errors", "name", "seconds")

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(REQUEST_DURATION_BUCKETS) + 1)  # last: above every bound
        self.errors: dict[int, int] = {}


class _HotPathCollector(Collector):
    """Exposes the hot-path totals as Prometheus counters, histogram and gauges at scrape time."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        requests = CounterMetricFamily("headrace_requests", "Kafka requests handled, by API name.",
                                       labels=["api"])
        durations = HistogramMetricFamily(
            "headrace_request_duration_seconds",
            "Time from reading a Kafka request to writing its response.", labels=["api"])
        errors = CounterMetricFamily(
            "headrace_request_errors",
            "Kafka requests answered with an error, by Kafka error name.",
            labels=["api", "error"])
        bounds = [*(str(b) for b in REQUEST_DURATION_BUCKETS), "+Inf"]
        for api in list(m._apis.values()):
            requests.add_metric([api.name], api.count)
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, api.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            durations.add_metric([api.name], buckets, api.seconds)
            for code, count in list(api.errors.items()):
                errors.add_metric([api.name, error_name(code)], count)
        yield from (requests, durations, errors)
        families = {
            "bytes_in": CounterMetricFamily("headrace_topic_bytes_in",
                                            "Record batch bytes appended.", labels=["topic"]),
            "bytes_out": CounterMetricFamily(
                "headrace_topic_bytes_out", "Record batch bytes sent to consumers and followers.",
                labels=["topic"]),
            "records_in": CounterMetricFamily("headrace_topic_records_in", "Records appended.",
                                              labels=["topic"]),
            "records_out": CounterMetricFamily(
                "headrace_topic_records_out",
                "Records sent by HTTP reads (Kafka fetches count bytes only: the broker never "
                "decodes them).", labels=["topic"]),
        }
        for topic, totals in list(m._topics.items()):
            for attribute, family in families.items():
                family.add_metric([topic], getattr(totals, attribute))
        yield from families.values()
        yield GaugeMetricFamily("headrace_connections_active", "Open Kafka client connections.",
                                value=m._connections_active)
        yield CounterMetricFamily("headrace_connections", "Kafka client connections accepted.",
                                  value=m._connections)
        refused = CounterMetricFamily(
            "headrace_connections_refused",
            "Kafka client connections closed at accept by max.connections or "
            "max.connections.per.ip.", labels=["limit"])
        for limit, count in m._connections_refused.items():
            refused.add_metric([limit], count)
        yield refused
        yield GaugeMetricFamily("headrace_fetch_waiting",
                                "Fetch requests parked waiting for data (long poll).",
                                value=m._fetch_waiting)


class BrokerMetrics:
    """All metrics of one broker, and the request observer the Kafka dispatch loop calls.

    The ``on_*`` methods are the hook the server's dispatch loop calls; they are safe to call from
    the event loop thread at request rate. ``stats_source`` and ``replication_source`` are
    consulted only at scrape time.
    """

    def __init__(
        self,
        broker_id: int,
        version: str,
        *,
        max_partition_series: int | None = None,
        process_metrics: bool = True,
    ) -> None:
        # ``*_created`` series double the exposition and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.stats_source: BrokerStatsSource | None = None
        #: Set by the cluster layer (``headrace.cluster.node.attach_cluster``); None: one broker.
        self.replication_source: ReplicationStatsSource | None = None
        registry = self.registry
        if process_metrics:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        info = Gauge("headrace_broker_info", "Constant 1, labelled with the broker id and version.",
                     ["broker_id", "version"], registry=registry)
        info.labels(str(broker_id), version).set(1)
        self.group_rebalances = Counter("headrace_consumer_group_rebalances",
                                        "Rebalances started, by consumer group.", ["group"],
                                        registry=registry)
        self.isr_shrinks = Counter(
            "headrace_isr_shrinks",
            "In-sync replica set shrinks of partitions this broker leads, one per partition.",
            registry=registry)
        self.isr_expands = Counter(
            "headrace_isr_expands",
            "In-sync replica set expansions of partitions this broker leads, one per partition.",
            registry=registry)
        self.sasl_authentications = Counter(
            "headrace_sasl_authentications",
            "SASL authentications (first and KIP-368 re-authentications) by mechanism and "
            "result (success, failure).", ["mechanism", "result"], registry=registry)
        self.http_requests = Counter("headrace_http_requests", "HTTP requests served.",
                                     ["method", "route", "status"], registry=registry)
        self.http_request_duration = Histogram(
            "headrace_http_request_duration_seconds", "Time to serve an HTTP request.",
            ["method", "route"], registry=registry,
        )
        self._register_log_maintenance(registry)
        if max_partition_series is None:
            max_partition_series = default_max_partition_series()
        registry.register(ScrapeCollector(lambda: self.stats_source, max_partition_series))
        registry.register(ReplicationCollector(lambda: self.replication_source))
        #: Set by the app: the transaction coordinator's counts (None: zeros).
        self.transaction_source: TransactionStatsSource | None = None
        registry.register(TransactionCollector(lambda: self.transaction_source))
        #: Set by the app: client-quota and connection-rate throttles (None: zeros).
        self.quota_source: QuotaStatsSource | None = None
        registry.register(QuotaCollector(lambda: self.quota_source))
        # Hot-path totals: plain ints updated from the event loop thread, exposed at scrape time
        # by _HotPathCollector (a prometheus_client child's inc() costs a lock; this a dict hit).
        self._apis: dict[int, _ApiTotals] = {}
        self._topics: dict[str, _TopicTotals] = {}
        self._connections = 0
        self._connections_active = 0
        #: Connections closed at accept, by the Kafka limit that refused them (both always
        #: exported, from zero).
        self._connections_refused = {limit: 0 for limit in CONNECTION_LIMITS}
        self._fetch_waiting = 0
        registry.register(_HotPathCollector(self))
        self._watched_coordinators: set[int] = set()
        #: Set (by ``headrace.web.create_app``) when tracing is on: every Kafka request then
        #: also becomes a span named ``kafka <Api>``. None costs one comparison per request.
        self.tracer: Tracer | None = None

    def _register_log_maintenance(self, registry: CollectorRegistry) -> None:
        # A pass is rare (every retention check at most), so plain prometheus_client children
        # do. Every series exists from the start at 0, so rate()/increase() see the first pass.
        self.cleaner_passes = Counter(
            "headrace_log_cleaner_passes", "Log cleaner (compaction) passes, by result.",
            ["result"], registry=registry)
        for result in CLEANING_RESULTS:
            self.cleaner_passes.labels(result)
        self.cleaner_bytes_read = Counter(
            "headrace_log_cleaner_bytes_read", "Bytes of batches read by committed cleaner passes.",
            registry=registry)
        self.cleaner_bytes_written = Counter(
            "headrace_log_cleaner_bytes_written",
            "Bytes of batches written by committed cleaner passes.", registry=registry)
        self.cleaner_records_removed = Counter(
            "headrace_log_cleaner_records_removed",
            "Records removed by committed cleaner passes (superseded values and tombstones).",
            registry=registry)
        self.cleaner_tombstones_removed = Counter(
            "headrace_log_cleaner_tombstones_removed",
            "Tombstones removed after delete.retention.ms by committed cleaner passes.",
            registry=registry)
        self.cleaner_last_pass_seconds = Gauge(
            "headrace_log_cleaner_last_pass_seconds",
            "Duration of the most recent cleaner pass, whatever its result.", registry=registry)
        # Kafka's uncleanable-partitions-count: partitions whose latest pass failed (a
        # corrupt segment fails every pass until repaired). Bounded by the hosted partitions.
        self._failing_cleaner_partitions: set[tuple[str, int]] = set()
        Gauge("headrace_log_cleaner_failing_partitions",
              "Partitions whose most recent cleaner pass failed.",
              registry=registry).set_function(lambda: len(self._failing_cleaner_partitions))
        self.retention_segments_deleted = Counter(
            "headrace_log_retention_segments_deleted",
            "Segments deleted by time/size retention.", registry=registry)
        self.retention_bytes_deleted = Counter(
            "headrace_log_retention_bytes_deleted",
            "Bytes of segments deleted by time/size retention.", registry=registry)
        self.producer_ids_expired = Counter(
            "headrace_producer_ids_expired",
            "Idempotent producer states forgotten after producer.id.expiration.ms idle.",
            registry=registry)

    # -- the log maintenance observer (called by the broker's retention loop) -------------------

    def on_retention_pass(self, report: RetentionReport) -> None:
        """One ``LogManager.enforce_retention`` pass over every partition finished."""
        self.retention_segments_deleted.inc(report.segments_deleted)
        self.retention_bytes_deleted.inc(report.bytes_deleted)
        self.producer_ids_expired.inc(report.producers_expired)

    def on_cleaning_pass(self, task: CleaningTask, result: str, seconds: float) -> None:
        """One partition's cleaning pass ended with ``result`` (one of :data:`CLEANING_RESULTS`).

        Bytes and records count only committed passes: a failed or aborted pass changed nothing.
        """
        if result not in CLEANING_RESULTS:
            raise ValueError(f"unknown cleaning result {result!r}")
        self.cleaner_passes.labels(result).inc()
        self.cleaner_last_pass_seconds.set(seconds)
        if result == "error":
            self._failing_cleaner_partitions.add((task.topic, task.partition))
        if result == "ok":
            self._failing_cleaner_partitions.discard((task.topic, task.partition))
            stats = task.stats
            self.cleaner_bytes_read.inc(stats.bytes_before)
            self.cleaner_bytes_written.inc(stats.bytes_after)
            self.cleaner_records_removed.inc(stats.records_removed)
            self.cleaner_tombstones_removed.inc(stats.tombstones_removed)

    # -- the hot-path observer -------------------------------------------------------------------

    def on_request(
        self,
        api_key: int,
        api_version: int,
        seconds: float,
        error_code: int,
        request_bytes: int = 0,
        response_bytes: int = 0,
    ) -> None:
        """One Kafka request answered; ``error_code`` is the top-level or first non-zero error."""
        totals = self._apis.get(api_key)
        if totals is None:
            totals = self._apis[api_key] = _ApiTotals(api_name(api_key))
        totals.count += 1
        totals.seconds += seconds
        totals.buckets[bisect_left(REQUEST_DURATION_BUCKETS, seconds)] += 1
        if error_code:
            totals.errors[error_code] = totals.errors.get(error_code, 0) + 1
        if self.tracer is not None:
            self._record_span(totals.name, api_version, seconds, error_code)

    def _record_span(self, api: str, api_version: int, seconds: float, error_code: int) -> None:
        # The dispatch loop reports a request once it is answered: record its span after the
        # fact with the measured start, so tracing needs no second hook in the server.
        assert self.tracer is not None
        end = time.time_ns()
        span = self.tracer.start_span(
            f"kafka {api}", kind=SpanKind.SERVER, start_time=end - int(seconds * 1e9),
            attributes={"rpc.system": "kafka", "rpc.method": api,
                        "kafka.api_version": api_version})
        if error_code:
            span.set_attribute("kafka.error", error_name(error_code))
            span.set_status(Status(StatusCode.ERROR, error_name(error_code)))
        span.end(end_time=end)

    def _topic(self, topic: str) -> _TopicTotals:
        totals = self._topics.get(topic)
        if totals is None:
            totals = self._topics[topic] = _TopicTotals()
        return totals

    def on_produced(self, topic: str, partition: int, records: int, size: int) -> None:
        """Batches of ``size`` bytes appended to ``topic`` (by Kafka or HTTP produce)."""
        totals = self._topics.get(topic) or self._topic(topic)
        totals.bytes_in += size
        totals.records_in += records

    def on_fetched(self, topic: str, partition: int, size: int, records: int = 0) -> None:
        """Batch bytes sent out of ``topic``; ``records`` only when the reader decoded them."""
        totals = self._topics.get(topic) or self._topic(topic)
        totals.bytes_out += size
        totals.records_out += records

    def on_connection_opened(self) -> None:
        self._connections += 1
        self._connections_active += 1

    def on_connection_closed(self) -> None:
        self._connections_active -= 1

    def on_authentication(self, mechanism: str, result: str) -> None:
        self.sasl_authentications.labels(mechanism, result).inc()

    def on_connection_refused(self, limit: str) -> None:
        self._connections_refused[limit] = self._connections_refused.get(limit, 0) + 1

    def on_fetch_waiting(self, delta: int) -> None:
        """A long-poll fetch parked (``+1``) or woke/expired (``-1``)."""
        self._fetch_waiting += delta

    @property
    def fetch_waiting(self) -> int:
        """Fetches parked right now (long poll)."""
        return self._fetch_waiting

    def on_group_rebalance(self, group: str, generation: int = 0) -> None:
        """A rebalance of ``group`` completed (the coordinator's rebalance listener)."""
        self.group_rebalances.labels(group).inc()

    def watch_rebalances(self, coordinator: object) -> None:
        """Count rebalances of a group coordinator (``add_rebalance_listener``), once."""
        if id(coordinator) in self._watched_coordinators:
            return
        add_listener = getattr(coordinator, "add_rebalance_listener", None)
        if add_listener is not None:
            add_listener(self.on_group_rebalance)
            self._watched_coordinators.add(id(coordinator))

    # -- the ISR change observer (called by the cluster's replica manager) ----------------------

    def on_isr_shrink(self, topic: str, partition: int) -> None:
        """Replicas left the ISR of a partition this broker leads."""
        self.isr_shrinks.inc()

    def on_isr_expand(self, topic: str, partition: int) -> None:
        """Replicas joined the ISR of a partition this broker leads."""
        self.isr_expands.inc()

    def forget_topic(self, topic: str) -> None:
        """Drop a deleted topic's counter series so the exposition doesn't grow forever."""
        self._topics.pop(topic, None)
        self._failing_cleaner_partitions = {
            key for key in self._failing_cleaner_partitions if key[0] != topic}

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


def counter_value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None
                  ) -> float:
    """A sample's current value (0 when absent); convenient for tests and the bench."""
    value = registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


__all__ = [
    "CLEANING_RESULTS",
    "DEFAULT_MAX_PARTITION_SERIES",
    "MAX_PARTITION_SERIES_ENV",
    "BrokerMetrics",
    "BrokerStatsSource",
    "GroupStats",
    "PartitionStats",
    "ScrapeCollector",
    "api_name",
    "counter_value",
    "error_name",
]
