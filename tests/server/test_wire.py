"""The Kafka server over a real socket: framing, bad input, long polls, ordering, idempotence."""

from __future__ import annotations

import asyncio
import datetime
import struct
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from kio.index import load_request_schema
from kio.schema.errors import ErrorCode

from headrace.app import BrokerApp
from headrace.core.broker import Broker
from headrace.core.topics import TopicSpec
from tests.server.wire import WireClient, build_batch
from tests.support.brokers import in_process_broker

ZERO = datetime.timedelta(0)


def request_module(api_key: int, version: int) -> ModuleType:
    return sys.modules[load_request_schema(api_key, version).__module__]


def produce_fields(topic: str, partition: int, records: bytes, acks: int = -1) -> dict[str, Any]:
    module = request_module(0, 9)
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout": datetime.timedelta(seconds=5),
        "topic_data": (
            module.TopicProduceData(
                name=topic,
                partition_data=(module.PartitionProduceData(index=partition, records=records),),
            ),
        ),
    }


def fetch_fields(
    topic: str, partition: int, offset: int, *, max_wait_ms: int = 0, min_bytes: int = 1,
    partition_max_bytes: int = 1 << 20,
) -> dict[str, Any]:
    module = request_module(1, 12)
    return {
        "max_wait": datetime.timedelta(milliseconds=max_wait_ms),
        "min_bytes": min_bytes,
        "topics": (
            module.FetchTopic(
                topic=topic,
                partitions=(
                    module.FetchPartition(
                        partition=partition, fetch_offset=offset,
                        partition_max_bytes=partition_max_bytes,
                    ),
                ),
            ),
        ),
        "forgotten_topics_data": (),
    }


async def produce(client: WireClient, topic: str, records: bytes, partition: int = 0) -> Any:
    response = await client.request(0, 9, **produce_fields(topic, partition, records))
    return response.responses[0].partition_responses[0]


async def test_api_versions_advertises_registered_ranges(app: BrokerApp, broker: Broker) -> None:
    client = await WireClient.connect(broker.kafka_port)
    response = await client.request(18, 3, client_software_name="t", client_software_version="1")
    assert response.error_code == ErrorCode.none
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert ranges == {key: (low, high) for key, low, high in app.registry.supported()}
    assert ranges[0] == (3, 12) and ranges[1] == (4, 12) and ranges[3] == (0, 12)
    # KIP-584 features: transaction.version 2 (KIP-890 part 2) is on by default.
    assert [(f.name, f.min_version, f.max_version) for f in response.supported_features] == [
        ("transaction.version", 0, 2)]
    assert response.finalized_features_epoch >= 0
    assert [(f.name, f.min_version_level, f.max_version_level)
            for f in response.finalized_features] == [("transaction.version", 2, 2)]
    await client.close()


async def test_unknown_api_versions_version_gets_v0_shaped_error_35(broker: Broker) -> None:
    client = await WireClient.connect(broker.kafka_port)
    header = struct.pack(">hhih", 18, 99, 7, 1) + b"c"
    client.send_raw(struct.pack(">i", len(header)) + header)
    correlation, response = await client.receive(18, 0)
    assert correlation == 7
    assert response.error_code == ErrorCode.unsupported_version
    assert any(k.api_key == 18 and k.max_version == 4 for k in response.api_keys)
    await client.close()


async def test_unknown_api_and_garbage_close_only_that_connection(broker: Broker) -> None:
    unknown = await WireClient.connect(broker.kafka_port)
    header = struct.pack(">hhih", 999, 0, 1, -1)
    unknown.send_raw(struct.pack(">i", len(header)) + header)
    assert await unknown.is_closed_by_peer()

    garbage = await WireClient.connect(broker.kafka_port)
    body = struct.pack(">hhih", 0, 9, 1, -1) + b"\x00\xff\xff\xff"
    garbage.send_raw(struct.pack(">i", len(body)) + body)
    assert await garbage.is_closed_by_peer()

    oversized = await WireClient.connect(broker.kafka_port)
    oversized.send_raw(struct.pack(">i", broker.config.max_request_bytes + 1) + b"\x00" * 64)
    assert await oversized.is_closed_by_peer()

    negative = await WireClient.connect(broker.kafka_port)
    negative.send_raw(struct.pack(">i", -5))
    assert await negative.is_closed_by_peer()

    healthy = await WireClient.connect(broker.kafka_port)
    response = await healthy.request(3, 12, topics=None, include_topic_authorized_operations=False)
    assert response.brokers[0].port == broker.kafka_port
    await healthy.close()


