"""Admin APIs: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs, DeleteRecords and DescribeCluster, as thin adapters over the broker
services.

Each topic/resource gets its own Kafka error code and message; one bad entry never fails the
others. Broker resources are described from the broker's own settings (read-only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import RequestContext
from headrace.core.responses import OK, build, partition_results, response_classes
from headrace.core.security import Operation
from headrace.core.topics import TopicSpec
from headrace.server.handlers.binding import BrokerApi, on_topics
from headrace.storage import TopicMetadata

CREATE_TOPICS = 19
DELETE_TOPICS = 20
DELETE_RECORDS = 21
DESCRIBE_CONFIGS = 32
ALTER_CONFIGS = 33
CREATE_PARTITIONS = 37
INCREMENTAL_ALTER_CONFIGS = 44
DESCRIBE_CLUSTER = 60

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


def _timeout_ms(request: Any) -> int:
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


async def handle_create_topics(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(CREATE_TOPICS, ctx.api_version)
    validate_only = bool(request.validate_only)
    outcomes: list[TopicMetadata | KafkaError | None] = []
    specs: list[TopicSpec] = []
    for topic in request.topics:
        try:
            _refuse_manual_assignment(topic)
        except KafkaError as error:
            outcomes.append(error)
            continue
        outcomes.append(None)
        specs.append(TopicSpec(
            name=topic.name,
            partitions=int(topic.num_partitions),
            replication_factor=int(topic.replication_factor),
            configs={c.name: c.value for c in topic.configs if c.value is not None},
        ))
    created = iter(await broker.create_topics(specs, validate_only=validate_only))
    results = []
    for topic, outcome in zip(request.topics, outcomes, strict=True):
        result = outcome if outcome is not None else next(created)
        if isinstance(result, TopicMetadata) and not validate_only:
            try:
                await _stored(broker, topic.name, _timeout_ms(request))
            except KafkaError as error:
                result = error
        if isinstance(result, KafkaError):
            results.append(
                build(
                    module.CreatableTopicResult,
                    name=topic.name,
                    topic_id=None,
                    error_code=result.code,
                    error_message=result.message,
                    num_partitions=-1,
                    replication_factor=-1,
                    configs=None,
                )
            )
            continue
        config_cls = getattr(module, "CreatableTopicConfigs", None)  # v5+
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
        results.append(
            build(
                module.CreatableTopicResult,
                name=topic.name,
                topic_id=result.topic_id,
                error_code=OK,
                error_message=None,
                num_partitions=result.partitions,
                replication_factor=1,
                configs=configs,
            )
        )
    return build(module.CreateTopicsResponse, topics=tuple(results))


def _refuse_manual_assignment(topic: Any) -> None:
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


async def handle_delete_topics(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(DELETE_TOPICS, ctx.api_version)
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = []
    for name, topic_id in wanted:
        if name is None and topic_id is not None:
            name = next(
                (n for n, m in broker.topics.topics().items() if m.topic_id == topic_id), None
            )
        meta = broker.topics.get(name) if name else None
        try:
            if name is None or meta is None:
                raise KafkaError(
                    ErrorCode.unknown_topic_or_partition if topic_id is None or name
                    else ErrorCode.unknown_topic_id,
                    f"unknown topic {name or topic_id}",
                )
            broker.delete_topic(name)
            await _stored(broker, name, _timeout_ms(request))
            code, message = OK, None
        except KafkaError as error:
            code, message = error.code, error.message
        results.append(
            build(
                module.DeletableTopicResult,
                name=name,
                topic_id=meta.topic_id if meta else topic_id,
                error_code=code,
                error_message=message,
            )
        )
    return build(module.DeleteTopicsResponse, responses=tuple(results))


async def handle_create_partitions(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(CREATE_PARTITIONS, ctx.api_version)
    results = []
    for topic in request.topics:
        try:
            _refuse_manual_assignment(topic)
            broker.topics.add_partitions(
                topic.name, int(topic.count), validate_only=bool(request.validate_only)
            )
            if not request.validate_only:
                await _stored(broker, topic.name, _timeout_ms(request))
            code, message = OK, None
        except KafkaError as error:
            code, message = error.code, error.message
        results.append(
            module.CreatePartitionsTopicResult(
                name=topic.name, error_code=code, error_message=message
            )
        )
    return build(module.CreatePartitionsResponse, results=tuple(results))


def broker_configs(broker: Broker) -> dict[str, str]:
    """The broker-level settings AdminClient tools ask about, with Kafka's names."""
    config = broker.config
    listener = config.listener
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
        "advertised.listeners": f"{listener.name}://{broker.endpoint.host}:{broker.endpoint.port}",
        "listeners": f"{listener.name}://{listener.host}:{broker.kafka_port or listener.port}",
        "listener.security.protocol.map": f"{listener.name}:{listener.security_protocol}",
        "inter.broker.listener.name": listener.name,
    }
    return values


