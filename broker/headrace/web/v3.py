"""Confluent REST Proxy v3-style admin resources: clusters, brokers, topics, partitions, configs,
consumer groups with their consumers and lag.

Partition offsets and group answers come through the app's routers (``ctx.partitions``,
``ctx.group_router``), so any broker of a cluster answers for every partition and group; topic
listings, leaders, replicas and ISR come from the cluster metadata. Handlers only translate
between JSON and the broker services (``Broker.create_topic``,
``describe_topic_configs``, ``incremental_alter_configs``...), so the HTTP API applies exactly
the validation of the Kafka admin APIs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from headrace.core.errors import KafkaError
from headrace.core.internal_topics import is_internal
from headrace.core.routing import Offsets
from headrace.core.topics import TopicSpec
from headrace.groups.lag import PartitionLag, lag_partitions, lags_from
from headrace.groups.views import GroupDescription
from headrace.web import errors
from headrace.web.context import (
    WebContext,
    base_url,
    context_of,
    json_response,
    path_int,
    read_json,
    require_fields,
)
from headrace.web.errors import ApiError, from_kafka_error

CLUSTERS = "/v3/clusters"
CLUSTER = "/v3/clusters/{cluster_id}"
BROKERS = CLUSTER + "/brokers"
TOPICS = CLUSTER + "/topics"
TOPIC = TOPICS + "/{topic_name}"
PARTITIONS = TOPIC + "/partitions"
PARTITION = PARTITIONS + "/{partition_id}"
TOPIC_CONFIGS = TOPIC + "/configs"
TOPIC_CONFIG = TOPIC_CONFIGS + "/{name}"
TOPIC_CONFIGS_ALTER = TOPIC_CONFIGS + ":alter"
GROUPS = CLUSTER + "/consumer-groups"
GROUP = GROUPS + "/{consumer_group_id}"
GROUP_CONSUMERS = GROUP + "/consumers"
GROUP_LAGS = GROUP + "/lags"
GROUP_LAG_SUMMARY = GROUP + "/lag-summary"


def _link(request: web.Request, path: str) -> dict[str, str]:
    return {"related": base_url(request) + path}


def _cluster(request: web.Request, ctx: WebContext) -> dict[str, Any]:
    cluster_id = ctx.broker.cluster_id
    path = f"/v3/clusters/{cluster_id}"
    controller = ctx.broker.metadata.controller_id()
    return {
        "kind": "KafkaCluster",
        "metadata": {"self": base_url(request) + path},
        "cluster_id": cluster_id,
        "controller": {"broker_id": controller, **_link(request, f"{path}/brokers/{controller}")},
        "brokers": _link(request, path + "/brokers"),
        "topics": _link(request, path + "/topics"),
        "consumer_groups": _link(request, path + "/consumer-groups"),
    }


async def list_clusters(request: web.Request) -> web.Response:
    ctx = context_of(request)
    return json_response({"kind": "KafkaClusterList", "metadata": {"self": str(request.url)},
                          "data": [_cluster(request, ctx)]})


async def get_cluster(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    return json_response(_cluster(request, ctx))


async def list_brokers(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    data = [
        {"kind": "KafkaBroker", "cluster_id": ctx.broker.cluster_id, "broker_id": b.node_id,
         "host": b.host, "port": b.port, "rack": b.rack,
         "is_controller": b.node_id == ctx.broker.metadata.controller_id()}
        for b in ctx.broker.metadata.brokers()
    ]
    return json_response({"kind": "KafkaBrokerList", "data": data})


def _topic(request: web.Request, ctx: WebContext, name: str) -> dict[str, Any]:
    topic = ctx.require_topic(name)
    state = ctx.broker.metadata.topic(name)
    replication = len(state.partitions[0].replicas) if state and state.partitions else 1
    path = f"/v3/clusters/{ctx.broker.cluster_id}/topics/{name}"
    return {
        "kind": "KafkaTopic",
        "metadata": {"self": base_url(request) + path},
        "cluster_id": ctx.broker.cluster_id,
        "topic_name": name,
        "topic_id": str(topic.topic_id),
        "is_internal": is_internal(name),
        "replication_factor": replication,
        "partitions_count": topic.partitions,
        "partitions": _link(request, path + "/partitions"),
        "configs": _link(request, path + "/configs"),
    }


async def list_topics(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    include_internal = request.query.get("include_internal", "false").lower() == "true"
    data = [_topic(request, ctx, name) for name in ctx.view.visible_topics(include_internal)]
    return json_response({"kind": "KafkaTopicList", "data": data})


def _configs_from_body(body: dict[str, Any]) -> dict[str, str]:
    raw = body.get("configs", [])
    if not isinstance(raw, list):
        raise ApiError(400, errors.INVALID_FIELD, "configs must be a list of {name, value}")
    configs: dict[str, str] = {}
    for index, entry in enumerate(raw):
        if (not isinstance(entry, dict) or not isinstance(entry.get("name"), str)
                or not isinstance(entry.get("value"), str)):
            raise ApiError(400, errors.INVALID_FIELD,
                           f"configs[{index}] must be an object with string name and value")
        configs[entry["name"]] = entry["value"]
    return configs


def _optional_int(body: dict[str, Any], name: str) -> int:
    value = body.get(name, -1)
    if value is None:
        return -1
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, errors.INVALID_FIELD, f"{name} must be an integer")
    return value


async def create_topic(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    body = require_fields(await read_json(request), "the topic")
    name = body.get("topic_name")
    if not isinstance(name, str):
        raise ApiError(400, errors.INVALID_FIELD, "topic_name must be a string")
    spec = TopicSpec(
        name=name,
        partitions=_optional_int(body, "partitions_count"),
        replication_factor=_optional_int(body, "replication_factor"),
        configs=_configs_from_body(body),
    )
    validate_only = body.get("validate_only", False) is True
    try:
        (created,) = await ctx.broker.create_topics([spec], validate_only=validate_only)
        if isinstance(created, KafkaError):
            raise created
        if not validate_only:  # answered once stored (a clustered broker's, in etcd)
            await ctx.broker.topics.committed(name)
    except KafkaError as error:
        raise from_kafka_error(error) from None
    if validate_only:
        return json_response({"topic_name": name, "validate_only": True}, status=200)
    return json_response(_topic(request, ctx, name), status=201)


async def get_topic(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    return json_response(_topic(request, ctx, request.match_info["topic_name"]))


async def delete_topic(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name = request.match_info["topic_name"]
    ctx.require_topic(name)
    try:
        ctx.broker.delete_topic(name)
        await ctx.broker.topics.committed(name)
    except KafkaError as error:
        raise from_kafka_error(error) from None
    ctx.metrics.forget_topic(name)
    return web.Response(status=204)


def _partition(request: web.Request, ctx: WebContext, name: str, partition: int,
               offsets: Offsets | KafkaError | None) -> dict[str, Any]:
    """A partition as the cluster metadata describes it, with its leader's offsets (null
    when ``offsets`` is an error: a listing still shows the partitions that have no leader)."""
    state = ctx.broker.metadata.topic(name)
    leader, replicas, isr = ctx.broker.config.node_id, [ctx.broker.config.node_id], []
    if state is not None and partition < len(state.partitions):
        p = state.partitions[partition]
        leader, replicas, isr = p.leader, list(p.replicas), list(p.isr)
    known = offsets if isinstance(offsets, Offsets) else None
    path = f"/v3/clusters/{ctx.broker.cluster_id}/topics/{name}/partitions/{partition}"
    return {
        "kind": "KafkaPartition",
        "metadata": {"self": base_url(request) + path},
        "cluster_id": ctx.broker.cluster_id,
        "topic_name": name,
        "partition_id": partition,
        "leader": {"broker_id": leader},
        "replicas": [{"broker_id": r, "is_leader": r == leader, "is_in_sync": r in isr}
                     for r in replicas],
        "earliest_offset": known.log_start_offset if known else None,
        "latest_offset": known.high_watermark if known else None,
    }


async def list_partitions(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name = request.match_info["topic_name"]
    topic = ctx.require_topic(name)
    offsets = await ctx.partitions.offsets((name, p) for p in range(topic.partitions))
    data = [_partition(request, ctx, name, p, offsets.get((name, p)))
            for p in range(topic.partitions)]
    return json_response({"kind": "KafkaPartitionList", "data": data})


async def get_partition(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name = request.match_info["topic_name"]
    partition = path_int(request, "partition_id")
    ctx.require_partition(name, partition)
    offsets = (await ctx.partitions.offsets([(name, partition)]))[(name, partition)]
    if isinstance(offsets, KafkaError):
        raise from_kafka_error(offsets)
    return json_response(_partition(request, ctx, name, partition, offsets))


def _configs(ctx: WebContext, name: str) -> dict[str, tuple[str, bool]]:
    ctx.require_topic(name)
    try:
        return ctx.broker.describe_topic_configs(name)
    except KafkaError as error:
        raise from_kafka_error(error) from None


def _config_entry(ctx: WebContext, topic: str, key: str, value: str, is_default: bool
                  ) -> dict[str, Any]:
    return {
        "kind": "KafkaTopicConfig",
        "cluster_id": ctx.broker.cluster_id,
        "topic_name": topic,
        "name": key,
        "value": value,
        "is_default": is_default,
        "is_read_only": False,
        "is_sensitive": False,
        "source": "DEFAULT_CONFIG" if is_default else "DYNAMIC_TOPIC_CONFIG",
    }


async def list_topic_configs(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name = request.match_info["topic_name"]
    data = [_config_entry(ctx, name, key, value, default)
            for key, (value, default) in sorted(_configs(ctx, name).items())]
    return json_response({"kind": "KafkaTopicConfigList", "data": data})


async def get_topic_config(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name, key = request.match_info["topic_name"], request.match_info["name"]
    configs = _configs(ctx, name)
    if key not in configs:
        raise ApiError(404, errors.UNKNOWN_CONFIG, f"topic config {key!r} not found")
    value, default = configs[key]
    return json_response(_config_entry(ctx, name, key, value, default))


async def _apply_config_changes(ctx: WebContext, name: str,
                                changes: list[tuple[str, int, str | None]]) -> None:
    """Apply the changes and answer once they are stored (a clustered broker's, in etcd)."""
    ctx.require_topic(name)
    try:
        ctx.broker.incremental_alter_configs(name, changes)
        await ctx.broker.topics.committed(name)
    except KafkaError as error:
        raise from_kafka_error(error) from None


async def update_topic_config(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name, key = request.match_info["topic_name"], request.match_info["name"]
    body = require_fields(await read_json(request), "the config update")
    value = body.get("value")
    if not isinstance(value, str):
        raise ApiError(400, errors.INVALID_FIELD, "value must be a string")
    await _apply_config_changes(ctx, name, [(key, 0, value)])
    return web.Response(status=204)


async def reset_topic_config(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name, key = request.match_info["topic_name"], request.match_info["name"]
    await _apply_config_changes(ctx, name, [(key, 1, None)])
    return web.Response(status=204)


async def alter_topic_configs(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    name = request.match_info["topic_name"]
    body = require_fields(await read_json(request), "the config batch")
    entries = body.get("data")
    if not isinstance(entries, list):
        raise ApiError(400, errors.INVALID_FIELD, "data must be a list of {name, value, operation}")
    changes: list[tuple[str, int, str | None]] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ApiError(400, errors.INVALID_FIELD, f"data[{index}] needs a string name")
        operation = str(entry.get("operation", "SET")).upper()
        if operation == "SET":
            if not isinstance(entry.get("value"), str):
                raise ApiError(400, errors.INVALID_FIELD, f"data[{index}].value must be a string")
            changes.append((entry["name"], 0, entry["value"]))
        elif operation == "DELETE":
            changes.append((entry["name"], 1, None))
        else:
            raise ApiError(400, errors.INVALID_FIELD,
                           f"data[{index}].operation must be SET or DELETE")
    await _apply_config_changes(ctx, name, changes)
    return web.Response(status=204)


# -- consumer groups ---------------------------------------------------------------------------


async def _describe(ctx: WebContext, group_id: str) -> GroupDescription:
    """The group as its coordinator describes it; 404 if it does not exist."""
    try:
        description = await ctx.require_groups().describe_group(group_id)
    except KafkaError as error:
        raise from_kafka_error(error) from None
    if description.state in ("", "Dead"):
        raise ApiError(404, errors.UNKNOWN_GROUP, f"consumer group {group_id!r} not found")
    return description


def _group(request: web.Request, ctx: WebContext, description: GroupDescription
           ) -> dict[str, Any]:
    group_id = description.group_id
    path = f"/v3/clusters/{ctx.broker.cluster_id}/consumer-groups/{group_id}"
    return {
        "kind": "KafkaConsumerGroup",
        "metadata": {"self": base_url(request) + path},
        "cluster_id": ctx.broker.cluster_id,
        "consumer_group_id": group_id,
        "is_simple": description.protocol_type == "",
        "partition_assignor": description.protocol_name,
        "state": description.state.upper(),
        "generation_id": description.generation_id,
        "members_count": len(description.members),
        "coordinator": {"broker_id": ctx.require_groups().coordinator_id(group_id)},
        "consumers": _link(request, path + "/consumers"),
        "lag_summary": _link(request, path + "/lag-summary"),
        "lags": _link(request, path + "/lags"),
    }


async def list_groups(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    groups = ctx.require_groups()
    try:
        overviews = await groups.list_groups()
        descriptions = await asyncio.gather(
            *(groups.describe_group(o.group_id) for o in overviews))
    except KafkaError as error:
        raise from_kafka_error(error) from None
    data = [_group(request, ctx, d) for d in descriptions if d.state not in ("", "Dead")]
    return json_response({"kind": "KafkaConsumerGroupList", "data": data})


async def get_group(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    description = await _describe(ctx, request.match_info["consumer_group_id"])
    return json_response(_group(request, ctx, description))


async def list_group_consumers(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    group_id = request.match_info["consumer_group_id"]
    description = await _describe(ctx, group_id)
    data = [
        {
            "kind": "KafkaConsumer",
            "cluster_id": ctx.broker.cluster_id,
            "consumer_group_id": group_id,
            "consumer_id": member.member_id,
            "instance_id": member.group_instance_id,
            "client_id": member.client_id,
            "host": member.client_host,
            "assignments": [{"topic_name": t, "partition_id": p}
                            for t, p in member.assigned_partitions],
        }
        for member in description.members
    ]
    return json_response({"kind": "KafkaConsumerList", "data": data})


async def _group_lags(ctx: WebContext, group_id: str) -> list[PartitionLag]:
    """The group's lag now: its coordinator's committed offsets against the leaders' high
    watermarks."""
    description = await _describe(ctx, group_id)
    try:
        committed = await ctx.require_groups().committed_offsets(group_id)
    except KafkaError as error:
        raise from_kafka_error(error) from None
    keys, _ = lag_partitions(description, committed)
    ends: dict[tuple[str, int], Offsets | Exception] = dict(await ctx.partitions.offsets(keys))
    return lags_from(group_id, description, committed, ends)


async def list_group_lags(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    group_id = request.match_info["consumer_group_id"]
    data = [
        {
            "kind": "KafkaConsumerLag",
            "cluster_id": ctx.broker.cluster_id,
            "consumer_group_id": group_id,
            "topic_name": lag.topic,
            "partition_id": lag.partition,
            "current_offset": lag.committed_offset,
            "log_end_offset": lag.log_end_offset,
            "lag": lag.lag,
            "consumer_id": lag.member_id,
            "instance_id": lag.instance_id,
            "client_id": lag.client_id,
        }
        for lag in await _group_lags(ctx, group_id)
    ]
    return json_response({"kind": "KafkaConsumerLagList", "data": data})


async def group_lag_summary(request: web.Request) -> web.Response:
    ctx = context_of(request)
    ctx.require_cluster(request.match_info["cluster_id"])
    group_id = request.match_info["consumer_group_id"]
    lags = await _group_lags(ctx, group_id)
    worst = max(lags, key=lambda lag: lag.lag, default=None)
    return json_response({
        "kind": "KafkaConsumerGroupLagSummary",
        "cluster_id": ctx.broker.cluster_id,
        "consumer_group_id": group_id,
        "max_lag": worst.lag if worst else 0,
        "total_lag": sum(lag.lag for lag in lags),
        "max_lag_topic_name": worst.topic if worst else None,
        "max_lag_partition_id": worst.partition if worst else None,
        "max_lag_consumer_id": worst.member_id if worst else None,
    })


def add_routes(app: web.Application) -> None:
    router = app.router  # produce's route is headrace.web.produce's
    router.add_get(CLUSTERS, list_clusters)
    router.add_get(CLUSTER, get_cluster)
    router.add_get(BROKERS, list_brokers)
    router.add_get(TOPICS, list_topics)
    router.add_post(TOPICS, create_topic)
    router.add_get(TOPIC, get_topic)
    router.add_delete(TOPIC, delete_topic)
    router.add_get(PARTITIONS, list_partitions)
    router.add_get(PARTITION, get_partition)
    router.add_get(TOPIC_CONFIGS, list_topic_configs)
    router.add_post(TOPIC_CONFIGS_ALTER, alter_topic_configs)
    router.add_get(TOPIC_CONFIG, get_topic_config)
    router.add_put(TOPIC_CONFIG, update_topic_config)
    router.add_delete(TOPIC_CONFIG, reset_topic_config)
    router.add_get(GROUPS, list_groups)
    router.add_get(GROUP, get_group)
    router.add_get(GROUP_CONSUMERS, list_group_consumers)
    router.add_get(GROUP_LAGS, list_group_lags)
    router.add_get(GROUP_LAG_SUMMARY, group_lag_summary)
