"""ConsumerGroupHeartbeat and ConsumerGroupDescribe, every advertised version, over a real
socket to an in-process broker: join, steady heartbeat, describe, leave, and errors."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from headrace.app import BrokerApp
from headrace.core.responses import build
from headrace.core.topics import TopicSpec
from tests.server.test_wire import request_module
from tests.server.wire import WireClient
from tests.support.brokers import in_process_broker

HEARTBEAT, DESCRIBE = 68, 69


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[BrokerApp]:
    async with in_process_broker(tmp_path / "data", offsets_topic_partitions=2) as running:
        yield running.app


def test_both_apis_are_advertised_at_v0_and_v1(app: BrokerApp) -> None:
    supported = {key: (low, high) for key, low, high in app.registry.supported()}
    assert supported[HEARTBEAT] == supported[DESCRIBE] == (0, 1)


@pytest.mark.parametrize("version", [0, 1])
async def test_join_describe_and_leave(app: BrokerApp, version: int) -> None:
    app.broker.create_topic(TopicSpec("orders", 3))
    topic_id = app.broker.metadata.topic("orders").topic_id  # type: ignore[union-attr]
    client = await WireClient.connect(app.broker.kafka_port)
    group = f"wire-{version}"
    member_id = "" if version == 0 else uuid.uuid4().hex  # v0: the coordinator names members
    m = request_module(HEARTBEAT, version)
    joined = await client.request(
        HEARTBEAT, version, group_id=group, member_id=member_id, member_epoch=0,
        instance_id=None, rack_id=None, rebalance_timeout=datetime.timedelta(seconds=30),
        subscribed_topic_names=("orders",), server_assignor=None, topic_partitions=(),
    )
    assert joined.error_code is ErrorCode.none and joined.member_epoch == 1
    assert joined.heartbeat_interval == datetime.timedelta(seconds=5)
    assert [(tp.topic_id, tp.partitions) for tp in joined.assignment.topic_partitions] == [
        (topic_id, (0, 1, 2))
    ]
    member_id = joined.member_id
    steady = await client.request(
        HEARTBEAT, version, group_id=group, member_id=member_id, member_epoch=1,
        instance_id=None, rack_id=None, subscribed_topic_names=None, server_assignor=None,
        topic_partitions=(build(m.TopicPartitions, topic_id=topic_id, partitions=(0, 1, 2)),),
    )
    assert steady.error_code is ErrorCode.none and steady.assignment is None
    fenced = await client.request(
        HEARTBEAT, version, group_id=group, member_id=member_id, member_epoch=9,
        instance_id=None, rack_id=None, subscribed_topic_names=None, server_assignor=None,
        topic_partitions=None,
    )
    assert fenced.error_code is ErrorCode.fenced_member_epoch
    described = await client.request(
        DESCRIBE, version, group_ids=(group, "no-such-group"), include_authorized_operations=False
    )
    found, missing = described.groups
    assert (found.error_code, found.group_state, found.group_epoch) == (
        ErrorCode.none, "Stable", 1
    )
    assert found.assignor_name == "uniform"
    (member,) = found.members
    assert member.member_epoch == 1 and member.subscribed_topic_names == ("orders",)
    assert member.assignment.topic_partitions[0].topic_name == "orders"
    assert missing.error_code is ErrorCode.group_id_not_found
    left = await client.request(
        HEARTBEAT, version, group_id=group, member_id=member_id, member_epoch=-1,
        instance_id=None, rack_id=None, subscribed_topic_names=None, server_assignor=None,
        topic_partitions=None,
    )
    assert left.error_code is ErrorCode.none and left.member_epoch == -1
    await client.close()
