"""Admin APIs: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs, DeleteRecords and DescribeCluster, as thin adapters over the broker
services.

Each topic/resource gets its own Kafka error code and message; one bad entry never fails the
others. Broker resources are described from the broker's own settings (read-only).
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, TypeVar

from kio.schema.delete_topics import v6 as delete_topics_v6
from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import (
    OK,
    RequestTopic,
    authorization_error,
    build,
    each,
    partition_results,
    require,
)
from headrace.core.security import CLUSTER_NAME, Action, Operation, ResourceType
from headrace.core.topics import TopicSpec
from headrace.server.handlers.binding import BrokerApi, on_topics
from headrace.storage import TopicMetadata

if TYPE_CHECKING:
    from headrace.core.api_types import (
        AlterConfigsRequests,
        AlterConfigsResponses,
        CreatePartitionsRequests,
        CreatePartitionsResponses,
        CreateTopicsRequests,
        CreateTopicsResponses,
        DeleteRecordsRequests,
        DeleteRecordsResponses,
        DeleteTopicsRequests,
        DeleteTopicsResponses,
        DescribeClusterRequests,
        DescribeClusterResponses,
        DescribeConfigsRequests,
        DescribeConfigsResponses,
        IncrementalAlterConfigsRequests,
        IncrementalAlterConfigsResponses,
    )

CREATE_TOPICS: KafkaApi[CreateTopicsRequests, CreateTopicsResponses] = KafkaApi(19)
DELETE_TOPICS: KafkaApi[DeleteTopicsRequests, DeleteTopicsResponses] = KafkaApi(20)
DELETE_RECORDS: KafkaApi[DeleteRecordsRequests, DeleteRecordsResponses] = KafkaApi(21)
DESCRIBE_CONFIGS: KafkaApi[DescribeConfigsRequests, DescribeConfigsResponses] = KafkaApi(32)
ALTER_CONFIGS: KafkaApi[AlterConfigsRequests, AlterConfigsResponses] = KafkaApi(33)
CREATE_PARTITIONS: KafkaApi[CreatePartitionsRequests, CreatePartitionsResponses] = KafkaApi(37)
INCREMENTAL_ALTER_CONFIGS: KafkaApi[
    IncrementalAlterConfigsRequests, IncrementalAlterConfigsResponses
] = KafkaApi(44)
DESCRIBE_CLUSTER: KafkaApi[DescribeClusterRequests, DescribeClusterResponses] = KafkaApi(60)
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5
#: DescribeConfigs v3+ config types.
_TYPE_STRING, _TYPE_INT, _TYPE_LONG, _TYPE_BOOLEAN, _TYPE_LIST = 2, 3, 5, 1, 7
_CONFIG_TYPES = {
    "cleanup.policy": _TYPE_LIST,
    "message.timestamp.type": _TYPE_STRING,
    "compression.type": _TYPE_STRING,
    "segment.bytes": _TYPE_INT,
    "max.message.bytes": _TYPE_INT,
    "min.insync.replicas": _TYPE_INT,
    "index.interval.bytes": _TYPE_INT,
}


class _TimedRequest(Protocol):
    @property
    def timeout(self) -> datetime.timedelta: ...


def _timeout_ms(request: _TimedRequest) -> int:
    """The ``timeout`` a topic request carries (a timedelta), in milliseconds."""
    return int(request.timeout.total_seconds() * 1000)


async def _stored(broker: Broker, name: str, timeout_ms: int | None) -> None:
    """Return once the change just made to topic ``name`` is stored where the cluster keeps
    it (a clustered broker's in etcd), as Kafka answers once its controller has committed it;
    raise its KafkaError. ``timeout_ms`` is the request's (0: answer without waiting, as
    Kafka does); past it, REQUEST_TIMED_OUT (the change may still complete)."""
    if timeout_ms is not None and timeout_ms <= 0:
        return
    try:
        await asyncio.wait_for(broker.topics.committed(name),
                               None if timeout_ms is None else timeout_ms / 1000)
    except TimeoutError:
        raise KafkaError(ErrorCode.request_timed_out,
                         f"the change of topic {name!r} was not stored within "
                         f"{timeout_ms} ms; it may still complete") from None


class _Config(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str | None: ...


class _PlacedTopic(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def assignments(self) -> Sequence[object] | None: ...


class _NewTopic(_PlacedTopic, Protocol):
    @property
    def num_partitions(self) -> int: ...

    @property
    def replication_factor(self) -> int: ...

    @property
    def configs(self) -> Sequence[_Config]: ...


class CreateTopicsQuery(_TimedRequest, Protocol):
    """What the handler reads of every CreateTopics version."""

    @property
    def topics(self) -> Sequence[_NewTopic]: ...

    @property
    def validate_only(self) -> bool: ...


async def handle_create_topics(
    broker: Broker, request: CreateTopicsQuery, ctx: RequestContext
) -> CreateTopicsResponses:
    """One batch (one metadata write) for every well-formed topic of the request."""
    module = CREATE_TOPICS.classes(ctx.api_version)
    config_cls = getattr(module, "CreatableTopicConfigs", None)  # v5+
    validate_only = bool(request.validate_only)
    refused: dict[int, KafkaError] = {}
    specs: list[TopicSpec] = []
    for position, topic in enumerate(request.topics):
        try:
            require(ctx, ResourceType.TOPIC, topic.name)
            _refuse_manual_assignment(topic)
        except KafkaError as error:
            refused[position] = error
            continue
        specs.append(TopicSpec(
            name=topic.name,
            partitions=int(topic.num_partitions),
            replication_factor=int(topic.replication_factor),
            configs={c.name: c.value for c in topic.configs if c.value is not None},
        ))
    created = iter(await broker.create_topics(specs, validate_only=validate_only))
    outcomes = [refused.get(position) or next(created) for position in range(len(request.topics))]

    async def answer(item: tuple[_NewTopic, TopicMetadata | KafkaError]) -> object:
        topic, result = item
        if isinstance(result, KafkaError):
            raise result
        if not validate_only:
            await _stored(broker, topic.name, _timeout_ms(request))
        configs = () if config_cls is None else tuple(
            build(
                config_cls,
                name=key,
                value=value,
                read_only=False,
                config_source=SOURCE_DEFAULT if is_default else SOURCE_DYNAMIC_TOPIC,
                is_sensitive=False,
            )
            for key, (value, is_default) in _topic_configs(broker, result.name, result.configs)
        )
        return build(
            module.CreatableTopicResult,
            name=topic.name,
            topic_id=result.topic_id,
            error_code=OK,
            error_message=None,
            num_partitions=result.partitions,
            replication_factor=1,
            configs=configs,
        )

    def failed(item: tuple[_NewTopic, TopicMetadata | KafkaError], error: KafkaError) -> object:
        return build(
            module.CreatableTopicResult,
            name=item[0].name,
            topic_id=None,
            error_code=error.code,
            error_message=error.message,
            num_partitions=-1,
            replication_factor=-1,
            configs=None,
        )

    results = await each(zip(request.topics, outcomes, strict=True), answer, failed)
    return build(CREATE_TOPICS.response(ctx.api_version), topics=results)


def _refuse_manual_assignment(topic: _PlacedTopic) -> None:
    """CreateTopics and CreatePartitions: replicas are placed by the broker, never by the client."""
    if topic.assignments:
        raise KafkaError(
            ErrorCode.invalid_replica_assignment, "manual replica assignment unsupported"
        )


def _topic_configs(
    broker: Broker, name: str, overrides: dict[str, str]
) -> list[tuple[str, tuple[str, bool]]]:
    from headrace.storage import LogConfig

    logs = broker.logs
    assert logs is not None
    config = LogConfig.from_kafka_configs(overrides, logs.default_config)
    return [(k, (v, k not in overrides)) for k, v in sorted(config.to_kafka_configs().items())]


async def handle_delete_topics(
    broker: Broker, request: DeleteTopicsRequests, ctx: RequestContext
) -> DeleteTopicsResponses:
    module = DELETE_TOPICS.classes(ctx.api_version)
    wanted: list[tuple[str | None, uuid.UUID | None]]
    if isinstance(request, delete_topics_v6.DeleteTopicsRequest):  # v6 names topics by id too
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]

    def resolve(
        name: str | None, topic_id: uuid.UUID | None
    ) -> tuple[str | None, uuid.UUID | None, TopicMetadata | None]:
        if name is None and topic_id is not None:
            name = next(
                (n for n, m in broker.topics.topics().items() if m.topic_id == topic_id), None
            )
        meta = broker.topics.get(name) if name else None
        return name, meta.topic_id if meta else topic_id, meta

    async def delete(entry: tuple[str | None, uuid.UUID | None, TopicMetadata | None]) -> object:
        name, topic_id, meta = entry
        if name is not None and (ctx.refused(ResourceType.TOPIC, name) or (
                topic_id is not None and not ctx.allows(Operation.DELETE, ResourceType.TOPIC,
                                                        name))):
            raise authorization_error(ResourceType.TOPIC, name)
        if name is None or meta is None:
            raise KafkaError(
                ErrorCode.unknown_topic_or_partition if topic_id is None or name
                else ErrorCode.unknown_topic_id,
                f"unknown topic {name or topic_id}",
            )
        broker.delete_topic(name)
        await _stored(broker, name, _timeout_ms(request))
        return build(module.DeletableTopicResult, name=name, topic_id=topic_id,
                     error_code=OK, error_message=None)

    def failed(
        entry: tuple[str | None, uuid.UUID | None, TopicMetadata | None], error: KafkaError
    ) -> object:
        name, topic_id, _ = entry
        return build(module.DeletableTopicResult, name=name, topic_id=topic_id,
                     error_code=error.code, error_message=error.message)

    # Resolved lazily, one by one, so each name is looked up after the deletions before it.
    results = await each((resolve(*entry) for entry in wanted), delete, failed)
    return build(DELETE_TOPICS.response(ctx.api_version), responses=results)


class _PartitionCount(_PlacedTopic, Protocol):
    @property
    def count(self) -> int: ...


class CreatePartitionsQuery(_TimedRequest, Protocol):
    """What the handler reads of every CreatePartitions version."""

    @property
    def topics(self) -> Sequence[_PartitionCount]: ...

    @property
    def validate_only(self) -> bool: ...


async def handle_create_partitions(
    broker: Broker, request: CreatePartitionsQuery, ctx: RequestContext
) -> CreatePartitionsResponses:
    module = CREATE_PARTITIONS.classes(ctx.api_version)
    validate_only = bool(request.validate_only)

    async def add(topic: _PartitionCount) -> object:
        require(ctx, ResourceType.TOPIC, topic.name)
        _refuse_manual_assignment(topic)
        broker.topics.add_partitions(topic.name, int(topic.count), validate_only=validate_only)
        if not validate_only:
            await _stored(broker, topic.name, _timeout_ms(request))
        return module.CreatePartitionsTopicResult(
            name=topic.name, error_code=OK, error_message=None
        )

    def failed(topic: _PartitionCount, error: KafkaError) -> object:
        return module.CreatePartitionsTopicResult(
            name=topic.name, error_code=error.code, error_message=error.message
        )

    results = await each(request.topics, add, failed)
    return build(CREATE_PARTITIONS.response(ctx.api_version), results=results)


def broker_configs(broker: Broker) -> dict[str, str]:
    """The broker-level settings AdminClient tools ask about, with Kafka's names."""
    config = broker.config
    listeners = config.kafka_listeners
    advertised = broker.advertised_listeners()
    defaults = broker.logs.default_config.to_kafka_configs()
    values = {
        "broker.id": str(config.node_id),
        "node.id": str(config.node_id),
        "num.partitions": str(config.default_partitions),
        "auto.create.topics.enable": str(config.auto_create_topics).lower(),
        "default.replication.factor": "1",
        "offsets.topic.num.partitions": str(config.offsets_topic_partitions),
        "socket.request.max.bytes": str(config.max_request_bytes),
        "message.max.bytes": defaults.get("max.message.bytes", "1048588"),
        "log.retention.ms": defaults.get("retention.ms", ""),
        "log.retention.bytes": defaults.get("retention.bytes", ""),
        "log.segment.bytes": defaults.get("segment.bytes", ""),
        "log.roll.ms": defaults.get("segment.ms", ""),
        "log.cleanup.policy": defaults.get("cleanup.policy", "delete"),
        "min.insync.replicas": defaults.get("min.insync.replicas", "1"),
        "log.dirs": str(config.data_dir),
        "advertised.listeners": ",".join(
            f"{name}://{host}:{port}" for name, (host, port) in advertised.items()),
        "listeners": ",".join(
            f"{listener.name}://{listener.host}:"
            f"{broker.listener_ports.get(listener.name) or listener.port}"
            for listener in listeners),
        "listener.security.protocol.map": ",".join(
            f"{listener.name}:{listener.security_protocol}" for listener in listeners),
        "inter.broker.listener.name": config.listener.name,
    }
    return values