async def test_metadata_null_empty_and_v0(broker: Broker) -> None:
    broker.create_topic(TopicSpec("visible", 2))
    client = await WireClient.connect(broker.kafka_port)
    everything = await client.request(3, 12, topics=None, include_topic_authorized_operations=False)
    names = {t.name: t for t in everything.topics}
    assert names["visible"].is_internal is False
    assert len(names["visible"].partitions) == 2
    assert names["__consumer_offsets"].is_internal is True
    assert everything.controller_id == broker.config.node_id
    assert names["visible"].topic_id == broker.topics.require("visible").topic_id
    nothing = await client.request(3, 12, topics=(), include_topic_authorized_operations=False)
    assert nothing.topics == ()
    v0_all = await client.request(3, 0, topics=())
    assert {t.name for t in v0_all.topics} >= {"visible", "__consumer_offsets"}
    module = request_module(3, 12)
    bad = await client.request(
        3, 12, topics=(module.MetadataRequestTopic(topic_id=None, name="bad name"),),
        allow_auto_topic_creation=True, include_topic_authorized_operations=False,
    )
    assert bad.topics[0].error_code == ErrorCode.invalid_topic_exception
    created = await client.request(
        3, 12, topics=(module.MetadataRequestTopic(topic_id=None, name="auto"),),
        allow_auto_topic_creation=True, include_topic_authorized_operations=False,
    )
    assert created.topics[0].error_code == ErrorCode.none
    assert broker.topics.get("auto") is not None
    await client.close()


async def test_produce_errors_leave_the_log_untouched(broker: Broker) -> None:
    broker.create_topic(TopicSpec("strict", 1, configs={"max.message.bytes": "2000"}))
    client = await WireClient.connect(broker.kafka_port)
    good = await produce(client, "strict", build_batch([b"a", b"b"]))
    assert (good.error_code, good.base_offset) == (ErrorCode.none, 0)

    corrupt = bytearray(build_batch([b"c"]))
    corrupt[-1] ^= 0xFF
    bad = await produce(client, "strict", bytes(corrupt))
    assert bad.error_code == ErrorCode.corrupt_message

    too_large = await produce(client, "strict", build_batch([b"x" * 5000]))
    assert too_large.error_code == ErrorCode.message_too_large

    missing = await produce(client, "strict", build_batch([b"d"]), partition=7)
    assert missing.error_code == ErrorCode.unknown_topic_or_partition

    assert broker.offsets("strict", 0) == (0, 2)
    after = await produce(client, "strict", build_batch([b"e"]))
    assert (after.error_code, after.base_offset) == (ErrorCode.none, 2)
    await client.close()


async def test_acks_zero_gets_no_response(broker: Broker) -> None:
    broker.create_topic(TopicSpec("fire", 1))
    client = await WireClient.connect(broker.kafka_port)
    client.send(0, 9, **produce_fields("fire", 0, build_batch([b"x"]), acks=0))
    correlation = client.send(3, 12, topics=None, include_topic_authorized_operations=False)
    received, _ = await client.receive(3, 12)
    assert received == correlation
    assert broker.offsets("fire", 0) == (0, 1)
    await client.close()


async def test_long_poll_fetch_is_woken_by_append(broker: Broker) -> None:
    broker.create_topic(TopicSpec("poll", 1))
    consumer = await WireClient.connect(broker.kafka_port)
    producer = await WireClient.connect(broker.kafka_port)
    started = time.monotonic()
    consumer.send(1, 12, **fetch_fields("poll", 0, 0, max_wait_ms=20_000))
    await asyncio.sleep(0)  # let the fetch park first (correctness does not depend on it)
    await produce(producer, "poll", build_batch([b"wake"]))
    _, response = await consumer.receive(1, 12, wait_seconds=15)
    elapsed = time.monotonic() - started
    assert elapsed < 10, "fetch was not woken by the append"
    partition = response.responses[0].partitions[0]
    assert partition.high_watermark == 1 and partition.last_stable_offset == 1
    assert b"wake" in partition.records
    await consumer.close()
    await producer.close()


