"""Metadata at scale against a real broker: a Metadata request auto-creating thousands of topics
does not stall other clients, partition limits refuse huge requests before any directory is
made, and disk errors reach clients as clear errors."""

from __future__ import annotations

import asyncio
import datetime
import errno
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode

from headrace.core.responses import build
from headrace.core.topics import TopicSpec
from headrace.protocol.codec import encode_body
from headrace.server.handlers.metadata import SLICE, encoded_in_slices
from headrace.storage.topic_store import TopicStore
from tests.server.wire import WireClient
from tests.support.brokers import BrokerProcess, InProcessBroker, in_process_broker

#: A generous bound on the whole request: a timeout, not a performance figure (see bench/).
REQUEST_TIMEOUT = 120


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[InProcessBroker]:
    """A broker with the default limits (10 000 partitions per topic, 100 000 per broker)."""
    async with in_process_broker(tmp_path / "data", http=True, offsets_topic_partitions=1
                                 ) as running:
        yield running


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[InProcessBroker]:
    """A broker allowed 30 partitions, at most 20 per topic."""
    async with in_process_broker(
        tmp_path / "data", offsets_topic_partitions=1, max_broker_partitions=30,
        max_topic_partitions=20,
    ) as running:
        yield running


def _partition_dirs(data: Path) -> set[str]:
    return {p.name for p in data.iterdir() if p.is_dir()}


async def test_auto_creating_3000_topics_in_one_metadata_request_does_not_stall_others(
    start_broker: Callable[..., BrokerProcess],
) -> None:
    # A broker process of its own: in this process the clients' decoding (3000 topics) would
    # hold the GIL and be counted against the broker's event loop.
    broker = start_broker("--offsets-topic-partitions", "1")
    module = sys.modules[load_request_schema(3, 12).__module__]
    names = [f"auto-{i:04d}" for i in range(3000)]
    answered = asyncio.Event()

    async def ask(*topics: str) -> Any:
        asker = await WireClient.connect(broker.kafka_port)
        try:
            return await asker.request(
                3, 12, REQUEST_TIMEOUT,
                topics=tuple(module.MetadataRequestTopic(topic_id=None, name=n) for n in topics)
                if topics else None,
                allow_auto_topic_creation=bool(topics), include_topic_authorized_operations=False,
            )
        finally:
            await asker.close()

    async def probe() -> float:
        prober = await WireClient.connect(broker.kafka_port)
        slowest = 0.0
        while not answered.is_set():
            began = time.monotonic()
            await prober.request(18, 3, client_software_name="probe",
                                 client_software_version="1")
            slowest = max(slowest, time.monotonic() - began)
            await asyncio.sleep(0.005)
        await prober.close()
        return slowest

    probing = asyncio.ensure_future(probe())
    try:
        response = await ask(*names)
    finally:
        answered.set()
    slowest = await probing
    codes = [t.error_code for t in response.topics]
    # At most auto_create_topics_per_request (1000) are made per request; the rest are
    # unknown until asked again.
    assert codes.count(ErrorCode.none) == 1000
    assert codes.count(ErrorCode.unknown_topic_or_partition) == 2000
    everything = await ask()
    assert sum(t.name.startswith("auto-") for t in everything.topics) == 1000
    assert slowest < 1.0, f"an ApiVersions round trip took {slowest:.2f} s"