class _Resource(Protocol):
    @property
    def resource_type(self) -> int: ...

    @property
    def resource_name(self) -> str: ...


class _DescribedResource(_Resource, Protocol):
    @property
    def configuration_keys(self) -> Sequence[str] | None: ...


class DescribeConfigsQuery(Protocol):
    """What the handler reads of every DescribeConfigs version."""

    @property
    def resources(self) -> Sequence[_DescribedResource]: ...


def _described_configs(
    broker: Broker, resource: _DescribedResource
) -> list[tuple[str, str, bool, int]]:
    """(name, value, read only, source) of every config of ``resource``; KafkaError for an
    unknown topic, another broker or an unsupported resource type."""
    if resource.resource_type == RESOURCE_TOPIC:
        described = broker.describe_topic_configs(resource.resource_name)
        return [
            (key, value, False, SOURCE_DEFAULT if is_default else SOURCE_DYNAMIC_TOPIC)
            for key, (value, is_default) in sorted(described.items())
        ]
    if resource.resource_type == RESOURCE_BROKER:
        if resource.resource_name not in ("", str(broker.config.node_id)):
            raise KafkaError(
                ErrorCode.invalid_request, f"unknown broker {resource.resource_name!r}"
            )
        return [
            (key, value, True, SOURCE_STATIC_BROKER)
            for key, value in sorted(broker_configs(broker).items())
        ]
    raise KafkaError(
        ErrorCode.invalid_request, f"unsupported resource type {resource.resource_type}"
    )


