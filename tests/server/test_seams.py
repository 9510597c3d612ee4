"""The Broker's seams: layers supplied through ``attach`` drive the one Fetch and InitProducerId
handler over a real socket (a stand-in for the cluster layer, no etcd needed)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.replica import FetchBounds, ReplicaManager
from headrace.core.requests import NullObserver
from headrace.core.topics import TopicSpec
from tests.server.test_wire import fetch_fields, produce
from tests.server.wire import WireClient, build_batch
from tests.support.brokers import in_process_broker

FOLLOWER = 5


class CommittedBelowLogEnd(ReplicaManager):
    """A leader whose followers have not fetched the newest batch: the high watermark stays one
    record behind the log end; broker FOLLOWER's fetches are replication, not consumption."""

    def is_replica_fetch(self, replica_id: int) -> bool:
        return replica_id == FOLLOWER

    def fetch_bounds(
        self, topic: str, partition: int, fetch_offset: int, current_leader_epoch: int,
        replica_id: int,
    ) -> FetchBounds:
        if current_leader_epoch > 7:
            raise KafkaError(ErrorCode.unknown_leader_epoch, "epoch from the future")
        log = self.log(topic, partition)
        end = log.log_end_offset
        high_watermark = max(log.log_start_offset, end - 1)
        readable = end if self.is_replica_fetch(replica_id) else high_watermark
        return FetchBounds(log.log_start_offset, high_watermark, end, readable)


class Exhausted:
    """A producer-id source that cannot give ids now (as the cluster's while etcd is away)."""

    async def allocate(self) -> int:
        raise KafkaError(ErrorCode.coordinator_not_available, "no block reserved")


class FetchCounter(NullObserver):
    def __init__(self) -> None:
        self.fetched: list[tuple[str, int, int]] = []

    def on_fetched(self, topic: str, partition: int, size: int) -> None:
        self.fetched.append((topic, partition, size))


@pytest.fixture
async def seamed(tmp_path: Path) -> AsyncIterator[tuple[Broker, FetchCounter]]:
    observer = FetchCounter()
    running = in_process_broker(tmp_path / "data", observer=observer)
    broker = running.broker
    broker.attach(replicas=CommittedBelowLogEnd(broker.logs, 1), producer_ids=Exhausted())
    broker.add_readiness_check("stand-in", lambda: True)
    async with running:
        yield broker, observer


async def test_attached_replica_manager_decides_what_fetches_see(
    seamed: tuple[Broker, FetchCounter],
) -> None:
    broker, observer = seamed
    broker.create_topic(TopicSpec("held", 1))
    client = await WireClient.connect(broker.kafka_port)
    try:
        first = build_batch([b"committed"])
        await produce(client, "held", first)
        await produce(client, "held", build_batch([b"not yet"]))

        consumer = await client.request(1, 12, **fetch_fields("held", 0, 0))
        data = consumer.responses[0].partitions[0]
        assert (data.error_code, data.high_watermark) == (ErrorCode.none, 1)
        # Only below the high watermark (the broker stamps its leader epoch into the batch).
        assert len(data.records) == len(first) and b"committed" in data.records
        assert observer.fetched == [("held", 0, len(first))]

        # Between the high watermark and the log end: nothing yet, but not out of range.
        waiting = await client.request(1, 12, **fetch_fields("held", 0, 1))
        data = waiting.responses[0].partitions[0]
        assert data.error_code == ErrorCode.none and not data.records
        beyond = await client.request(1, 12, **fetch_fields("held", 0, 3))
        assert beyond.responses[0].partitions[0].error_code == ErrorCode.offset_out_of_range

        replica = await client.request(
            1, 12, **{**fetch_fields("held", 0, 0), "replica_id": FOLLOWER}
        )
        data = replica.responses[0].partitions[0]
        assert data.error_code == ErrorCode.none and b"not yet" in data.records
        assert len(observer.fetched) == 1, "a follower's fetch is not consumption"

        fenced_fields = fetch_fields("held", 0, 0)
        partition = fenced_fields["topics"][0].partitions[0]
        fenced_fields["topics"] = (fenced_fields["topics"][0].__class__(
            topic="held", partitions=(partition.__class__(
                partition=0, fetch_offset=0, partition_max_bytes=1 << 20,
                current_leader_epoch=8),)),)
        fenced = await client.request(1, 12, **fenced_fields)
        assert fenced.responses[0].partitions[0].error_code == ErrorCode.unknown_leader_epoch
    finally:
        await client.close()


async def test_attached_producer_id_source_answers_init_producer_id(
    seamed: tuple[Broker, FetchCounter],
) -> None:
    broker, _ = seamed
    client = await WireClient.connect(broker.kafka_port)
    try:
        response = await client.request(
            22, 4, transactional_id=None, transaction_timeout=datetime.timedelta(minutes=1),
            producer_id=-1, producer_epoch=-1,
        )
    finally:
        await client.close()
    assert response.error_code == ErrorCode.coordinator_not_available
    assert (response.producer_id, response.producer_epoch) == (-1, -1)


async def test_layers_cannot_change_once_started(seamed: tuple[Broker, FetchCounter]) -> None:
    broker, _ = seamed
    assert isinstance(broker.replicas, CommittedBelowLogEnd)
    assert set(broker.readiness_checks) == {"stand-in"}
    with pytest.raises(RuntimeError):
        broker.attach(replicas=ReplicaManager(broker.logs, 1))
    assert isinstance(broker.replicas, CommittedBelowLogEnd)
