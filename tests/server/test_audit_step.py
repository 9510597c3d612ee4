"""The pipeline's audit step tells an admin's offset change from a consumer's own commit."""

from __future__ import annotations

import datetime

from kio.schema.errors import ErrorCode
from kio.schema.offset_commit.v9 import request as commit_request
from kio.schema.offset_commit.v9 import response as commit_response
from kio.schema.types import GroupId, TopicName
from kio.static.primitive import i32, i32Timedelta, i64

from headrace.server.audit import ADMIN_APIS

OFFSET_COMMIT = 8


def _commit(generation: int, member: str) -> commit_request.OffsetCommitRequest:
    partition = commit_request.OffsetCommitRequestPartition(
        partition_index=i32(0), committed_offset=i64(7), committed_leader_epoch=i32(-1),
        committed_metadata=None)
    return commit_request.OffsetCommitRequest(
        group_id=GroupId("g"), generation_id_or_member_epoch=i32(generation), member_id=member,
        group_instance_id=None,
        topics=(commit_request.OffsetCommitRequestTopic(name=TopicName("t"),
                                                         partitions=(partition,)),))


_ANSWERED = commit_response.OffsetCommitResponsePartition(
    partition_index=i32(0), error_code=ErrorCode.none)
RESPONSE = commit_response.OffsetCommitResponse(
    throttle_time=i32Timedelta.parse(datetime.timedelta()),
    topics=(commit_response.OffsetCommitResponseTopic(name=TopicName("t"),
                                                       partitions=(_ANSWERED,)),),
)


def test_a_commit_outside_any_generation_is_an_admin_offset_change() -> None:
    [entry] = ADMIN_APIS[OFFSET_COMMIT](_commit(-1, ""), RESPONSE)
    assert entry == ("offset.alter", "group:g topic:t partition:0", 0, {"offset": 7})


def test_a_members_own_commit_is_consumer_traffic() -> None:
    assert list(ADMIN_APIS[OFFSET_COMMIT](_commit(5, "member-1"), RESPONSE)) == []
