"""Group commit of HTTP produce: appends ready in one turn of the loop share one log append."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.topics import TopicSpec
from headrace.record import build_batch, iter_records
from headrace.storage import AppendResult
from headrace.web.group_commit import Appended, GroupCommit, group_offsets
from tests.support.brokers import RunningBroker, in_process_broker
from tests.support.clients import consume_all

TOPIC = "grouped"


def test_each_batch_of_a_shared_append_starts_after_the_ones_before() -> None:
    result = AppendResult(base_offset=40, last_offset=49, log_append_time_ms=-1,
                          log_start_offset=0)
    assert group_offsets(result, [3, 1, 6]) == [Appended(40, -1), Appended(43, -1),
                                                Appended(44, -1)]


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    async with in_process_broker(tmp_path) as running:
        running.broker.topics.create(TopicSpec(TOPIC, 2, configs={"max.message.bytes": "2000"}))
        yield running.broker


class CountedProduce:
    """The broker's own produce, counting its calls."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.calls = 0

    async def __call__(self, topic: str, partition: int, batches: bytes) -> AppendResult:
        self.calls += 1
        return await self.broker.produce(topic, partition, batches, acks=-1)


def batch_of(*values: bytes) -> bytes:
    return build_batch([(1_700_000_000_000, None, value, []) for value in values])


def logged(broker: Broker, partition: int) -> dict[int, bytes | None]:
    read = broker.read(TOPIC, partition, 0, 1 << 20)
    try:
        return {record.offset: record.value for record in iter_records(read.to_bytes())}
    finally:
        read.close()


async def test_appends_ready_together_are_one_log_append(broker: Broker) -> None:
    produce = CountedProduce(broker)
    group_commit = GroupCommit(produce)
    batches = [batch_of(b"a1", b"a2"), batch_of(b"b1"), batch_of(b"c1", b"c2", b"c3")]
    placed = await asyncio.gather(*(group_commit.submit(TOPIC, 0, batch, count) for batch, count
                                    in zip(batches, [2, 1, 3], strict=True)))
    other = await group_commit.submit(TOPIC, 1, batch_of(b"alone"), 1)  # a later turn
    assert produce.calls == 2
    assert [p.base_offset for p in placed] == [0, 2, 3]
    assert other.base_offset == 0
    assert logged(broker, 0) == {0: b"a1", 1: b"a2", 2: b"b1", 3: b"c1", 4: b"c2", 5: b"c3"}


async def test_a_refused_batch_fails_only_its_own_append(broker: Broker) -> None:
    group_commit = GroupCommit(CountedProduce(broker))
    too_large = batch_of(b"x" * 3000)  # over the topic's max.message.bytes
    outcomes = await asyncio.gather(
        group_commit.submit(TOPIC, 0, batch_of(b"first"), 1),
        group_commit.submit(TOPIC, 0, too_large, 1),
        group_commit.submit(TOPIC, 0, batch_of(b"third"), 1),
        return_exceptions=True)
    assert outcomes[0] == Appended(0, -1) and outcomes[2] == Appended(1, -1)
    assert isinstance(outcomes[1], KafkaError)
    assert outcomes[1].code.name == "message_too_large"
    assert logged(broker, 0) == {0: b"first", 1: b"third"}


async def test_a_failure_after_the_write_is_every_batchs_answer_and_nothing_is_rewritten(
        broker: Broker) -> None:
    # As when replication times out after the leader wrote (acks=all): retrying each batch
    # alone would write them twice.
    async def written_then_timed_out(topic: str, partition: int, batches: bytes
                                     ) -> AppendResult:
        await broker.produce(topic, partition, batches, acks=-1)
        raise KafkaError(ErrorCode.request_timed_out, "followers did not replicate in time")

    group_commit = GroupCommit(written_then_timed_out)
    outcomes = await asyncio.gather(
        group_commit.submit(TOPIC, 0, batch_of(b"one"), 1),
        group_commit.submit(TOPIC, 0, batch_of(b"two"), 1),
        return_exceptions=True)
    assert all(isinstance(o, KafkaError) and o.code == ErrorCode.request_timed_out
               for o in outcomes), outcomes
    assert logged(broker, 0) == {0: b"one", 1: b"two"}


async def test_a_cancelled_append_is_not_written(broker: Broker) -> None:
    group_commit = GroupCommit(CountedProduce(broker))
    kept = group_commit.submit(TOPIC, 0, batch_of(b"kept"), 1)
    dropped = group_commit.submit(TOPIC, 0, batch_of(b"dropped"), 1)
    dropped.cancel()  # its request went away before the turn ended
    assert await kept == Appended(0, -1)
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert logged(broker, 0) == {0: b"kept"}


async def test_concurrent_http_requests_each_get_their_own_offsets(
        running: RunningBroker) -> None:
    await running.create_topic(TOPIC)
    url = f"{running.cluster_url}/topics/{TOPIC}/records"

    async def post(client: int) -> list[dict[str, Any]]:
        body = "\n".join(json.dumps({"partition_id": 0, "value": {
            "type": "STRING", "data": f"{client}-{n}"}}) for n in range(client + 1))
        async with running.session.post(url, data=body.encode()) as response:
            assert response.status == 200, await response.text()
            if client == 0:  # one object: one JSON answer
                return [await response.json()]
            return [json.loads(line) for line in (await response.text()).splitlines()]

    answers = await asyncio.gather(*(post(client) for client in range(8)))
    by_offset = {answer["offset"]: f"{client}-{n}" for client, lines in enumerate(answers)
                 for n, answer in enumerate(lines)}
    assert sorted(by_offset) == list(range(36))  # 1 + 2 + ... + 8 records, no offset twice
    messages = await asyncio.to_thread(consume_all, running.bootstrap, TOPIC, 1, 36)
    assert {m.offset(): m.value().decode() for m in messages} == by_offset
