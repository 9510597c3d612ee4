"""DescribeTopicPartitions (KIP-966) pages: at most ``response_partition_limit`` partitions an
answer, a ``next_cursor`` to go on from, topics by name, every topic when none is named."""

from __future__ import annotations

from typing import Any

from headrace.app import BrokerApp
from headrace.core.broker import Broker
from headrace.core.responses import build
from headrace.core.topics import TopicSpec
from tests.server.test_wire import request_module
from tests.server.wire import WireClient

KEY = 75


async def _describe(client: WireClient, *names: str, limit: int,
                    cursor: tuple[str, int] | None = None) -> Any:
    m = request_module(KEY, 0)
    return await client.request(
        KEY, 0, topics=tuple(build(m.TopicRequest, name=name) for name in names),
        response_partition_limit=limit,
        cursor=None if cursor is None else build(
            m.Cursor, topic_name=cursor[0], partition_index=cursor[1]),
    )


def _pages(response: Any) -> list[tuple[str, list[int]]]:
    return [(t.name, [p.partition_index for p in t.partitions]) for t in response.topics]


async def test_pages_follow_the_cursor_across_topics(app: BrokerApp, broker: Broker) -> None:
    broker.create_topic(TopicSpec("dtp-b", 3))
    broker.create_topic(TopicSpec("dtp-a", 2))
    client = await WireClient.connect(broker.kafka_port)
    try:
        first = await _describe(client, "dtp-b", "dtp-a", limit=3)
        assert _pages(first) == [("dtp-a", [0, 1]), ("dtp-b", [0])]  # sorted by name
        cursor = first.next_cursor
        assert (cursor.topic_name, cursor.partition_index) == ("dtp-b", 1)
        second = await _describe(client, "dtp-b", "dtp-a", limit=3, cursor=("dtp-b", 1))
        assert _pages(second) == [("dtp-b", [1, 2])]
        assert second.next_cursor is None
        (partition, *_) = second.topics[0].partitions
        assert partition.eligible_leader_replicas == partition.last_known_elr == ()
        assert partition.leader_id == broker.config.node_id
        everything = await _describe(client, limit=2000)
        names = [name for name, _ in _pages(everything)]
        assert names == sorted(names) and {"dtp-a", "dtp-b"} <= set(names)
    finally:
        await client.close()