async def test_a_million_partitions_are_refused_at_once(
    started: InProcessBroker, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    before = _partition_dirs(data)
    admin = AdminClient({"bootstrap.servers": started.bootstrap})
    began = time.monotonic()
    # librdkafka itself refuses more than 100 000; a raw request asks for a million below.
    futures = admin.create_topics([NewTopic("huge", 100_000, 1), NewTopic("fine", 2, 1)])
    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(futures["huge"].result, 30)
    elapsed = time.monotonic() - began
    await asyncio.to_thread(futures["fine"].result, 30)
    error = refused.value.args[0]
    assert error.name() == "INVALID_PARTITIONS"
    assert "max.topic.partitions" in error.str()
    assert elapsed < 10  # refused before anything is made (a timeout, not a measure)
    module = sys.modules[load_request_schema(19, 7).__module__]
    client = await WireClient.connect(started.app.broker.kafka_port)
    answer = await client.request(19, 7, timeout=datetime.timedelta(seconds=5),
                                  validate_only=False, topics=(module.CreatableTopic(
                                      name="huge", num_partitions=1_000_000,
                                      replication_factor=1, assignments=(), configs=()),))
    await client.close()
    assert answer.topics[0].error_code == ErrorCode.invalid_partitions
    assert _partition_dirs(data) - before == {"fine-0", "fine-1"}
    async with aiohttp.ClientSession() as session:
        url = (f"http://127.0.0.1:{started.http_port}/v3/clusters/"
               f"{started.app.broker.cluster_id}/topics")
        for count, message in ((1_000_000, "max.topic.partitions"), (0, "partitions"),
                               (-5, "partitions")):
            async with session.post(url, json={"topic_name": "huge",
                                               "partitions_count": count}) as answer:
                assert answer.status == 400
                assert message in (await answer.json())["message"]
        async with session.post(url, json={"topic_name": "rf", "partitions_count": 1,
                                           "replication_factor": 3}) as answer:
            assert answer.status == 400
            assert "replication factor" in (await answer.json())["message"]
    assert _partition_dirs(data) - before == {"fine-0", "fine-1"}


async def test_the_broker_partition_limit_is_a_policy_violation(small: InProcessBroker) -> None:
    admin = AdminClient({"bootstrap.servers": small.bootstrap})
    held = small.app.broker.logs.partition_count()  # __consumer_offsets, once the group starts
    futures = admin.create_topics([NewTopic("most", 20, 1), NewTopic("fits", 30 - held - 20, 1),
                                   NewTopic("over", 1, 1)])
    await asyncio.to_thread(futures["most"].result, 30)
    await asyncio.to_thread(futures["fits"].result, 30)
    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(futures["over"].result, 30)
    assert refused.value.args[0].name() == "POLICY_VIOLATION"
    assert "max.broker.partitions (30)" in refused.value.args[0].str()
    grow = admin.create_partitions([NewPartitions("fits", 30 - held - 19)])["fits"]
    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(grow.result, 30)
    assert refused.value.args[0].name() == "POLICY_VIOLATION"
    too_big = admin.create_topics([NewTopic("wide", 21, 1)])["wide"]
    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(too_big.result, 30)
    assert refused.value.args[0].name() == "INVALID_PARTITIONS"
    assert small.app.broker.logs.partition_count() == 30


async def test_disk_errors_reach_clients_as_clear_errors(
    started: InProcessBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    broker = started.app.broker
    broker.create_topic(TopicSpec("kept", 1))
    admin = AdminClient({"bootstrap.servers": started.bootstrap})
    url = f"http://127.0.0.1:{started.http_port}/v3/clusters/{broker.cluster_id}/topics"
    monkeypatch.setattr(TopicStore, "write", staticmethod(full))
    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(admin.create_topics([NewTopic("new", 1, 1)])["new"].result, 30)
    assert refused.value.args[0].name() == "KAFKA_STORAGE_ERROR"
    assert "No space left" in refused.value.args[0].str()
    with pytest.raises(KafkaException) as refused:
        await asyncio.to_thread(admin.delete_topics(["kept"])["kept"].result, 30)
    assert refused.value.args[0].name() == "KAFKA_STORAGE_ERROR"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"topic_name": "new"}) as answer:
            assert answer.status == 503
            assert "No space left" in (await answer.json())["message"]
        async with session.delete(f"{url}/kept") as answer:
            assert answer.status == 503
    monkeypatch.undo()
    assert broker.topics.get("kept") is not None and broker.topics.get("new") is None
    await asyncio.to_thread(admin.delete_topics(["kept"])["kept"].result, 30)
    assert broker.topics.get("kept") is None


@pytest.mark.parametrize("version", range(13))
def test_a_metadata_answer_encoded_in_slices_is_the_whole_encoding(version: int) -> None:
    module = sys.modules[load_response_schema(3, version).__module__]
    topics = tuple(
        build(module.MetadataResponseTopic, error_code=ErrorCode.none, name=f"t{i}",
              topic_id=uuid.uuid4(), is_internal=False, partitions=tuple(
                  build(module.MetadataResponsePartition, error_code=ErrorCode.none,
                        partition_index=p, leader_id=1, leader_epoch=0, replica_nodes=(1,),
                        isr_nodes=(1,), offline_replicas=()) for p in range(i % 3)))
        for i in range(2 * SLICE + 1))
    brokers = (build(module.MetadataResponseBroker, node_id=1, host="h", port=9092, rack="r"),)
    for count in (0, 1, SLICE, len(topics)):
        response = build(load_response_schema(3, version), brokers=brokers, cluster_id="c",
                         controller_id=1, topics=topics[:count])
        parts = list(encoded_in_slices(response))
        assert b"".join(parts) == encode_body(response)
        assert len(parts) == 2 + -(-count // SLICE)
