"""Metadata v0-12: brokers, controller and topic partitions, with topic auto-creation.

``topics`` null (v1+) or empty (v0) means every topic; requested topics that do not exist are
created when both the request and the broker allow it (Kafka's auto-create), otherwise they are
answered with UNKNOWN_TOPIC_OR_PARTITION or INVALID_TOPIC_EXCEPTION. Auto-creation is one batch
per request, made off the event loop and bounded (``auto_create_topics_per_request``): unknown
topics beyond the bound get UNKNOWN_TOPIC_OR_PARTITION and are created when the client asks
again; a topic created (here or by a concurrent request) but not yet visible gets
LEADER_NOT_AVAILABLE, as Kafka answers for a topic it is still creating.

A large answer (thousands of topics or partitions) must not hold the event loop either: it is
built and encoded a slice of topics per turn of the loop, so other clients are served between
slices. (Not on a worker thread: encoding is pure Python, so a thread would hold the GIL against
the loop just the same, and on a busy machine longer.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import uuid
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from kio.schema.errors import ErrorCode
from kio.serial.writers import write_compact_array_length, write_legacy_array_length

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.metadata import TopicState
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import (
    NOT_REQUESTED,
    OK,
    authorization_error,
    authorized_operations,
    build,
)
from headrace.core.security import CLUSTER_NAME, Action, Operation, ResourceType
from headrace.core.topics import topic_name_problem
from headrace.protocol.codec import PreEncodedResponse, encode_body, schema_writer
from headrace.server.handlers.binding import BrokerApi

if TYPE_CHECKING:
    from headrace.core.api_types import MetadataRequests, MetadataResponses

METADATA: KafkaApi[MetadataRequests, MetadataResponses | PreEncodedResponse] = KafkaApi(3)
_NIL_UUID = uuid.UUID(int=0)
#: Topics built, then encoded, per turn of the event loop (some microseconds each).
SLICE = 500
#: Topics plus partitions above which the answer is encoded in slices: encoding 3000 topics in
#: one go holds the loop 15-50 ms, a large cluster's many times that.
SLICED_ENCODING_ENTRIES = 1000


async def handle_metadata(
    broker: Broker, request: MetadataRequests, ctx: RequestContext
) -> MetadataResponses | PreEncodedResponse:
    view = broker.metadata
    module = METADATA.classes(ctx.api_version)
    requested = request.topics
    if requested is None or (ctx.api_version == 0 and not requested):
        # Every topic: those the principal may not describe are left out, as Kafka does.
        names: list[tuple[str | None, uuid.UUID | None]] = [
            (name, None) for name in ctx.visible(ResourceType.TOPIC, view.topic_names())
        ]
    else:
        names = [(t.name, getattr(t, "topic_id", None)) for t in requested]
    allow_create = getattr(request, "allow_auto_topic_creation", True)
    topic_operations = bool(getattr(request, "include_topic_authorized_operations", False))
    failed: dict[str, KafkaError] = {}
    if allow_create:
        missing = [name for name, _ in names
                   if name is not None and view.topic(name) is None
                   and not ctx.refused(ResourceType.TOPIC, name)]
        creatable = set(ctx.visible(ResourceType.TOPIC, missing, Operation.CREATE))
        failed = {name: authorization_error(ResourceType.TOPIC, name)
                  for name in missing if name not in creatable}
        if creatable:
            failed |= await broker.ensure_topics([n for n in missing if n in creatable])
    topics = []
    entries = 0
    for index, (name, topic_id) in enumerate(names):
        if index and index % SLICE == 0:
            await asyncio.sleep(0)  # a yield to other clients, not a wait for a condition
        entries += 1
        if name is None and topic_id is not None and topic_id != _NIL_UUID:
            found = _by_id(broker, topic_id)
            if found is not None and not ctx.allows(
                    Operation.DESCRIBE, ResourceType.TOPIC, found):
                topics.append(_error_topic(module, None, topic_id,
                                           ErrorCode.topic_authorization_failed))
                continue
            if found is None:
                topics.append(_error_topic(module, None, topic_id, ErrorCode.unknown_topic_id))
                continue
            name = found
        if name is None:
            topics.append(_error_topic(module, None, None, ErrorCode.invalid_topic_exception))
            continue
        if ctx.refused(ResourceType.TOPIC, name):
            # Not even whether it exists is said to whoever may not describe it.
            topics.append(_error_topic(module, name, None, ErrorCode.topic_authorization_failed))
            continue
        state = view.topic(name)
        if state is None:
            if topic_name_problem(name) is not None:
                topics.append(_error_topic(module, name, None, ErrorCode.invalid_topic_exception))
                continue
            if name in failed:
                topics.append(_error_topic(module, name, None, failed[name].code))
                continue
            # Created but not yet in the view (a cluster's, via etcd), or being created by a
            # concurrent request: Kafka's answer for a topic it is still creating.
            code = (ErrorCode.leader_not_available
                    if allow_create and broker.creating_topic(name)
                    else ErrorCode.unknown_topic_or_partition)
            topics.append(_error_topic(module, name, None, code))
            continue
        entries += len(state.partitions)
        topics.append(_topic(module, state, authorized_operations(
            ctx, ResourceType.TOPIC, state.name) if topic_operations else NOT_REQUESTED))
    brokers = tuple(
        build(
            module.MetadataResponseBroker,
            node_id=endpoint.node_id,
            host=endpoint.host,
            port=endpoint.port,
            rack=endpoint.rack,
        )
        for endpoint in view.brokers(ctx.listener)
    )
    response: MetadataResponses = build(
        module.MetadataResponse,
        brokers=brokers,
        cluster_id=view.cluster_id,
        controller_id=view.controller_id(),
        topics=tuple(topics),
        cluster_authorized_operations=authorized_operations(
            ctx, ResourceType.CLUSTER, CLUSTER_NAME)
        if getattr(request, "include_cluster_authorized_operations", False) else NOT_REQUESTED,
    )
    if entries <= SLICED_ENCODING_ENTRIES:
        return response
    parts: list[bytes] = []
    for part in encoded_in_slices(response):
        parts.append(part)
        await asyncio.sleep(0)  # a yield to other clients, not a wait for a condition
    # v3+ bodies open with throttle_time_ms; Metadata has no top-level error code.
    return PreEncodedResponse(METADATA.key, response.__flexible__, list(parts),
                              throttle_at=0 if ctx.api_version >= 3 else None)


def encoded_in_slices(response: MetadataResponses) -> Iterator[bytes]:
    """The response's body, :data:`SLICE` topics per part: the bytes kio encodes for the whole.

    kio encodes an entity in one call, so the topics array is written here, between the head
    and the tail of kio's encoding of the response without topics.
    """
    flexible = response.__flexible__
    empty = encode_body(dataclasses.replace(cast(Any, response), topics=()))
    # After the topics array: cluster_authorized_operations (int32, v8-10), tagged fields (v9+).
    tail_size = 4 * hasattr(response, "cluster_authorized_operations") + flexible
    head_size = len(empty) - tail_size - (1 if flexible else 4)  # less the empty array's length
    head = io.BytesIO()
    head.write(empty[:head_size])
    topics = response.topics
    if flexible:
        write_compact_array_length(head, len(topics))
    else:
        write_legacy_array_length(head, len(topics))  # type: ignore[arg-type]
    yield head.getvalue()
    for start in range(0, len(topics), SLICE):
        buffer = io.BytesIO()
        for topic in topics[start:start + SLICE]:
            schema_writer(type(topic))(buffer, topic)
        yield buffer.getvalue()
    yield empty[len(empty) - tail_size:]


def _by_id(broker: Broker, topic_id: uuid.UUID) -> str | None:
    for name, meta in broker.topics.topics().items():
        if meta.topic_id == topic_id:
            return name
    return None


def _error_topic(
    module: ModuleType, name: str | None, topic_id: uuid.UUID | None, code: ErrorCode
) -> object:
    return build(
        module.MetadataResponseTopic,
        error_code=code,
        name=name,
        topic_id=topic_id or _NIL_UUID,
        is_internal=False,
        partitions=(),
    )


def _topic(module: ModuleType, state: TopicState, operations: int) -> object:
    partition_cls = module.MetadataResponsePartition
    partitions = tuple(
        build(
            partition_cls,
            error_code=OK,
            partition_index=index,
            leader_id=partition.leader,
            leader_epoch=partition.leader_epoch,
            replica_nodes=partition.replicas,
            isr_nodes=partition.isr,
            offline_replicas=(),
        )
        for index, partition in enumerate(state.partitions)
    )
    return build(
        module.MetadataResponseTopic,
        error_code=OK,
        name=state.name,
        topic_id=state.topic_id,
        is_internal=state.is_internal,
        partitions=partitions,
        topic_authorized_operations=operations,
    )


def metadata_actions(request: MetadataRequests) -> Sequence[Action]:
    """DESCRIBE on every topic named (by name); "every topic" is filtered by the handler."""
    if request.topics is None:
        return []
    return [Action(Operation.DESCRIBE, ResourceType.TOPIC, t.name)
            for t in request.topics if t.name is not None]


HANDLERS = (BrokerApi(METADATA, 0, 12, handle_metadata, metadata_actions),)