async def handle_describe_configs(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(DESCRIBE_CONFIGS, ctx.api_version)
    results = []
    for resource in request.resources:
        keys = set(resource.configuration_keys) if resource.configuration_keys else None
        entries: list[tuple[str, str, bool, int]] = []  # name, value, read_only, source
        code, message = OK, None
        try:
            if resource.resource_type == RESOURCE_TOPIC:
                described = broker.describe_topic_configs(resource.resource_name)
                entries = [
                    (key, value, False, SOURCE_DEFAULT if is_default else SOURCE_DYNAMIC_TOPIC)
                    for key, (value, is_default) in sorted(described.items())
                ]
            elif resource.resource_type == RESOURCE_BROKER:
                if resource.resource_name not in ("", str(broker.config.node_id)):
                    raise KafkaError(
                        ErrorCode.invalid_request, f"unknown broker {resource.resource_name!r}"
                    )
                entries = [
                    (key, value, True, SOURCE_STATIC_BROKER)
                    for key, value in sorted(broker_configs(broker).items())
                ]
            else:
                raise KafkaError(
                    ErrorCode.invalid_request, f"unsupported resource type {resource.resource_type}"
                )
        except KafkaError as error:
            code, message = error.code, error.message
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
        results.append(
            build(
                module.DescribeConfigsResult,
                error_code=code,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return build(module.DescribeConfigsResponse, results=tuple(results))


def _alter_result(module: Any, resource: Any, error: KafkaError | None) -> Any:
    return module.AlterConfigsResourceResponse(
        error_code=error.code if error else OK,
        error_message=error.message if error else None,
        resource_type=resource.resource_type,
        resource_name=resource.resource_name,
    )


def _require_topic_resource(resource: Any) -> None:
    if resource.resource_type != RESOURCE_TOPIC:
        raise KafkaError(
            ErrorCode.invalid_request,
            "only topic configs can be altered; broker configs are static",
        )


async def _alter_each(
    module: Any, resources: Iterable[Any], alter: Callable[[Any], None], broker: Broker,
    validate_only: bool,
) -> tuple[Any, ...]:
    """``alter`` each topic resource; one result per resource, with its own error. A change
    is answered once it is stored (a clustered broker's, in etcd), as Kafka answers once its
    controller has committed it."""
    results = []
    for resource in resources:
        try:
            _require_topic_resource(resource)
            alter(resource)
            if not validate_only:
                await _stored(broker, resource.resource_name, None)
            results.append(_alter_result(module, resource, None))
        except KafkaError as error:
            results.append(_alter_result(module, resource, error))
    return tuple(results)


async def handle_alter_configs(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(ALTER_CONFIGS, ctx.api_version)

    def alter(resource: Any) -> None:
        configs = {c.name: c.value for c in resource.configs if c.value is not None}
        broker.alter_configs(
            resource.resource_name, configs, validate_only=bool(request.validate_only)
        )

    results = await _alter_each(module, request.resources, alter, broker,
                                bool(request.validate_only))
    return build(module.AlterConfigsResponse, responses=results)


async def handle_incremental_alter_configs(
    broker: Broker, request: Any, ctx: RequestContext
) -> Any:
    module = response_classes(INCREMENTAL_ALTER_CONFIGS, ctx.api_version)

    def alter(resource: Any) -> None:
        changes = [(c.name, int(c.config_operation), c.value) for c in resource.configs]
        broker.incremental_alter_configs(
            resource.resource_name, changes, validate_only=bool(request.validate_only)
        )

    results = await _alter_each(module, request.resources, alter, broker,
                                bool(request.validate_only))
    return build(
        module.IncrementalAlterConfigsResponse, responses=results
    )


async def handle_delete_records(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(DELETE_RECORDS, ctx.api_version)

    def answer(name: str, partition: Any) -> Any:
        index = int(partition.partition_index)
        low = broker.delete_records(name, index, int(partition.offset))
        return module.DeleteRecordsPartitionResult(
            partition_index=index, low_watermark=low, error_code=OK
        )

    def failed(name: str, partition: Any, code: ErrorCode) -> Any:
        return module.DeleteRecordsPartitionResult(
            partition_index=int(partition.partition_index), low_watermark=-1, error_code=code
        )

    topics = partition_results(
        ctx, request.topics, answer=answer, failed=failed,
        topic=lambda name, partitions: module.DeleteRecordsTopicResult(
            name=name, partitions=partitions),
    )
    return build(module.DeleteRecordsResponse, topics=topics)


async def handle_describe_cluster(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    view = broker.metadata
    module = response_classes(DESCRIBE_CLUSTER, ctx.api_version)
    brokers = tuple(
        module.DescribeClusterBroker(
            broker_id=endpoint.node_id, host=endpoint.host, port=endpoint.port,
            rack=endpoint.rack,
        )
        for endpoint in view.brokers()
    )
    return build(
        module.DescribeClusterResponse,
        error_code=OK,
        error_message=None,
        cluster_id=view.cluster_id,
        controller_id=view.controller_id(),
        brokers=brokers,
    )


HANDLERS = [
    BrokerApi(CREATE_TOPICS, 2, 7, handle_create_topics),
    BrokerApi(DELETE_TOPICS, 1, 6, handle_delete_topics),
    BrokerApi(DELETE_RECORDS, 0, 2, handle_delete_records, on_topics(Operation.DELETE)),
    BrokerApi(DESCRIBE_CONFIGS, 1, 4, handle_describe_configs),
    BrokerApi(ALTER_CONFIGS, 0, 2, handle_alter_configs),
    BrokerApi(CREATE_PARTITIONS, 0, 3, handle_create_partitions),
    BrokerApi(INCREMENTAL_ALTER_CONFIGS, 0, 1, handle_incremental_alter_configs),
    BrokerApi(DESCRIBE_CLUSTER, 0, 1, handle_describe_cluster),
]
