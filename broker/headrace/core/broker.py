"""The broker's services: one object that owns the layers every front end calls.

Kafka handlers, the HTTP API and the coordinators call the same in-process methods here
(``create_topic``, ``produce``, ``read``, ``list_offsets``, ``alter_configs``...), so every front
end shares one code path and one set of Kafka error codes (:class:`KafkaError`).

Its layers are seams: the replica manager (who leads, what is committed, who may fetch where),
the topic manager, the metadata view and the producer-id source. A lone broker uses the local
ones made here; the cluster layer supplies its own through :meth:`Broker.attach` while the
composition root (:mod:`headrace.app`) builds the broker, and nothing replaces them afterwards.
It starts nothing itself: listeners, coordinators and background loops belong to the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Protocol

from kio.schema.errors import ErrorCode

from headrace.core.config import BrokerConfig
from headrace.core.errors import KafkaError
from headrace.core.internal_topics import InternalTopics, is_internal
from headrace.core.metadata import BrokerEndpoint, LocalMetadataView, MetadataView
from headrace.core.producer_ids import ProducerIdAllocator, ProducerIdSource
from headrace.core.replica import ReplicaManager
from headrace.core.requests import NullObserver, RequestObserver
from headrace.core.topics import TopicManager, TopicSpec, topic_name_problem
from headrace.core.turns import Turns
from headrace.storage import AppendResult, LogManagerAPI, LogRead, TopicMetadata

#: A readiness condition for /readyz: true when ready; raising counts as not ready.
ReadinessCheck = Callable[[], bool]


class TransactionVerifier(Protocol):
    """KIP-890 part 1: asks a transaction's coordinator whether a partition was added to it
    before the partition accepts the transaction's first batch; with ``add`` (part 2, a
    transaction version 2 client, which sends no AddPartitionsToTxn) adds it instead."""

    async def verify(
        self, transactional_id: str, producer_id: int, producer_epoch: int, topic: str,
        partition: int, *, add: bool = False,
    ) -> ErrorCode: ...


class Broker:
    """The services of one broker over an opened log directory (see the module docstring)."""

    def __init__(
        self,
        config: BrokerConfig,
        logs: LogManagerAPI,
        internal_topics: InternalTopics,
        *,
        cluster_id: str,
        observer: RequestObserver | None = None,
    ) -> None:
        self.config = config
        self.logs = logs
        self.internal_topics = internal_topics
        self.cluster_id = cluster_id
        self.observer: RequestObserver = observer or NullObserver()
        #: /readyz conditions besides storage and listeners, by name (see add_readiness_check).
        self.readiness_checks: dict[str, ReadinessCheck] = {}
        #: Bound ports, set by the app once its listeners are bound (0 until then).
        self.kafka_port = 0
        self.http_port = 0
        #: Each Kafka listener's bound port by name (kafka_port is the first listener's).
        self.listener_ports: dict[str, int] = {}
        #: Set by the app once every listener accepts connections.
        self.started = asyncio.Event()
        self._frozen = False
        self.producer_ids: ProducerIdSource = ProducerIdAllocator(config.data_dir)
        self.topics: TopicManager = TopicManager(
            logs,
            default_partitions=config.default_partitions,
            live_brokers=lambda: len(self.metadata.brokers()),
            max_broker_partitions=config.max_broker_partitions,
            max_topic_partitions=config.max_topic_partitions,
        )
        self.replicas: ReplicaManager = ReplicaManager(logs, config.node_id)
        #: Set by the app once the transaction coordinator exists (None: transactional
        #: batches are refused).
        self.transaction_verifier: TransactionVerifier | None = None
        #: (topic, partition, producer id) of transactional writes waiting on their coordinator:
        #: the first write of a transaction to a partition holds the lock from its check to its
        #: append, so pipelined writes after it queue behind it instead of overtaking it.
        self.transactional_first_writes = Turns()
        # The endpoint is read on use: the advertised port is known only once bound.
        self.metadata: MetadataView = LocalMetadataView(
            lambda: self.endpoint, logs, is_internal, cluster_id,
            listener_endpoint=self.listener_endpoint,
        )

    # -- wiring (composition root only) ---------------------------------------------------

    def attach(
        self,
        *,
        replicas: ReplicaManager | None = None,
        topics: TopicManager | None = None,
        metadata: MetadataView | None = None,
        producer_ids: ProducerIdSource | None = None,
    ) -> None:
        """Supply layers in place of the single-broker ones (the cluster layer does).

        Only while the app is being built: handlers and services see one set of layers for
        the broker's whole life.
        """
        if self._frozen:
            raise RuntimeError("layers are attached before the broker starts")
        if replicas is not None:
            self.replicas = replicas
        if topics is not None:
            self.topics = topics
        if metadata is not None:
            self.metadata = metadata
        if producer_ids is not None:
            self.producer_ids = producer_ids

    def freeze(self) -> None:
        """No more :meth:`attach`: the app is about to start serving."""
        self._frozen = True

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """Make /readyz also require ``check()`` (e.g. replication: "caught up with leaders")."""
        self.readiness_checks[name] = check

    @property
    def endpoint(self) -> BrokerEndpoint:
        """This broker's advertised inter-broker listener (what it registers first and its
        coordinators are known by)."""
        endpoint = self.listener_endpoint(self.config.listener.name)
        assert endpoint is not None
        return endpoint

    def listener_endpoint(self, name: str) -> BrokerEndpoint | None:
        """This broker's advertised endpoint on the listener ``name`` (None: no such one)."""
        for listener in self.config.kafka_listeners:
            if listener.name == name:
                port = self.listener_ports.get(name, self.kafka_port)
                host, advertised_port = self.config.advertised(listener, port)
                return BrokerEndpoint(self.config.node_id, host, advertised_port)
        return None

    def advertised_listeners(self) -> dict[str, tuple[str, int]]:
        """Every listener's advertised (host, port), by name, in the configured order."""
        endpoints = {}
        for listener in self.config.kafka_listeners:
            endpoint = self.listener_endpoint(listener.name)
            assert endpoint is not None
            endpoints[listener.name] = (endpoint.host, endpoint.port)
        return endpoints

    # -- services (called by handlers, the HTTP API and the group coordinator) ------------

    async def create_topics(
        self, specs: list[TopicSpec], *, validate_only: bool = False
    ) -> list[TopicMetadata | KafkaError]:
        """Create a batch of topics; one result (the topic or its error) per spec, in order."""
        return await self.topics.create_many(specs, validate_only=validate_only)

    def create_topic(self, spec: TopicSpec, *, validate_only: bool = False) -> TopicMetadata:
        """Create one topic on the calling thread (tests, tools; requests use create_topics)."""
        return self.topics.create(spec, validate_only=validate_only)

    def delete_topic(self, name: str) -> None:
        if is_internal(name):
            raise KafkaError(ErrorCode.topic_authorization_failed, "cannot delete internal topic")
        self.topics.delete(name)

    async def ensure_topics(self, names: list[str]) -> dict[str, KafkaError]:
        """Auto-create those of ``names`` that do not exist, if allowed, as one batch of at
        most ``auto_create_topics_per_request`` (the rest are left for the client's next ask);
        returns the errors of those that could not be created (a name already taken is no
        error). Nothing is created when auto-creation is off."""
        if not self.config.auto_create_topics:
            return {}
        wanted = [n for n in dict.fromkeys(names)
                  if self.topics.get(n) is None and topic_name_problem(n) is None]
        wanted = wanted[: max(0, self.config.auto_create_topics_per_request)]
        results = await self.create_topics([TopicSpec(n) for n in wanted])
        await self.topics.creations_done(wanted)  # those a concurrent request was making
        return {
            name: result for name, result in zip(wanted, results, strict=True)
            if isinstance(result, KafkaError) and result.code != ErrorCode.topic_already_exists
        }

    async def ensure_topic(self, name: str) -> TopicMetadata | None:
        """Auto-create ``name`` if allowed; returns its metadata or None when it cannot exist."""
        error = (await self.ensure_topics([name])).get(name)
        if error is not None:
            raise error
        return self.topics.get(name)

    def creating_topic(self, name: str) -> bool:
        """Whether topic ``name`` is being created, or exists here but the metadata view does
        not show it yet (a clustered broker's creation on its way through etcd)."""
        return self.logs.creating(name) or self.topics.get(name) is not None

    def partition_exists(self, topic: str, partition: int) -> bool:
        """Whether the metadata view knows ``partition`` of ``topic``."""
        state = self.metadata.topic(topic)
        return state is not None and 0 <= partition < len(state.partitions)

    async def produce(
        self,
        topic: str,
        partition: int,
        records: bytes | memoryview,
        *,
        acks: int = -1,
        internal: bool = False,
    ) -> AppendResult:
        """Append RecordBatch v2 bytes to a partition this broker leads; only a coordinator
        (``internal=True``) writes an internal topic, as Kafka's ``internalTopicsAllowed``,
        or transaction markers to any topic."""
        if is_internal(topic) and not internal:
            raise KafkaError(
                ErrorCode.invalid_topic_exception, f"cannot write internal topic {topic}"
            )
        # A coordinator's write (internal) may carry transaction markers; a client's may not.
        result = await self.replicas.append(
            topic, partition, records, acks=acks, coordinator=internal
        )
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

    def list_offsets(
        self, topic: str, partition: int, timestamp: int, isolation_level: int = 0
    ) -> tuple[int, int]:
        """ListOffsets; for read_committed (isolation 1) "latest" is the Last Stable Offset."""
        offset, found = self.replicas.list_offset(topic, partition, timestamp)
        if isolation_level == 1 and timestamp == -1:
            high_watermark = self.replicas.high_watermark(topic, partition)
            offset = self.replicas.log(topic, partition).last_stable_offset(high_watermark)
        return offset, found

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
        self.internal_topics.check_configs(name, configs)
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

        self.internal_topics.check_configs(name, apply(self.topics.require(name).configs))
        self.topics.update_configs(name, apply, validate_only=validate_only)