async def handle_describe_configs(
    broker: Broker, request: DescribeConfigsQuery, ctx: RequestContext
) -> DescribeConfigsResponses:
    module = DESCRIBE_CONFIGS.classes(ctx.api_version)

    def result(
        resource: _DescribedResource, entries: list[tuple[str, str, bool, int]],
        error: KafkaError | None,
    ) -> object:
        keys = set(resource.configuration_keys) if resource.configuration_keys else None
        configs = tuple(
            build(
                module.DescribeConfigsResourceResult,
                name=name,
                value=value,
                read_only=read_only,
                config_source=source,
                is_default=source == SOURCE_DEFAULT,
                is_sensitive=False,
                synonyms=(),
                config_type=_CONFIG_TYPES.get(name, _TYPE_LONG if value.lstrip("-").isdigit()
                                              else _TYPE_STRING),
                documentation=None,
            )
            for name, value, read_only, source in entries
            if keys is None or name in keys
        )
        return build(
            module.DescribeConfigsResult,
            error_code=error.code if error else OK,
            error_message=error.message if error else None,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
            configs=configs,
        )

    async def describe(resource: _DescribedResource) -> object:
        _require_config_resource(ctx, resource)
        return result(resource, _described_configs(broker, resource), None)

    results = await each(request.resources, describe,
                         lambda resource, error: result(resource, [], error))
    return build(DESCRIBE_CONFIGS.response(ctx.api_version), results=results)


