"""Every advertised version of every broker-served API answers, on success and error paths.

Clients pick different versions (kafka-python the newest, librdkafka and kcat older ones), and
kio's classes differ per version, so each (API, version) is exercised over a real socket with
a request built from that version's own classes and decoded by kio on the way back.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.app import BrokerApp
from headrace.core.broker import Broker
from headrace.core.responses import build
from headrace.core.topics import TopicSpec
from tests.server.test_wire import request_module
from tests.server.wire import WireClient, build_batch

SECOND = datetime.timedelta(seconds=1)


def _requests(api_key: int, version: int) -> list[tuple[dict[str, Any], ErrorCode]]:
    """(request fields, expected first error code) pairs for one API version."""
    m = request_module(api_key, version)
    if api_key == 0:
        def produce(topic: str, partition: int) -> dict[str, Any]:
            return {"transactional_id": None, "acks": -1, "timeout": SECOND, "topic_data": (
                build(m.TopicProduceData, name=topic, partition_data=(
                    build(m.PartitionProduceData, index=partition,
                          records=build_batch([b"v"])),)),)}
        return [(produce("known", 0), ErrorCode.none),
                (produce("known", 9), ErrorCode.unknown_topic_or_partition)]
    if api_key == 1:
        def fetch(offset: int) -> dict[str, Any]:
            return {"replica_id": -1, "max_wait": datetime.timedelta(0), "min_bytes": 0,
                    "max_bytes": 1 << 20, "isolation_level": 1, "forgotten_topics_data": (),
                    "topics": (build(m.FetchTopic, topic="known", partitions=(
                        build(m.FetchPartition, partition=0, fetch_offset=offset,
                              partition_max_bytes=1 << 20, current_leader_epoch=-1,
                              log_start_offset=-1, last_fetched_epoch=-1),)),)}
        return [(fetch(0), ErrorCode.none), (fetch(99), ErrorCode.offset_out_of_range)]
    if api_key == 2:
        def offsets(topic: str) -> dict[str, Any]:
            return {"replica_id": -1, "isolation_level": 0, "topics": (
                build(m.ListOffsetsTopic, name=topic, partitions=(
                    build(m.ListOffsetsPartition, partition_index=0, timestamp=-1,
                          current_leader_epoch=-1, max_num_offsets=1),)),)}
        return [(offsets("known"), ErrorCode.none),
                (offsets("missing"), ErrorCode.unknown_topic_or_partition)]
    if api_key == 3:
        name = build(m.MetadataRequestTopic, name="known", topic_id=uuid.UUID(int=0))
        return [({"topics": (name,), "allow_auto_topic_creation": False,
                  "include_topic_authorized_operations": False,
                  "include_cluster_authorized_operations": False}, ErrorCode.none)]
    if api_key == 18:
        return [({"client_software_name": "t", "client_software_version": "1"}, ErrorCode.none)]
    if api_key == 19:
        def create(name: str, partitions: int, assignments: tuple[Any, ...] = ()
                   ) -> dict[str, Any]:
            return {"timeout": SECOND, "validate_only": True, "topics": (
                build(m.CreatableTopic, name=name, num_partitions=partitions,
                      replication_factor=1, assignments=assignments, configs=()),)}
        placed = (build(m.CreatableReplicaAssignment, partition_index=0, broker_ids=(1,)),)
        return [(create("fresh", 2), ErrorCode.none),
                (create("known", 1), ErrorCode.topic_already_exists),
                (create("placed", 1, placed), ErrorCode.invalid_replica_assignment)]
    if api_key == 20:
        return [({"topic_names": ("missing",), "timeout": SECOND,
                  "topics": (build(m.DeleteTopicState, name="missing", topic_id=uuid.UUID(int=0))
                             if hasattr(m, "DeleteTopicState") else None,)},
                 ErrorCode.unknown_topic_or_partition)]
    if api_key == 21:
        def delete(topic: str) -> dict[str, Any]:
            partition = build(m.DeleteRecordsPartition, partition_index=0, offset=0)
            return {"timeout": SECOND, "topics": (
                build(m.DeleteRecordsTopic, name=topic, partitions=(partition,)),)}
        return [(delete("known"), ErrorCode.none),
                (delete("missing"), ErrorCode.unknown_topic_or_partition)]
    if api_key == 22:
        return [({"transactional_id": None, "transaction_timeout": SECOND, "producer_id": -1,
                  "producer_epoch": -1}, ErrorCode.none),
                ({"transactional_id": f"t{version}", "transaction_timeout": SECOND,
                  "producer_id": -1, "producer_epoch": -1}, ErrorCode.none),
                ({"transactional_id": "slow", "transaction_timeout": 2000 * SECOND,
                  "producer_id": -1, "producer_epoch": -1}, ErrorCode.invalid_transaction_timeout)]
    if api_key == 24:
        topics = (build(m.AddPartitionsToTxnTopic, name="known", partitions=(0,)),)
        if version >= 4:
            return [({"transactions": (build(
                m.AddPartitionsToTxnTransaction, transactional_id="unknown", producer_id=7,
                producer_epoch=0, verify_only=True, topics=topics),)},
                ErrorCode.invalid_producer_id_mapping)]
        return [({"v3_and_below_transactional_id": "unknown", "v3_and_below_producer_id": 7,
                  "v3_and_below_producer_epoch": 0, "v3_and_below_topics": topics},
                 ErrorCode.invalid_producer_id_mapping)]
    if api_key in (25, 26):
        return [({"transactional_id": "unknown", "producer_id": 7, "producer_epoch": 0,
                  "group_id": "g", "committed": True}, ErrorCode.invalid_producer_id_mapping)]
    if api_key == 27:
        def marker(topic: str) -> dict[str, Any]:
            return {"markers": (build(
                m.WritableTxnMarker, producer_id=4242, producer_epoch=0, transaction_result=False,
                coordinator_epoch=0, topics=(build(m.WritableTxnMarkerTopic, name=topic,
                                                   partition_indexes=(1,)),)),)}
        return [(marker("known"), ErrorCode.none),
                (marker("missing"), ErrorCode.unknown_topic_or_partition)]
    if api_key == 28:
        def commit(topic: str) -> dict[str, Any]:
            return {"transactional_id": "t", "group_id": "g", "producer_id": 7,
                    "producer_epoch": 0, "generation_id": -1, "member_id": "",
                    "group_instance_id": None, "topics": (build(
                        m.TxnOffsetCommitRequestTopic, name=topic, partitions=(build(
                            m.TxnOffsetCommitRequestPartition, partition_index=0,
                            committed_offset=1, committed_leader_epoch=-1,
                            committed_metadata=""),)),)}
        if version >= 5:  # KIP-890 part 2: v5 adds the group to a transaction "t" never begun
            return [(commit("known"), ErrorCode.invalid_producer_id_mapping)]
        return [(commit("known"), ErrorCode.none),
                (commit("missing"), ErrorCode.unknown_topic_or_partition)]
    if api_key == 61:
        def producers(topic: str) -> dict[str, Any]:
            return {"topics": (build(m.TopicRequest, name=topic, partition_indexes=(0,)),)}
        return [(producers("known"), ErrorCode.none),
                (producers("missing"), ErrorCode.unknown_topic_or_partition)]
    if api_key == 65:
        return [({"transactional_ids": ("never-seen",)}, ErrorCode.transactional_id_not_found)]
    if api_key == 66:
        return [({"state_filters": (), "producer_id_filters": (), "duration_filter": -1},
                 ErrorCode.none)]
    if api_key == 32:
        def describe(kind: int, name: str) -> dict[str, Any]:
            return {"include_synonyms": False, "include_documentation": False, "resources": (
                build(m.DescribeConfigsResource, resource_type=kind, resource_name=name,
                      configuration_keys=None),)}
        return [(describe(2, "known"), ErrorCode.none), (describe(4, "1"), ErrorCode.none),
                (describe(2, "missing"), ErrorCode.unknown_topic_or_partition)]
    if api_key == 33:
        def alter(name: str, value: str, kind: int = 2) -> dict[str, Any]:
            return {"validate_only": True, "resources": (
                build(m.AlterConfigsResource, resource_type=kind, resource_name=name, configs=(
                    build(m.AlterableConfig, name="retention.ms", value=value),)),)}
        return [(alter("known", "1000"), ErrorCode.none),
                (alter("known", "soon"), ErrorCode.invalid_config),
                (alter("missing", "1000"), ErrorCode.unknown_topic_or_partition),
                (alter("1", "1000", kind=4), ErrorCode.invalid_request)]
    if api_key == 37:
        def grow(count: int, assignments: tuple[Any, ...] | None = None) -> dict[str, Any]:
            return {"timeout": SECOND, "validate_only": True, "topics": (
                build(m.CreatePartitionsTopic, name="known", count=count,
                      assignments=assignments),)}
        placed = (build(m.CreatePartitionsAssignment, broker_ids=(1,)),) * 2
        return [(grow(3), ErrorCode.none), (grow(1), ErrorCode.invalid_partitions),
                (grow(3, placed), ErrorCode.invalid_replica_assignment)]
    if api_key == 44:
        def alter_incrementally(value: str, kind: int = 2) -> dict[str, Any]:
            return {"validate_only": True, "resources": (
                build(m.AlterConfigsResource, resource_type=kind, resource_name="known",
                      configs=(build(m.AlterableConfig, name="segment.ms", config_operation=0,
                                     value=value),)),)}
        return [(alter_incrementally("1000"), ErrorCode.none),
                (alter_incrementally("x"), ErrorCode.invalid_config),
                (alter_incrementally("1000", kind=4), ErrorCode.invalid_request)]
    if api_key == 60:
        return [({"include_cluster_authorized_operations": False}, ErrorCode.none)]
    if api_key in (29, 30, 31):  # the ACL APIs, without an authorizer (tests/security: with)
        acl_filter = {"resource_type_filter": 1, "resource_name_filter": None,
                      "pattern_type_filter": 1, "principal_filter": None, "host_filter": None,
                      "operation": 1, "permission_type": 1}
        if api_key == 29:
            return [(acl_filter, ErrorCode.security_disabled)]
        if api_key == 30:
            return [({"creations": (build(
                m.AclCreation, resource_type=2, resource_name="t", resource_pattern_type=3,
                principal="User:a", host="*", operation=3, permission_type=3),)},
                ErrorCode.security_disabled)]
        return [({"filters": (build(m.DeleteAclsFilter, **acl_filter),)},
                 ErrorCode.security_disabled)]
    if api_key == 17:  # on a PLAINTEXT listener, as Kafka's KafkaApis answers
        return [({"mechanism": "PLAIN"}, ErrorCode.illegal_sasl_state)]
    if api_key == 36:
        return [({"auth_bytes": b"\0u\0p"}, ErrorCode.illegal_sasl_state)]
    if api_key == 50:
        return [({"users": None}, ErrorCode.none),
                ({"users": (build(m.UserName, name="nobody"),)}, ErrorCode.resource_not_found)]
    if api_key == 51:
        return [({"deletions": (build(m.ScramCredentialDeletion, name="nobody", mechanism=1),),
                  "upsertions": ()}, ErrorCode.resource_not_found)]
    if api_key == 48:
        def describe(kind: str) -> dict[str, Any]:
            return {"strict": False, "components": (
                build(m.ComponentData, entity_type=kind, match_type=2, match=None),)}
        return [(describe("user"), ErrorCode.none),
                (describe("group"), ErrorCode.unsupported_version)]
    if api_key == 49:
        def alter(value: float) -> dict[str, Any]:
            return {"validate_only": True, "entries": (build(m.EntryData, entity=(
                build(m.EntityData, entity_type="user", entity_name="u"),), ops=(
                build(m.OpData, key="producer_byte_rate", value=value, remove=False),)),)}
        return [(alter(1024.0), ErrorCode.none), (alter(-1.0), ErrorCode.invalid_request)]
    if api_key == 75:
        def describe(*names: str, cursor: str | None = None) -> dict[str, Any]:
            return {"topics": tuple(build(m.TopicRequest, name=name) for name in names),
                    "response_partition_limit": 2000,
                    "cursor": None if cursor is None else build(
                        m.Cursor, topic_name=cursor, partition_index=0)}
        return [(describe("known"), ErrorCode.none),
                (describe("missing"), ErrorCode.unknown_topic_or_partition),
                (describe("known", cursor="other"), ErrorCode.invalid_request)]
    raise AssertionError(f"no request builder for API {api_key}")


def _first_error(response: Any) -> int:
    """The first error code anywhere in the response (0 if none)."""
    stack = [response]
    while stack:
        item = stack.pop(0)
        if isinstance(item, tuple):
            stack[:0] = list(item)
            continue
        fields = getattr(item, "__dataclass_fields__", None)
        if fields is None:
            continue
        code = getattr(item, "error_code", None) or getattr(item, "partition_error_code", None)
        if code:
            return int(code)
        stack[:0] = [getattr(item, name) for name in fields
                     if name not in ("error_code", "partition_error_code")]
    return 0


async def test_every_version_of_every_broker_api(app: BrokerApp, broker: Broker) -> None:
    broker.create_topic(TopicSpec("known", 2))
    await broker.produce("known", 0, build_batch([b"seed"]))
    group_apis = {8, 9, 10, 11, 12, 13, 14, 15, 16, 42, 47, 68, 69}
    client = await WireClient.connect(broker.kafka_port)
    exercised = 0
    for api_key, low, high in app.registry.supported():
        if api_key in group_apis:
            continue  # the group coordinator's handlers, tested in tests/groups
        for version in range(low, high + 1):
            for fields, expected in _requests(api_key, version):
                schema_fields = request_module(api_key, version)
                request_cls = next(
                    obj for obj in vars(schema_fields).values()
                    if getattr(obj, "__api_key__", None) == api_key
                    and getattr(obj, "__type__", None) is not None
                    and obj.__type__.name == "request"
                )
                names = set(request_cls.__dataclass_fields__)
                response = await client.request(
                    api_key, version, **{k: v for k, v in fields.items() if k in names}
                )
                assert _first_error(response) == expected, (api_key, version, response)
                exercised += 1
    assert exercised > 100, exercised
    await client.close()
