"""The broker services object: one place that owns storage, topics, replicas and servers.

Kafka handlers, the HTTP API and the group coordinator all call the same in-process methods here
(``create_topics``, ``produce``, ``read``, ``list_offsets``, ``alter_configs``...), so every
front end shares one code path and one set of Kafka error codes (:class:`KafkaError`).
``start()``/``stop()`` run the whole broker: log recovery, the Kafka listener, the HTTP listener,
registered services (the group coordinator) and periodic retention.

Its layers are seams: the replica manager (who leads, what is committed, who may fetch where),
the topic manager, the metadata view, the producer-id source and readiness checks. A lone broker
uses the local ones; the cluster layer supplies its own through :meth:`Broker.attach` and
:meth:`Broker.add_readiness_check` before ``start()``, and nothing replaces them afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.core.metadata import BrokerEndpoint, LocalMetadataView, MetadataView
from headrace.core.producer_ids import ProducerIdAllocator, ProducerIdSource
from headrace.core.replica import ReplicaManager
from headrace.core.requests import ApiRegistry, NullObserver, RequestObserver
from headrace.core.topics import TopicManager, TopicSpec, is_internal, topic_name_problem
from headrace.storage import (
    DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    AppendResult,
    CleaningTask,
    LogManagerAPI,
    LogRead,
    RetentionReport,
    TopicMetadata,
)

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"


@dataclass
class BrokerConfig:
    """Everything ``headrace broker`` flags configure."""

    data_dir: Path
    node_id: int = 1
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    #: None: advertise the listen address (with the bound port when listening on port 0).
    advertised_host: str | None = None
    advertised_port: int | None = None
    #: None: no HTTP listener (tests of the Kafka side alone).
    http_host: str | None = "127.0.0.1"
    http_port: int = 8080
    max_request_bytes: int = 100 * 1024 * 1024
    default_partitions: int = 1
    auto_create_topics: bool = True
    offsets_topic_partitions: int = 50
    #: Kafka's group.initial.rebalance.delay.ms: how long an Empty group waits for more joiners
    #: before its first rebalance (see docs/groups.md).
    group_initial_rebalance_delay_ms: int = 3000
    retention_check_seconds: float = 30.0
    #: Kafka's producer.id.expiration.ms: idempotent producer state idle this long is forgotten.
    producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS
    topic_defaults: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class LogMaintenanceObserver(Protocol):
    """What the retention loop reports to, when the broker's observer has these hooks
    (``BrokerMetrics`` does); the storage package stays free of metrics code."""

    def on_retention_pass(self, report: RetentionReport) -> None:
        """One retention pass (deletions, rolls, producer-id expiry) over every partition."""

    def on_cleaning_pass(self, task: CleaningTask, result: str, seconds: float) -> None:
        """One partition's compaction pass ended: ``result`` is ``ok``, ``error`` or
        ``aborted`` (:func:`cleaning_result`); ``seconds`` is its wall time."""


def cleaning_result(committed: bool, error: BaseException | None) -> str:
    """``ok`` when the pass was swapped in, ``error`` when it failed, ``aborted`` when it was
    discarded because the log changed (truncation, retention, deletion) while it ran."""
    if committed:
        return "ok"
    return "error" if error is not None else "aborted"


Service = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]
#: A readiness condition for /readyz: true when ready; raising counts as not ready.
ReadinessCheck = Callable[[], bool]


class Broker:
    """One Kafka-compatible broker. Construct, then ``await start()``; ``await stop()`` ends it."""

    def __init__(self, config: BrokerConfig, *, observer: RequestObserver | None = None) -> None:
        self.config = config
        self.observer: RequestObserver = observer or NullObserver()
        self.registry = ApiRegistry()
        self.logs: LogManagerAPI | None = None
        self._topics: TopicManager | None = None
        self._replicas: ReplicaManager | None = None
        self._metadata: MetadataView | None = None
        self._producer_ids: ProducerIdSource | None = None
        #: /readyz conditions besides storage and listeners, by name (see add_readiness_check).
        self.readiness_checks: dict[str, ReadinessCheck] = {}
        self.cluster_id = ""
        self.kafka_port = 0
        self.http_port = 0
        self._kafka_server: Any = None
        self._http_runner: Any = None
        self._services: list[Service] = []
        self._started_services: list[Service] = []
        self._background: list[asyncio.Task[None]] = []
        self.started = asyncio.Event()
        #: The group coordinator (headrace.groups.coordinator.GroupCoordinator) once started.
        self.groups: Any = None

    # -- wiring --------------------------------------------------------------------------

    @property
    def topics(self) -> TopicManager:
        assert self._topics is not None, "broker not started"
        return self._topics

    @property
    def replicas(self) -> ReplicaManager:
        assert self._replicas is not None, "broker not started"
        return self._replicas

    @property
    def metadata(self) -> MetadataView:
        assert self._metadata is not None, "broker not started"
        return self._metadata

    @property
    def producer_ids(self) -> ProducerIdSource:
        assert self._producer_ids is not None, "broker not started"
        return self._producer_ids

    def attach(
        self,
        *,
        replicas: ReplicaManager | None = None,
        topics: TopicManager | None = None,
        metadata: MetadataView | None = None,
        producer_ids: ProducerIdSource | None = None,
    ) -> None:
        """Supply layers in place of the single-broker ones (the cluster layer does).

        Only before ``start()``: handlers and services see one set of layers for the broker's
        whole life. Layers not given stay the local ones ``open_storage`` creates.
        """
        if self._kafka_server is not None:
            raise RuntimeError("layers are attached before the broker starts")
        if replicas is not None:
            self._replicas = replicas
        if topics is not None:
            self._topics = topics
        if metadata is not None:
            self._metadata = metadata
        if producer_ids is not None:
            self._producer_ids = producer_ids

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """Make /readyz also require ``check()`` (e.g. replication: "caught up with leaders")."""
        self.readiness_checks[name] = check

    @property
    def endpoint(self) -> BrokerEndpoint:
        """This broker's advertised Kafka listener."""
        return BrokerEndpoint(
            self.config.node_id,
            self.config.advertised_host or self.config.kafka_host,
            self.config.advertised_port or self.kafka_port,
        )

    def add_service(
        self, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``start`` after storage opens (before clients connect) and ``stop`` on shutdown."""
        self._services.append((start, stop))

    def open_storage(self, logs: LogManagerAPI | None = None) -> None:
        """Open (recover) the data directory and create the local layers not attached yet;
        ``start`` calls this if nobody did."""
        if self.logs is not None:
            return
        data_dir = self.config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        if logs is None:
            from headrace.storage import LogConfig, LogManager

            defaults = LogConfig.from_kafka_configs(self.config.topic_defaults)
            logs = LogManager(
                data_dir,
                default_config=defaults,
                producer_id_expiration_ms=self.config.producer_id_expiration_ms,
            )
        self.logs = logs
        self.cluster_id = _load_cluster_id(data_dir)
        if self._producer_ids is None:
            self._producer_ids = ProducerIdAllocator(data_dir)
        if self._topics is None:
            self._topics = TopicManager(
                logs,
                default_partitions=self.config.default_partitions,
                live_brokers=lambda: len(self.metadata.brokers()),
            )
        if self._replicas is None:
            self._replicas = ReplicaManager(logs, self.config.node_id)
        if self._metadata is None:
            # The endpoint is read on use: the advertised port is known only once bound.
            self._metadata = LocalMetadataView(
                lambda: self.endpoint, logs, is_internal, self.cluster_id
            )

    async def start(self) -> None:
        from headrace.server.connection import KafkaServer
        from headrace.server.handlers import default_api_handlers

        self.open_storage()
        server = KafkaServer(self, self.config.kafka_host, self.config.kafka_port)
        server.bind()
        self._kafka_server = server
        self.kafka_port = server.bound_port
        # Handlers registered earlier (e.g. by the cluster layer) take precedence.
        registered = {key for key, _low, _high in self.registry.supported()}
        self.registry.register_all(
            h for h in default_api_handlers() if h.api_key not in registered
        )
        if self.groups is None:
            self._wire_groups()
        for service in self._services:
            await service[0]()
            self._started_services.append(service)
        await server.start()
        if self.config.http_host is not None:
            await self._start_http()
        self._background.append(asyncio.create_task(self._retention_loop()))
        self.started.set()

    def _wire_groups(self) -> None:
        from headrace.groups.coordinator import CoordinatorNode, GroupConfig, GroupCoordinator
        from headrace.groups.handlers import group_api_handlers
        from headrace.groups.state import GroupLimits

        assert self.logs is not None
        endpoint = self.endpoint

        async def append(partition: int, batch: bytes) -> None:
            try:
                await self.produce(OFFSETS_TOPIC, partition, batch)
            except KafkaError as error:
                # The coordinator maps storage errors to codes; surface ours the same way.
                from headrace.storage import StorageError

                raise StorageError(str(error)) from error

        coordinator = GroupCoordinator(
            self.logs,
            CoordinatorNode(endpoint.node_id, endpoint.host, endpoint.port),
            GroupConfig(
                offsets_topic_partitions=self.config.offsets_topic_partitions,
                limits=GroupLimits(
                    initial_rebalance_delay_ms=self.config.group_initial_rebalance_delay_ms
                ),
            ),
            append=append,
        )
        self.groups = coordinator
        self.registry.register_all(group_api_handlers(coordinator))
        self.add_service(coordinator.start, coordinator.stop)

    async def _start_http(self) -> None:
        from aiohttp import web

        from headrace.web import create_app

        runner = web.AppRunner(create_app(self), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.http_host, self.config.http_port)
        await site.start()
        self._http_runner = runner
        server = site._server  # aiohttp exposes the bound sockets only here
        sockets = getattr(server, "sockets", None) or []
        self.http_port = int(sockets[0].getsockname()[1]) if sockets else self.config.http_port

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._kafka_server is not None:
            await self._kafka_server.stop()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
        for _start, stop in reversed(self._started_services):
            try:
                await stop()
            except Exception:
                log.exception("service failed to stop")
        self._started_services.clear()
        if self.logs is not None:
            self.logs.close()

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention_check_seconds)
            observer = self.observer
            maintenance = observer if isinstance(observer, LogMaintenanceObserver) else None
            try:
                assert self.logs is not None
                report = self.logs.enforce_retention()
                if maintenance is not None:
                    maintenance.on_retention_pass(report)
                # Compaction: the rewrite reads sealed segments through its own descriptors,
                # so it runs in a worker thread; only the swap (renames) runs on the loop.
                for task in self.logs.cleaning_tasks():
                    started = time.monotonic()
                    result = "error"  # unless finish() returns: a failed swap raises
                    try:
                        await asyncio.to_thread(task.run)
                        committed = task.finish()
                        result = cleaning_result(committed, task.error)
                    finally:
                        if maintenance is not None:
                            maintenance.on_cleaning_pass(task, result, time.monotonic() - started)
            except Exception:
                log.exception("retention pass failed")

    # -- services (called by handlers, the HTTP API and the group coordinator) ------------

    def create_topic(self, spec: TopicSpec, *, validate_only: bool = False) -> TopicMetadata:
        return self.topics.create(spec, validate_only=validate_only)

    def delete_topic(self, name: str) -> None:
        if is_internal(name):
            raise KafkaError(ErrorCode.topic_authorization_failed, "cannot delete internal topic")
        self.topics.delete(name)

    def ensure_topic(self, name: str, partitions: int | None = None) -> TopicMetadata | None:
        """Auto-create ``name`` if allowed; returns its metadata or None when it cannot exist."""
        existing = self.topics.get(name)
        if existing is not None:
            return existing
        if not self.config.auto_create_topics or topic_name_problem(name) is not None:
            return None
        try:
            return self.topics.create(TopicSpec(name, partitions or -1))
        except KafkaError as error:
            if error.code == ErrorCode.topic_already_exists:
                return self.topics.get(name)
            raise

    def ensure_internal_topic(
        self, name: str, partitions: int, configs: Mapping[str, str] | None = None
    ) -> TopicMetadata:
        """Create an internal topic (e.g. ``__consumer_offsets``) unless it exists."""
        existing = self.topics.get(name)
        if existing is not None:
            return existing
        return self.topics.create(TopicSpec(name, partitions, -1, configs))

    async def produce(
        self, topic: str, partition: int, records: bytes | memoryview, *, acks: int = -1
    ) -> AppendResult:
        """Append RecordBatch v2 bytes to a partition this broker leads."""
        result = await self.replicas.append(topic, partition, records, acks=acks)
        if not result.duplicate:
            self.observer.on_produced(
                topic, partition, result.last_offset - result.base_offset + 1, len(records)
            )
        return result

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> LogRead:
        """Committed batches from ``offset``; the caller closes the returned ``LogRead``."""
        return self.replicas.read(topic, partition, offset, max_bytes)

    async def wait_for_append(
        self, partitions: list[tuple[str, int]], timeout_seconds: float
    ) -> bool:
        """Park until one of ``partitions`` is appended to (True) or the timeout (False)."""
        self.observer.on_fetch_waiting(1)
        try:
            return await self.replicas.wait_for_append(partitions, timeout_seconds)
        finally:
            self.observer.on_fetch_waiting(-1)

    def list_offsets(self, topic: str, partition: int, timestamp: int) -> tuple[int, int]:
        return self.replicas.list_offset(topic, partition, timestamp)

    def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, high watermark)."""
        log_ = self.replicas.log(topic, partition)
        return log_.log_start_offset, self.replicas.high_watermark(topic, partition)

    def delete_records(self, topic: str, partition: int, offset: int) -> int:
        return self.replicas.delete_records(topic, partition, offset)

    def describe_topic_configs(self, name: str) -> dict[str, tuple[str, bool]]:
        """Every config of a topic: name -> (value, is_default)."""
        topic = self.topics.require(name)
        values = self.topics.config(name).to_kafka_configs()
        return {key: (value, key not in topic.configs) for key, value in values.items()}

    def alter_configs(
        self, name: str, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> None:
        """Replace a topic's config overrides (AlterConfigs semantics)."""
        self.topics.set_configs(name, configs, validate_only=validate_only)

    def incremental_alter_configs(
        self,
        name: str,
        changes: list[tuple[str, int, str | None]],
        *,
        validate_only: bool = False,
    ) -> None:
        """Apply (key, op, value) changes: op 0 SET, 1 DELETE (2/3 list ops: INVALID_CONFIG)."""
        self.topics.require(name)
        for key, op, value in changes:
            if op == 0 and value is None:
                raise KafkaError(ErrorCode.invalid_config, f"{key}: null value")
            if op not in (0, 1):
                raise KafkaError(ErrorCode.invalid_config, f"{key}: list operations unsupported")

        def apply(current: Mapping[str, str]) -> dict[str, str]:
            updated = dict(current)
            for key, op, value in changes:
                if op == 0 and value is not None:
                    updated[key] = value
                else:
                    updated.pop(key, None)
            return updated

        self.topics.update_configs(name, apply, validate_only=validate_only)


def _load_cluster_id(data_dir: Path) -> str:
    path = data_dir / "cluster-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(cluster_id + "\n")
        return cluster_id