def _config_resource(resource: _Resource) -> tuple[ResourceType, str]:
    """The ACL resource of a config resource: a topic's is the topic, a broker's (or a broker
    logger's) the cluster, as Kafka's."""
    if int(resource.resource_type) == RESOURCE_TOPIC:
        return ResourceType.TOPIC, resource.resource_name
    return ResourceType.CLUSTER, CLUSTER_NAME


def _require_config_resource(ctx: RequestContext, resource: _Resource) -> None:
    require(ctx, *_config_resource(resource))


class _ResourcesRequest(Protocol):
    @property
    def resources(self) -> Sequence[_Resource]: ...


def _on_config_resources(operation: Operation) -> Callable[[_ResourcesRequest], Sequence[Action]]:
    def actions(request: _ResourcesRequest) -> Sequence[Action]:
        return [Action(operation, *_config_resource(r)) for r in request.resources]

    return actions


def _delete_topics_actions(request: DeleteTopicsRequests) -> Sequence[Action]:
    if isinstance(request, delete_topics_v6.DeleteTopicsRequest):
        names = [t.name for t in request.topics if t.name is not None]
    else:
        names = list(request.topic_names)
    return [Action(Operation.DELETE, ResourceType.TOPIC, name) for name in names]


def _require_topic_resource(resource: _Resource) -> None:
    if resource.resource_type != RESOURCE_TOPIC:
        raise KafkaError(
            ErrorCode.invalid_request,
            "only topic configs can be altered; broker configs are static",
        )