async def test_fetch_waits_max_wait_when_idle_and_answers_in_order(broker: Broker) -> None:
    broker.create_topic(TopicSpec("idle", 1))
    client = await WireClient.connect(broker.kafka_port)
    started = time.monotonic()
    fetch_id = client.send(1, 12, **fetch_fields("idle", 0, 0, max_wait_ms=300))
    meta_id = client.send(3, 12, topics=None, include_topic_authorized_operations=False)
    first, fetched = await client.receive(1, 12)
    second, _ = await client.receive(3, 12)
    assert (first, second) == (fetch_id, meta_id)
    assert time.monotonic() - started >= 0.25
    assert not fetched.responses[0].partitions[0].records
    await client.close()


async def test_fetch_limits_and_out_of_range(broker: Broker) -> None:
    broker.create_topic(TopicSpec("limits", 1))
    client = await WireClient.connect(broker.kafka_port)
    first = build_batch([b"1" * 300])
    await produce(client, "limits", first)
    await produce(client, "limits", build_batch([b"2" * 300]))
    small = await client.request(
        1, 12, **fetch_fields("limits", 0, 0, partition_max_bytes=10)
    )
    records = small.responses[0].partitions[0].records
    assert len(records) == len(first)  # one whole batch even over the limit, not two
    beyond = await client.request(1, 12, **fetch_fields("limits", 0, 5))
    assert beyond.responses[0].partitions[0].error_code == ErrorCode.offset_out_of_range
    unknown = await client.request(1, 12, **fetch_fields("nope", 0, 0))
    assert unknown.responses[0].partitions[0].error_code == ErrorCode.unknown_topic_or_partition
    await client.close()


async def test_idempotent_retries_and_sequence_gaps(broker: Broker) -> None:
    broker.create_topic(TopicSpec("idem", 1))
    client = await WireClient.connect(broker.kafka_port)
    init = await client.request(
        22, 4, transactional_id=None, transaction_timeout=datetime.timedelta(seconds=60),
        producer_id=-1, producer_epoch=-1,
    )
    assert init.error_code == ErrorCode.none and init.producer_id >= 0
    again = await client.request(
        22, 4, transactional_id=None, transaction_timeout=datetime.timedelta(seconds=60),
        producer_id=-1, producer_epoch=-1,
    )
    assert again.producer_id != init.producer_id
    pid = init.producer_id

    def batch(sequence: int, value: bytes) -> bytes:
        return build_batch([value], producer_id=pid, producer_epoch=0, base_sequence=sequence)

    first = await produce(client, "idem", batch(0, b"a"))
    second = await produce(client, "idem", batch(1, b"b"))
    retry = await produce(client, "idem", batch(1, b"b"))
    assert (first.base_offset, second.base_offset) == (0, 1)
    assert (retry.error_code, retry.base_offset) == (ErrorCode.none, 1)
    gap = await produce(client, "idem", batch(5, b"c"))
    assert gap.error_code == ErrorCode.out_of_order_sequence_number
    assert broker.offsets("idem", 0) == (0, 2)
    await client.close()


async def test_list_offsets_and_delete_records(broker: Broker) -> None:
    broker.create_topic(TopicSpec("offsets", 1))
    client = await WireClient.connect(broker.kafka_port)
    await produce(client, "offsets", build_batch([b"a", b"b", b"c"], timestamp=1000))
    module = request_module(2, 7)

    async def lookup(timestamp: int) -> tuple[int, int]:
        response = await client.request(
            2, 7, replica_id=-1, isolation_level=0,
            topics=(module.ListOffsetsTopic(name="offsets", partitions=(
                module.ListOffsetsPartition(partition_index=0, timestamp=timestamp),)),),
        )
        partition = response.topics[0].partitions[0]
        return partition.offset, partition.timestamp

    assert (await lookup(-2))[0] == 0
    assert (await lookup(-1))[0] == 3
    assert await lookup(1001) == (1, 1001)
    assert await lookup(-3) == (2, 1002)  # the record with the largest timestamp
    assert (await lookup(5000))[0] == -1
    delete_module = request_module(21, 2)
    deleted = await client.request(
        21, 2, timeout=datetime.timedelta(seconds=5),
        topics=(delete_module.DeleteRecordsTopic(name="offsets", partitions=(
            delete_module.DeleteRecordsPartition(partition_index=0, offset=2),)),),
    )
    assert deleted.topics[0].partitions[0].low_watermark == 2
    assert (await lookup(-2))[0] == 2
    await client.close()


