"""DescribeTopicPartitions v0 (KIP-966): topics' partitions, paged by a cursor.

What Kafka 3.8+ admin clients and ``kafka-topics --describe`` ask instead of Metadata: no
auto-creation, topics sorted by name, at most ``response_partition_limit`` partitions an answer
(capped by Kafka's ``max.request.partition.size.limit``, 2000) and a ``next_cursor`` (topic,
partition) to continue from. An empty ``topics`` means every topic, from the cursor on. Headrace
has no eligible leader replicas (ELR): every partition answers empty ELR and last-known-ELR
lists, as a Kafka cluster with ELR off (its default) does.
"""

from __future__ import annotations

import uuid

from kio.schema.describe_topic_partitions.v0 import request as v0_request
from kio.schema.describe_topic_partitions.v0 import response as v0
from kio.schema.errors import ErrorCode
from kio.schema.types import TopicName
from kio.static.primitive import i32

from headrace.core.broker import Broker
from headrace.core.metadata import TopicState
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import OK, build
from headrace.core.security import Operation, ResourceType
from headrace.server.handlers.binding import BrokerApi, on_topics

DESCRIBE_TOPIC_PARTITIONS: KafkaApi[
    v0_request.DescribeTopicPartitionsRequest, v0.DescribeTopicPartitionsResponse
] = KafkaApi(75)
#: Kafka's ``max.request.partition.size.limit`` default: the most partitions one answer holds.
MAX_PARTITIONS_PER_RESPONSE = 2000
_NIL_UUID = uuid.UUID(int=0)
#: ``topic_authorized_operations`` when not computed (Kafka's ``Integer.MIN_VALUE``).
_OPERATIONS_UNKNOWN = i32(-(2**31))


async def handle_describe_topic_partitions(
    broker: Broker, request: v0_request.DescribeTopicPartitionsRequest, ctx: RequestContext
) -> v0.DescribeTopicPartitionsResponse:
    view = broker.metadata
    cursor = request.cursor
    explicit = bool(request.topics)
    names = sorted({topic.name for topic in request.topics} if explicit else view.topic_names())
    if cursor is not None:
        if explicit and cursor.topic_name not in names:
            # Kafka's InvalidRequestException: the cursor must name one of the requested topics.
            return _response(tuple(_error(name, ErrorCode.invalid_request) for name in names))
        names = [name for name in names if name >= cursor.topic_name]
    budget = max(1, min(int(request.response_partition_limit), MAX_PARTITIONS_PER_RESPONSE))
    topics: list[v0.DescribeTopicPartitionsResponseTopic] = []
    next_cursor: v0.Cursor | None = None
    for name in names:
        if (ResourceType.TOPIC, name) in ctx.denied:
            if explicit:
                topics.append(_error(name, ErrorCode.topic_authorization_failed))
            continue  # listing every topic: the ones not visible to the caller are left out
        state = view.topic(name)
        if state is None:
            if explicit:
                topics.append(_error(name, ErrorCode.unknown_topic_or_partition))
            continue
        first = 0
        if cursor is not None and name == cursor.topic_name:
            first = max(0, min(int(cursor.partition_index), len(state.partitions)))
        if budget == 0:
            next_cursor = v0.Cursor(topic_name=TopicName(name), partition_index=i32(first))
            break
        last = min(len(state.partitions), first + budget)
        topics.append(_topic(state, first, last))
        budget -= last - first
        if last < len(state.partitions):
            next_cursor = v0.Cursor(topic_name=TopicName(name), partition_index=i32(last))
            break
    return _response(tuple(topics), next_cursor)


def _response(
    topics: tuple[v0.DescribeTopicPartitionsResponseTopic, ...],
    next_cursor: v0.Cursor | None = None,
) -> v0.DescribeTopicPartitionsResponse:
    return build(v0.DescribeTopicPartitionsResponse, topics=topics, next_cursor=next_cursor)


def _error(name: str, code: ErrorCode) -> v0.DescribeTopicPartitionsResponseTopic:
    return v0.DescribeTopicPartitionsResponseTopic(
        error_code=code, name=TopicName(name), topic_id=_NIL_UUID, is_internal=False, partitions=(),
        topic_authorized_operations=_OPERATIONS_UNKNOWN,
    )


def _topic(state: TopicState, first: int, last: int) -> v0.DescribeTopicPartitionsResponseTopic:
    partitions = tuple(
        build(
            v0.DescribeTopicPartitionsResponsePartition,
            error_code=OK,
            partition_index=i32(index),
            leader_id=state.partitions[index].leader,
            leader_epoch=state.partitions[index].leader_epoch,
            replica_nodes=state.partitions[index].replicas,
            isr_nodes=state.partitions[index].isr,
            eligible_leader_replicas=(),
            last_known_elr=(),
            offline_replicas=(),
        )
        for index in range(first, last)
    )
    return v0.DescribeTopicPartitionsResponseTopic(
        error_code=OK, name=TopicName(state.name), topic_id=state.topic_id,
        is_internal=state.is_internal, partitions=partitions,
        topic_authorized_operations=_OPERATIONS_UNKNOWN,
    )


HANDLERS = (
    BrokerApi(DESCRIBE_TOPIC_PARTITIONS, 0, 0, handle_describe_topic_partitions,
              on_topics(Operation.DESCRIBE)),
)