_Altered = TypeVar("_Altered", bound=_Resource)


async def _alter_each(
    module: ModuleType, resources: Iterable[_Altered], alter: Callable[[_Altered], None],
    broker: Broker, validate_only: bool, ctx: RequestContext,
) -> tuple[object, ...]:
    """``alter`` each topic resource; one result per resource, with its own error. A change
    is answered once it is stored (a clustered broker's, in etcd), as Kafka answers once its
    controller has committed it."""

    def result(resource: _Altered, error: KafkaError | None) -> object:
        return module.AlterConfigsResourceResponse(
            error_code=error.code if error else OK,
            error_message=error.message if error else None,
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
        )

    async def apply(resource: _Altered) -> object:
        _require_config_resource(ctx, resource)
        _require_topic_resource(resource)
        alter(resource)
        if not validate_only:
            await _stored(broker, resource.resource_name, None)
        return result(resource, None)

    return await each(resources, apply, result)


class _AlteredResource(_Resource, Protocol):
    @property
    def configs(self) -> Sequence[_Config]: ...


_Res_co = TypeVar("_Res_co", covariant=True)


class _AlterRequest(Protocol[_Res_co]):
    """What the (Incremental)AlterConfigs handlers read of every version."""

    @property
    def resources(self) -> Sequence[_Res_co]: ...

    @property
    def validate_only(self) -> bool: ...


async def handle_alter_configs(
    broker: Broker, request: _AlterRequest[_AlteredResource], ctx: RequestContext
) -> AlterConfigsResponses:
    validate_only = bool(request.validate_only)

    def alter(resource: _AlteredResource) -> None:
        configs = {c.name: c.value for c in resource.configs if c.value is not None}
        broker.alter_configs(resource.resource_name, configs, validate_only=validate_only)

    results = await _alter_each(ALTER_CONFIGS.classes(ctx.api_version), request.resources,
                                alter, broker, validate_only, ctx)
    return build(ALTER_CONFIGS.response(ctx.api_version), responses=results)


class _ConfigChange(_Config, Protocol):
    @property
    def config_operation(self) -> int: ...


class _ChangedResource(_Resource, Protocol):
    @property
    def configs(self) -> Sequence[_ConfigChange]: ...


