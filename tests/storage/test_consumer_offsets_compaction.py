"""Compaction applied where it matters most: ``__consumer_offsets`` stays bounded however often
a group commits, and a restarted coordinator still restores the latest offsets; and, through a
real broker and librdkafka, a compacted topic is cleaned by the broker's periodic loop and
consumed from the beginning across the gaps."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition
from kio.schema.errors import ErrorCode

from headrace.core.topics import TopicSpec
from headrace.groups import (
    OFFSETS_TOPIC,
    CoordinatorNode,
    GroupConfig,
    GroupCoordinator,
    OffsetCommit,
)
from headrace.storage import LogManager
from tests.support.brokers import in_process_broker
from tests.support.clients import confluent_consumer, confluent_producer
from tests.support.waiting import eventually, eventually_async

NODE = CoordinatorNode(1, "127.0.0.1", 9092)
GROUPS = GroupConfig(offsets_topic_partitions=1)
COMMITS = 400


async def _start(data_dir: Path) -> tuple[LogManager, GroupCoordinator]:
    logs = LogManager(data_dir)
    if OFFSETS_TOPIC not in logs.topics():  # as the coordinator creates it, with small segments
        logs.create_topic(
            OFFSETS_TOPIC, 1, {"cleanup.policy": "compact", "segment.bytes": "2048"}
        )
    coordinator = GroupCoordinator(logs, NODE, GROUPS)
    await coordinator.start()
    return logs, coordinator


async def test_consumer_offsets_stay_bounded_and_restore_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    logs, coordinator = await _start(data_dir)
    offsets_log = logs.get_partition(OFFSETS_TOPIC, 0)
    for i in range(COMMITS):
        commits = [OffsetCommit("orders", p, i * 10 + p, 3, f"m{i}") for p in range(3)]
        result = await coordinator.commit_offsets("app", -1, "", None, commits)
        assert set(result.values()) == {ErrorCode.none}
    await coordinator.commit_offsets("gone", -1, "", None, [OffsetCommit("t", 0, 1, -1, "")])
    assert (await coordinator.delete_groups(["gone"]))["gone"] is ErrorCode.none
    size_before = offsets_log.size_bytes

    tasks = logs.clean(now_ms=time.time_ns() // 1_000_000 + 1)

    assert len(tasks) == 1 and tasks[0].error is None
    # Only the latest commit per partition (plus one empty batch per segment) is left.
    assert offsets_log.size_bytes < size_before / 10
    first_pass_end = offsets_log.cleaner_checkpoint.first_dirty
    first_pass_segments = [s for s in offsets_log.segments if s.base_offset < first_pass_end]
    # More commits and another pass: the log stays about as small, it does not grow back.
    for i in range(COMMITS, 2 * COMMITS):
        commits = [OffsetCommit("orders", p, i * 10 + p, 3, f"m{i}") for p in range(3)]
        await coordinator.commit_offsets("app", -1, "", None, commits)
    logs.clean(now_ms=time.time_ns() // 1_000_000 + 1)
    assert offsets_log.size_bytes < size_before / 5
    # The segments the first pass left small were merged by the second.
    merged = [s for s in offsets_log.segments if s.base_offset < first_pass_end]
    assert len(merged) < len(first_pass_segments) / 10

    await coordinator.stop()
    logs.close()
    logs, coordinator = await _start(data_dir)
    try:
        error, restored = coordinator.fetch_offsets("app", None)
        assert error is ErrorCode.none
        last = 2 * COMMITS - 1
        assert {tp: (c.offset, c.metadata) for tp, c in restored.items() if c} == {
            ("orders", p): (last * 10 + p, f"m{last}") for p in range(3)
        }
        assert coordinator.committed_offsets("gone") == {}
    finally:
        await coordinator.stop()
        logs.close()


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = confluent_producer(bootstrap, {"linger.ms": 0, "acks": "all"})
    try:
        for i in range(count):
            producer.produce(topic, key=b"key-%d" % (i % 4), value=b"value-%d" % i)
            producer.flush(10)  # one batch per record: many small batches to compact
    finally:
        producer.flush(10)


def _consume_all(bootstrap: str, topic: str, end: int) -> list[Any]:
    consumer = confluent_consumer(bootstrap, {"enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list[Any] = []
    position = 0

    def read_to_end() -> bool:
        nonlocal position
        message = consumer.poll(0.2)
        if message is None:  # past a gap compaction left, the position still moves on
            position = max(position, consumer.position([TopicPartition(topic, 0)])[0].offset)
        else:
            assert message.error() is None, message.error()
            messages.append(message)
            position = message.offset() + 1
        return position >= end

    try:
        eventually(read_to_end, timeout=20, interval=0,
                   message=lambda: f"the consumer at {end} (stuck at {position})")
    finally:
        consumer.close()
    return messages


def _commit_many(bootstrap: str, group: str, count: int) -> None:
    consumer = confluent_consumer(bootstrap, {"group.id": group, "enable.auto.commit": False})
    try:
        for i in range(count):
            consumer.commit(offsets=[TopicPartition("table", 0, i + 1)], asynchronous=False)
    finally:
        consumer.close()


def _committed(bootstrap: str, group: str) -> int:
    consumer = confluent_consumer(bootstrap, {"group.id": group})
    try:
        return int(consumer.committed([TopicPartition("table", 0)], timeout=10)[0].offset)
    finally:
        consumer.close()


async def test_the_broker_compacts_in_its_loop_and_clients_read_across_gaps(
    tmp_path: Path,
) -> None:
    config: dict[str, Any] = {"retention_check_seconds": 0.1,
                              "topic_defaults": {"segment.bytes": "1024"}}
    running = await in_process_broker(tmp_path / "data", **config).start()
    broker = running.broker
    try:
        bootstrap = running.bootstrap
        broker.create_topic(TopicSpec("table", 1, configs={"cleanup.policy": "compact"}))
        assert broker.logs is not None
        table = broker.logs.get_partition("table", 0)
        await asyncio.to_thread(_produce, bootstrap, "table", 120)
        await eventually_async(lambda: table.log_end_offset == 120, timeout=20,
                               message="all records written")
        table.roll()  # so every record is in a cleanable segment
        full = table.size_bytes
        await eventually_async(lambda: table.size_bytes < full / 4, timeout=20,
                               message="the loop to compact the topic")
        messages = await asyncio.to_thread(_consume_all, bootstrap, "table", 120)
        latest = {m.key(): (m.offset(), m.value()) for m in messages}
        assert latest == {b"key-%d" % k: (116 + k, b"value-%d" % (116 + k)) for k in range(4)}

        await asyncio.to_thread(_commit_many, bootstrap, "app", 300)
        offsets_log = broker.logs.get_partition(OFFSETS_TOPIC, 0)
        grown = offsets_log.size_bytes
        offsets_log.roll()
        await eventually_async(lambda: offsets_log.size_bytes < grown / 4, timeout=20,
                               message="__consumer_offsets to shrink")
    finally:
        await running.stop()
    async with in_process_broker(tmp_path / "data", **config) as restarted:
        assert await asyncio.to_thread(_committed, restarted.bootstrap, "app") == 300
