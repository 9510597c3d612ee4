"""Every advertised version of every group API: kio request in, handler, kio response out.

Each response is encoded with kio's writer for its exact version and decoded back, so a field
that an old version cannot carry (a null in a non-nullable string, a missing field) fails here
rather than in a client.
"""

from __future__ import annotations

import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer

from headrace.core.requests import ApiHandler, RequestContext, Session
from headrace.groups import CoordinatorNode, GroupConfig, GroupCoordinator
from headrace.groups.handlers import (
    DELETE_GROUPS,
    DESCRIBE_GROUPS,
    FIND_COORDINATOR,
    HEARTBEAT,
    JOIN_GROUP,
    LEAVE_GROUP,
    LIST_GROUPS,
    OFFSET_COMMIT,
    OFFSET_DELETE,
    OFFSET_FETCH,
    SUPPORTED_VERSIONS,
    SYNC_GROUP,
    group_api_handlers,
)
from headrace.storage import LogManager

NODE = CoordinatorNode(3, "127.0.0.1", 19092)
SUBSCRIPTION = b"\x00\x00\x00\x00\x00\x01\x00\x06orders\xff\xff\xff\xff"


class Api:
    """Calls handlers the way the server does, and checks each response encodes."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.handlers: dict[int, ApiHandler] = {
            h.api_key: h for h in group_api_handlers(coordinator)
        }

    async def call(self, api_key: int, version: int, **values: Any) -> Any:
        handler = self.handlers[api_key]
        assert handler.min_version <= version <= handler.max_version
        request = build(load_request_schema(api_key, version), **values)
        ctx = RequestContext(api_key, version, 1, "test-client", Session("PLAINTEXT", "10.0.0.7"))
        response = await handler.handle(request, ctx)
        return roundtrip(response)


def build(cls: type[Any], **values: Any) -> Any:
    names = cls.__dataclass_fields__
    return cls(**{k: v for k, v in values.items() if k in names})


def nested(api_key: int, version: int, class_name: str, /, **values: Any) -> Any:
    module = sys.modules[load_request_schema(api_key, version).__module__]
    return build(getattr(module, class_name), **values)


def roundtrip(response: Any) -> Any:
    buffer = io.BytesIO()
    entity_writer(type(response))(buffer, response)
    data = buffer.getvalue()
    decoded, size = entity_reader(type(response))(data, 0)
    assert size == len(data)
    assert decoded == response
    return decoded


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    logs = LogManager(tmp_path / "data")
    coordinator = GroupCoordinator(logs, NODE, GroupConfig(offsets_topic_partitions=2))
    await coordinator.start()
    yield Api(coordinator)
    await coordinator.stop()
    logs.close()


def versions(api_key: int) -> list[int]:
    low, high = SUPPORTED_VERSIONS[api_key]
    return list(range(low, high + 1))


@pytest.mark.parametrize("version", versions(FIND_COORDINATOR))
async def test_find_coordinator(api: Api, version: int) -> None:
    if version >= 4:
        response = await api.call(
            FIND_COORDINATOR, version, key_type=0, coordinator_keys=("a", "b")
        )
        assert [(c.key, c.node_id, c.host, c.port, c.error_code) for c in response.coordinators] \
            == [("a", 3, "127.0.0.1", 19092, ErrorCode.none),
                ("b", 3, "127.0.0.1", 19092, ErrorCode.none)]
        return
    response = await api.call(FIND_COORDINATOR, version, key="g", key_type=0)
    assert (response.error_code, response.node_id, response.host, response.port) == (
        ErrorCode.none, 3, "127.0.0.1", 19092
    )


@pytest.mark.parametrize("version", versions(JOIN_GROUP))
async def test_join_sync_heartbeat_leave(api: Api, version: int) -> None:
    group = f"join-v{version}"
    sync_v, heartbeat_v, leave_v = min(version, 5), min(version, 4), min(version, 4)
    protocols = (nested(JOIN_GROUP, version, "JoinGroupRequestProtocol", name="range",
                        metadata=SUBSCRIPTION),)
    join_args = {
        "group_id": group, "session_timeout": 10_000, "rebalance_timeout": 10_000,
        "protocol_type": "consumer", "protocols": protocols,
    }
    joined = await api.call(JOIN_GROUP, version, member_id="", **join_args)
    if version >= 4:
        assert joined.error_code == ErrorCode.member_id_required
        assert joined.member_id.startswith("test-client-")
        joined = await api.call(JOIN_GROUP, version, member_id=joined.member_id, **join_args)
    assert joined.error_code == ErrorCode.none
    member = joined.member_id
    assert (joined.generation_id, joined.leader, joined.protocol_name) == (1, member, "range")
    assert [(m.member_id, m.metadata) for m in joined.members] == [(member, SUBSCRIPTION)]

    assignment = nested(SYNC_GROUP, sync_v, "SyncGroupRequestAssignment",
                        member_id=member, assignment=b"ASSIGNED")
    synced = await api.call(
        SYNC_GROUP, sync_v, group_id=group, generation_id=1, member_id=member,
        protocol_type="consumer", protocol_name="range", assignments=(assignment,),
    )
    assert (synced.error_code, synced.assignment) == (ErrorCode.none, b"ASSIGNED")

    beat = await api.call(HEARTBEAT, heartbeat_v, group_id=group, generation_id=1,
                          member_id=member)
    assert beat.error_code == ErrorCode.none
    stale = await api.call(HEARTBEAT, heartbeat_v, group_id=group, generation_id=0,
                           member_id=member)
    assert stale.error_code == ErrorCode.illegal_generation

    described = await api.call(DESCRIBE_GROUPS, min(version, 5), groups=(group,),
                               include_authorized_operations=False)
    (description,) = described.groups
    assert (description.group_state, description.protocol_data) == ("Stable", "range")
    (described_member,) = description.members
    assert (described_member.member_id, described_member.client_id,
            described_member.client_host, described_member.member_assignment) == (
        member, "test-client", "/10.0.0.7", b"ASSIGNED"  # Java's InetAddress.toString()
    )

    if leave_v >= 3:
        identity = nested(LEAVE_GROUP, leave_v, "MemberIdentity", member_id=member,
                          group_instance_id=None)
        ghost = nested(LEAVE_GROUP, leave_v, "MemberIdentity", member_id="ghost",
                       group_instance_id=None)
        left = await api.call(LEAVE_GROUP, leave_v, group_id=group, members=(identity, ghost))
        assert [(m.member_id, m.error_code) for m in left.members] == [
            (member, ErrorCode.none), ("ghost", ErrorCode.unknown_member_id)
        ]
    else:
        left = await api.call(LEAVE_GROUP, leave_v, group_id=group, member_id=member)
        assert left.error_code == ErrorCode.none
    listed = await api.call(LIST_GROUPS, 4, states_filter=("Empty",))
    assert group in {g.group_id for g in listed.groups}


@pytest.mark.parametrize("commit_version", versions(OFFSET_COMMIT))
async def test_offset_commit_then_fetch_at_every_version(api: Api, commit_version: int) -> None:
    group = f"offsets-v{commit_version}"
    partition = nested(OFFSET_COMMIT, commit_version, "OffsetCommitRequestPartition",
                       partition_index=1, committed_offset=42, committed_leader_epoch=7,
                       committed_metadata="meta")
    topic = nested(OFFSET_COMMIT, commit_version, "OffsetCommitRequestTopic", name="orders",
                   partitions=(partition,))
    committed = await api.call(
        OFFSET_COMMIT, commit_version, group_id=group, generation_id_or_member_epoch=-1,
        member_id="", retention_time=-1, topics=(topic,),
    )
    assert [(p.partition_index, p.error_code) for t in committed.topics for p in t.partitions] \
        == [(1, ErrorCode.none)]
    expected_epoch = 7 if commit_version >= 6 else -1
    for fetch_version in versions(OFFSET_FETCH):
        if fetch_version >= 8:
            wanted = nested(OFFSET_FETCH, fetch_version, "OffsetFetchRequestTopics",
                            name="orders", partition_indexes=(1, 2))
            group_request = nested(OFFSET_FETCH, fetch_version, "OffsetFetchRequestGroup",
                                   group_id=group, topics=(wanted,))
            fetched = await api.call(OFFSET_FETCH, fetch_version, groups=(group_request,),
                                     require_stable=False)
            (group_response,) = fetched.groups
            assert group_response.error_code == ErrorCode.none
            topics = group_response.topics
        else:
            wanted = nested(OFFSET_FETCH, fetch_version, "OffsetFetchRequestTopic",
                            name="orders", partition_indexes=(1, 2))
            fetched = await api.call(OFFSET_FETCH, fetch_version, group_id=group,
                                     topics=(wanted,), require_stable=False)
            topics = fetched.topics
        rows = [
            (p.partition_index, p.committed_offset, getattr(p, "committed_leader_epoch", -1),
             p.metadata, p.error_code)
            for t in topics for p in t.partitions
        ]
        epoch = expected_epoch if fetch_version >= 5 else -1
        assert rows == [(1, 42, epoch, "meta", ErrorCode.none), (2, -1, -1, "", ErrorCode.none)]


async def test_offset_fetch_all_topics_and_not_coordinator(api: Api) -> None:
    partition = nested(OFFSET_COMMIT, 8, "OffsetCommitRequestPartition", partition_index=0,
                       committed_offset=5, committed_leader_epoch=-1, committed_metadata=None)
    for name in ("b-topic", "a-topic"):
        topic = nested(OFFSET_COMMIT, 8, "OffsetCommitRequestTopic", name=name,
                       partitions=(partition,))
        await api.call(OFFSET_COMMIT, 8, group_id="all", generation_id_or_member_epoch=-1,
                       member_id="", topics=(topic,))
    fetched = await api.call(OFFSET_FETCH, 7, group_id="all", topics=None, require_stable=True)
    assert [(t.name, [p.committed_offset for p in t.partitions]) for t in fetched.topics] == [
        ("a-topic", [5]), ("b-topic", [5])
    ]


async def test_delete_groups_and_offsets(api: Api) -> None:
    protocols = (nested(JOIN_GROUP, 3, "JoinGroupRequestProtocol", name="range",
                        metadata=SUBSCRIPTION),)
    joined = await api.call(JOIN_GROUP, 3, group_id="live", session_timeout=10_000,
                            rebalance_timeout=10_000, member_id="", protocol_type="consumer",
                            protocols=protocols)
    assert joined.error_code == ErrorCode.none
    synced = await api.call(SYNC_GROUP, 2, group_id="live", generation_id=joined.generation_id,
                            member_id=joined.member_id, assignments=())
    assert synced.error_code == ErrorCode.none
    for topic_name in ("orders", "audit"):
        partition = nested(OFFSET_COMMIT, 2, "OffsetCommitRequestPartition",
                           partition_index=0, committed_offset=1, committed_metadata="")
        topic = nested(OFFSET_COMMIT, 2, "OffsetCommitRequestTopic", name=topic_name,
                       partitions=(partition,))
        for group in ("live", "idle"):
            generation = joined.generation_id if group == "live" else -1
            member = joined.member_id if group == "live" else ""
            response = await api.call(
                OFFSET_COMMIT, 2, group_id=group, generation_id_or_member_epoch=generation,
                member_id=member, retention_time=-1, topics=(topic,),
            )
            assert response.topics[0].partitions[0].error_code == ErrorCode.none

    def delete_request(*names: str) -> tuple[Any, ...]:
        return tuple(
            nested(OFFSET_DELETE, 0, "OffsetDeleteRequestTopic", name=name,
                   partitions=(nested(OFFSET_DELETE, 0, "OffsetDeleteRequestPartition",
                                      partition_index=0),))
            for name in names
        )

    deleted = await api.call(OFFSET_DELETE, 0, group_id="live",
                             topics=delete_request("orders", "audit"))
    assert deleted.error_code == ErrorCode.none
    assert [(t.name, t.partitions[0].error_code) for t in deleted.topics] == [
        ("orders", ErrorCode.group_subscribed_to_topic), ("audit", ErrorCode.none)
    ]
    missing = await api.call(OFFSET_DELETE, 0, group_id="nope", topics=delete_request("x"))
    assert missing.error_code == ErrorCode.group_id_not_found

    for version in versions(DELETE_GROUPS):
        result = await api.call(DELETE_GROUPS, version, groups_names=("live", "nope"))
        assert [(r.group_id, r.error_code) for r in result.results] == [
            ("live", ErrorCode.non_empty_group), ("nope", ErrorCode.group_id_not_found)
        ]
    result = await api.call(DELETE_GROUPS, 2, groups_names=("idle",))
    assert result.results[0].error_code == ErrorCode.none
    for version in versions(LIST_GROUPS):
        listed = await api.call(LIST_GROUPS, version, states_filter=())
        assert {g.group_id for g in listed.groups} == {"live"}
    for version in versions(DESCRIBE_GROUPS):
        described = await api.call(DESCRIBE_GROUPS, version, groups=("idle",),
                                   include_authorized_operations=False)
        assert (described.groups[0].error_code, described.groups[0].group_state) == (
            ErrorCode.none, "Dead"
        )