async def handle_incremental_alter_configs(
    broker: Broker, request: _AlterRequest[_ChangedResource], ctx: RequestContext
) -> IncrementalAlterConfigsResponses:
    validate_only = bool(request.validate_only)

    def alter(resource: _ChangedResource) -> None:
        changes = [(c.name, int(c.config_operation), c.value) for c in resource.configs]
        broker.incremental_alter_configs(
            resource.resource_name, changes, validate_only=validate_only
        )

    results = await _alter_each(INCREMENTAL_ALTER_CONFIGS.classes(ctx.api_version),
                                request.resources, alter, broker, validate_only, ctx)
    return build(INCREMENTAL_ALTER_CONFIGS.response(ctx.api_version), responses=results)


class _RecordsCut(Protocol):
    @property
    def partition_index(self) -> int: ...

    @property
    def offset(self) -> int: ...


class DeleteRecordsQuery(Protocol):
    """What the handler reads of every DeleteRecords version."""

    @property
    def topics(self) -> Sequence[RequestTopic[_RecordsCut]]: ...


async def handle_delete_records(
    broker: Broker, request: DeleteRecordsQuery, ctx: RequestContext
) -> DeleteRecordsResponses:
    module = DELETE_RECORDS.classes(ctx.api_version)

    async def answer(name: str, partition: _RecordsCut) -> object:
        index = int(partition.partition_index)
        low = broker.delete_records(name, index, int(partition.offset))
        return module.DeleteRecordsPartitionResult(
            partition_index=index, low_watermark=low, error_code=OK
        )

    def failed(name: str, partition: _RecordsCut, error: KafkaError) -> object:
        return module.DeleteRecordsPartitionResult(
            partition_index=int(partition.partition_index), low_watermark=-1,
            error_code=error.code,
        )

    topics = await partition_results(
        ctx, ((t.name, t.partitions) for t in request.topics), answer=answer, failed=failed,
        topic=lambda name, partitions: module.DeleteRecordsTopicResult(
            name=name, partitions=partitions),
    )
    return build(DELETE_RECORDS.response(ctx.api_version), topics=topics)


async def handle_describe_cluster(
    broker: Broker, request: DescribeClusterRequests, ctx: RequestContext
) -> DescribeClusterResponses:
    view = broker.metadata
    module = DESCRIBE_CLUSTER.classes(ctx.api_version)
    brokers = tuple(
        module.DescribeClusterBroker(
            broker_id=endpoint.node_id, host=endpoint.host, port=endpoint.port,
            rack=endpoint.rack,
        )
        for endpoint in view.brokers(ctx.listener)
    )
    return build(
        DESCRIBE_CLUSTER.response(ctx.api_version),
        error_code=OK,
        error_message=None,
        cluster_id=view.cluster_id,
        controller_id=view.controller_id(),
        brokers=brokers,
    )


HANDLERS = (
    BrokerApi(CREATE_TOPICS, 2, 7, handle_create_topics, on_topics(Operation.CREATE)),
    BrokerApi(DELETE_TOPICS, 1, 6, handle_delete_topics, _delete_topics_actions),
    BrokerApi(DELETE_RECORDS, 0, 2, handle_delete_records, on_topics(Operation.DELETE)),
    BrokerApi(DESCRIBE_CONFIGS, 1, 4, handle_describe_configs,
              _on_config_resources(Operation.DESCRIBE_CONFIGS)),
    BrokerApi(ALTER_CONFIGS, 0, 2, handle_alter_configs,
              _on_config_resources(Operation.ALTER_CONFIGS)),
    BrokerApi(CREATE_PARTITIONS, 0, 3, handle_create_partitions, on_topics(Operation.ALTER)),
    BrokerApi(INCREMENTAL_ALTER_CONFIGS, 0, 1, handle_incremental_alter_configs,
              _on_config_resources(Operation.ALTER_CONFIGS)),
    BrokerApi(DESCRIBE_CLUSTER, 0, 1, handle_describe_cluster),
)
