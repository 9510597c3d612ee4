"""kafka-python and aiokafka transactional producers: what they commit is all a read_committed
consumer sees; what they abort only a read_uncommitted one does."""

from __future__ import annotations

import asyncio

from tests.support.brokers import BrokerProcess
from tests.support.clients import aiokafka_consumer, aiokafka_producer, create_topic
from tests.support.waiting import eventually_async
from tests.transactions.txn_clients import read_values


def test_kafka_python_transactions(txn_broker: BrokerProcess) -> None:
    from kafka import KafkaProducer

    bootstrap = txn_broker.bootstrap
    create_topic(bootstrap, "kp", 1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="kp-writer",
                             request_timeout_ms=10_000)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for index in range(5):
            producer.send("kp", value=b"kp-commit-%d" % index)
        producer.commit_transaction()
        producer.begin_transaction()
        for index in range(5):
            producer.send("kp", value=b"kp-abort-%d" % index)
        producer.flush()
        producer.abort_transaction()
    finally:
        producer.close(5)
    committed = [b"kp-commit-%d" % i for i in range(5)]
    assert read_values(bootstrap, "kp", 1, "read_committed", 5) == committed
    assert read_values(bootstrap, "kp", 1, "read_uncommitted", 10) == committed + [
        b"kp-abort-%d" % i for i in range(5)]


async def test_aiokafka_transactions_and_read_committed_consumer(
    txn_broker: BrokerProcess,
) -> None:
    bootstrap = txn_broker.bootstrap
    await asyncio.to_thread(create_topic, bootstrap, "aio", 1)
    producer = aiokafka_producer(bootstrap, transactional_id="aio-writer")
    await producer.start()
    try:
        async with producer.transaction():
            for index in range(5):
                await producer.send("aio", value=b"aio-commit-%d" % index)
        await producer.begin_transaction()
        for index in range(5):
            await producer.send_and_wait("aio", value=b"aio-abort-%d" % index)
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send("aio", value=b"aio-last")
    finally:
        await producer.stop()
    consumer = aiokafka_consumer(bootstrap, "aio", isolation_level="read_committed",
                                 auto_offset_reset="earliest", group_id="aio-reader")
    await consumer.start()
    seen: list[bytes] = []
    try:
        async def six_read() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            seen.extend(m.value for records in batch.values() for m in records)
            return len(seen) >= 6

        await eventually_async(six_read, timeout=30, message=lambda: f"aiokafka read {seen}")
        more = await consumer.getmany(timeout_ms=1000)
        seen.extend(m.value for records in more.values() for m in records)
    finally:
        await consumer.stop()
    assert seen == [b"aio-commit-%d" % i for i in range(5)] + [b"aio-last"]