async def test_invalid_acks_and_auto_create_switch(broker: Broker) -> None:
    client = await WireClient.connect(broker.kafka_port)
    response = await client.request(0, 9, **produce_fields("acks", 0, build_batch([b"x"]), acks=2))
    assert response.responses[0].partition_responses[0].error_code == (
        ErrorCode.invalid_required_acks
    )
    broker.config.auto_create_topics = False
    module = request_module(3, 12)
    missing = await client.request(
        3, 12, topics=(module.MetadataRequestTopic(topic_id=None, name="never"),),
        allow_auto_topic_creation=True, include_topic_authorized_operations=False,
    )
    assert missing.topics[0].error_code == ErrorCode.unknown_topic_or_partition
    produced = await produce(client, "never", build_batch([b"x"]))
    assert produced.error_code == ErrorCode.unknown_topic_or_partition
    assert broker.topics.get("never") is None
    broker.config.auto_create_topics = True
    not_allowed = await client.request(
        3, 12, topics=(module.MetadataRequestTopic(topic_id=None, name="never"),),
        allow_auto_topic_creation=False, include_topic_authorized_operations=False,
    )
    assert not_allowed.topics[0].error_code == ErrorCode.unknown_topic_or_partition
    assert broker.topics.get("never") is None
    await client.close()


async def test_disconnect_drops_parked_fetch(tmp_path: Path) -> None:
    from headrace.core.requests import NullObserver

    class Counting(NullObserver):
        def __init__(self) -> None:
            self.open = 0
            self.waiting = 0
            self.changed = asyncio.Event()

        def on_connection_opened(self) -> None:
            self.open += 1
            self.changed.set()

        def on_connection_closed(self) -> None:
            self.open -= 1
            self.changed.set()

        def on_fetch_waiting(self, delta: int) -> None:
            self.waiting += delta
            self.changed.set()

        async def until(self, condition: Any) -> None:
            async with asyncio.timeout(10):
                while not condition():
                    self.changed.clear()
                    await self.changed.wait()

    observer = Counting()
    async with in_process_broker(tmp_path / "data", observer=observer) as running:
        running.broker.create_topic(TopicSpec("parked", 1))
        client = await WireClient.connect(running.broker.kafka_port)
        client.send(1, 12, **fetch_fields("parked", 0, 0, max_wait_ms=60_000))
        await observer.until(lambda: observer.waiting == 1)
        assert observer.open == 1
        await client.close()
        # Both drop long before the 60 s max_wait.
        await observer.until(lambda: (observer.open, observer.waiting) == (0, 0))


async def test_create_topics_validation_codes(broker: Broker) -> None:
    module = request_module(19, 7)
    client = await WireClient.connect(broker.kafka_port)

    def topic(name: str, partitions: int = 1, replication: int = 1) -> Any:
        return module.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=replication,
            assignments=(), configs=(),
        )

    response = await client.request(
        19, 7, timeout=datetime.timedelta(seconds=5), validate_only=False,
        topics=(topic("ok"), topic("zero", 0), topic("."), topic(".."), topic("x" * 250),
                topic("rf", 1, 2), topic("ok")),
    )
    codes = [(t.name, t.error_code) for t in response.topics]
    assert codes == [
        ("ok", ErrorCode.none),
        ("zero", ErrorCode.invalid_partitions),
        (".", ErrorCode.invalid_topic_exception),
        ("..", ErrorCode.invalid_topic_exception),
        ("x" * 250, ErrorCode.invalid_topic_exception),
        ("rf", ErrorCode.invalid_replication_factor),
        ("ok", ErrorCode.topic_already_exists),
    ]
    assert response.topics[0].num_partitions == 1
    assert response.topics[0].topic_id == broker.topics.require("ok").topic_id
    assert set(broker.topics.topics()) == {"ok", "__consumer_offsets", "__transaction_state"}
    await client.close()
