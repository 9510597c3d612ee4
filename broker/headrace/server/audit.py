"""The Kafka pipeline's audit step: which APIs are admin actions, and what a request did.

:class:`~headrace.server.pipeline.RequestPipeline` calls :func:`audit_kafka_request` after the
handler, with the typed request and response, for the API keys in :data:`ADMIN_APIS` only (a
dict lookup on every other request). Each resource a request names gets one audit line with
its own result, read from the response — the error code the client saw — so a CreateTopics of
three topics of which one exists says so three times. Consumer traffic (OffsetCommit of a
running consumer, JoinGroup …) is not an admin action (an OffsetCommit outside any generation is:
that is how admin clients move a group's offsets) and is not audited; offsets reset or
committed through the HTTP API are (:mod:`headrace.web.audit`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.requests import RequestContext
from headrace.observability.audit import Actor, AdminAudit

log = logging.getLogger(__name__)

#: (action, resource, error code, details) for each resource one request touched.
Entry = tuple[str, str, int, dict[str, Any]]


def _result(code: int) -> str:
    return "ok" if code == 0 else ErrorCode(int(code)).name.upper()  # Kafka's spelling


def _dry_run(request: Any) -> dict[str, Any]:
    return {"dry_run": True} if getattr(request, "validate_only", False) else {}


def _create_topics(request: Any, response: Any) -> Iterator[Entry]:
    asked = {topic.name: topic for topic in request.topics}
    for topic in response.topics:
        wanted = asked.get(topic.name)
        details = _dry_run(request)
        if wanted is not None:
            details |= {"partitions": wanted.num_partitions,
                        "replication_factor": wanted.replication_factor}
        yield "topic.create", f"topic:{topic.name}", topic.error_code, details


def _delete_topics(request: Any, response: Any) -> Iterator[Entry]:
    for topic in response.responses:
        name = topic.name if topic.name is not None else str(topic.topic_id)
        yield "topic.delete", f"topic:{name}", topic.error_code, {}


def _create_partitions(request: Any, response: Any) -> Iterator[Entry]:
    counts = {topic.name: topic.count for topic in request.topics}
    for topic in response.results:
        yield ("partition.add", f"topic:{topic.name}", topic.error_code,
               {"count": counts.get(topic.name), **_dry_run(request)})


def _alter_configs(request: Any, response: Any) -> Iterator[Entry]:
    names = {(int(r.resource_type), r.resource_name): sorted(c.name for c in r.configs)
             for r in request.resources}
    for resource in response.responses:
        kind = "topic" if int(resource.resource_type) == 2 else "broker"
        configs = names.get((int(resource.resource_type), resource.resource_name), [])
        yield ("config.alter", f"{kind}:{resource.resource_name}", resource.error_code,
               {"configs": ",".join(configs), **_dry_run(request)})


def _delete_records(request: Any, response: Any) -> Iterator[Entry]:
    for topic in response.topics:
        for partition in topic.partitions:
            yield ("records.delete", f"topic:{topic.name} partition:{partition.partition_index}",
                   partition.error_code, {"low_watermark": partition.low_watermark})


def _delete_groups(request: Any, response: Any) -> Iterator[Entry]:
    for group in response.results:
        yield "group.delete", f"group:{group.group_id}", group.error_code, {}


def _offset_alter(request: Any, response: Any) -> Iterator[Entry]:
    """OffsetCommit outside any generation: an admin moving a group's offsets (Kafka's
    AlterConsumerGroupOffsets, ``kafka-consumer-groups --reset-offsets``). A member's own
    commits carry its generation or epoch and are consumer traffic."""
    if request.generation_id_or_member_epoch != -1 or request.member_id:
        return
    offsets = {(t.name, p.partition_index): p.committed_offset
               for t in request.topics for p in t.partitions}
    for topic in response.topics:
        for partition in topic.partitions:
            yield ("offset.alter", f"group:{request.group_id} topic:{topic.name} "
                   f"partition:{partition.partition_index}", partition.error_code,
                   {"offset": offsets.get((topic.name, partition.partition_index))})


def _offset_delete(request: Any, response: Any) -> Iterator[Entry]:
    if response.error_code:
        yield "offset.delete", f"group:{request.group_id}", response.error_code, {}
        return
    for topic in response.topics:
        for partition in topic.partitions:
            yield ("offset.delete", f"group:{request.group_id} topic:{topic.name} "
                   f"partition:{partition.partition_index}", partition.error_code, {})


def _elect_leaders(request: Any, response: Any) -> Iterator[Entry]:
    if response.error_code:
        yield "leader.elect", "cluster", response.error_code, {}
        return
    for topic in response.replica_election_results:
        for partition in topic.partition_result:
            yield ("leader.elect", f"topic:{topic.topic} partition:{partition.partition_id}",
                   partition.error_code, {})


def _alter_reassignments(request: Any, response: Any) -> Iterator[Entry]:
    if response.error_code:
        yield "replicas.reassign", "cluster", response.error_code, {}
        return
    wanted = {(t.name, p.partition_index): p.replicas
              for t in request.topics for p in t.partitions}
    for topic in response.responses:
        for partition in topic.partitions:
            replicas = wanted.get((topic.name, partition.partition_index))
            yield ("replicas.reassign",
                   f"topic:{topic.name} partition:{partition.partition_index}",
                   partition.error_code,
                   {"replicas": "cancel" if replicas is None
                    else ",".join(str(int(b)) for b in replicas)})


#: API key → what its requests did. Kafka's names: OffsetCommit (8, admin commits only),
#: CreateTopics (19), DeleteTopics (20),
#: DeleteRecords (21), AlterConfigs (33), CreatePartitions (37), DeleteGroups (42),
#: ElectLeaders (43), IncrementalAlterConfigs (44), AlterPartitionReassignments (45),
#: OffsetDelete (47).
ADMIN_APIS: dict[int, Callable[[Any, Any], Iterator[Entry]]] = {
    8: _offset_alter,
    19: _create_topics,
    20: _delete_topics,
    21: _delete_records,
    33: _alter_configs,
    37: _create_partitions,
    42: _delete_groups,
    43: _elect_leaders,
    44: _alter_configs,
    45: _alter_reassignments,
    47: _offset_delete,
}


def audit_kafka_request(audit: AdminAudit, request: Any, response: Any,
                        ctx: RequestContext) -> None:
    """One audit line per resource an admin request named (``ctx.api_key`` in ADMIN_APIS)."""
    describe = ADMIN_APIS[ctx.api_key]
    actor = Actor(str(ctx.principal), ctx.client_host, ctx.listener)
    client = {"client_id": ctx.client_id} if ctx.client_id else {}
    try:
        entries = list(describe(request, response))
    except Exception:  # the answer is already made: a gap in the trail must not fail it
        log.exception("cannot audit API %d v%d from %s", ctx.api_key, ctx.api_version,
                      ctx.client_host)
        return
    for action, resource, code, details in entries:
        audit.record(actor, action, resource, _result(code), **details, **client)


__all__ = ["ADMIN_APIS", "audit_kafka_request"]
