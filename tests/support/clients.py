"""Real Kafka clients pointed at a test broker: one factory per client library.

Each factory takes the bootstrap address and the settings the test cares about: confluent-kafka
(librdkafka) its dotted config keys as a mapping, kafka-python and aiokafka their keyword
arguments. kafka-python and aiokafka requests are bounded to 10 s (:data:`REQUEST_TIMEOUT_MS`),
so a broker that stops answering fails the test instead of hanging it. librdkafka keeps its own
timeouts unless a test asks for :data:`SHORT_TIMEOUTS`: the replication and fault tests rely on
how its defaults retry through a failover. A confluent consumer without a ``group.id`` gets a
fresh one (librdkafka wants one even for assigned partitions). Clients the code under test
makes (the operator's admin, the CLI's) are not made here.

Also here: what several test directories do with those clients (create a topic, read topics
back from the start).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.waiting import eventually

# kafka-python and aiokafka load with the first test that makes one of their clients (importing
# kafka-python costs time and a deprecation warning per message schema).
if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

Config = Mapping[str, Any]

#: librdkafka settings for a test that wants quick answers from one broker: a request without an
#: answer fails after 10 s (not 60), and the client reconnects to a restarted broker within 0.5 s.
SHORT_TIMEOUTS: Config = {"socket.timeout.ms": 10_000, "reconnect.backoff.max.ms": 500}

#: kafka-python's and aiokafka's request timeout in tests (their defaults are 30-305 s).
REQUEST_TIMEOUT_MS = 10_000


def _confluent(bootstrap: str, config: Config | None) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, **(config or {})}


def confluent_producer(bootstrap: str, config: Config | None = None) -> Producer:
    return Producer(_confluent(bootstrap, config))


def confluent_consumer(bootstrap: str, config: Config | None = None) -> Consumer:
    settings = _confluent(bootstrap, config)
    settings.setdefault("group.id", f"test-{uuid.uuid4().hex[:12]}")
    return Consumer(settings)


def confluent_admin(bootstrap: str, config: Config | None = None) -> AdminClient:
    return AdminClient(_confluent(bootstrap, config))


def kafka_python_producer(bootstrap: str, **settings: Any) -> KafkaProducer:
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap,
                         **{"request_timeout_ms": REQUEST_TIMEOUT_MS, **settings})


def kafka_python_consumer(bootstrap: str, *topics: str, **settings: Any) -> KafkaConsumer:
    from kafka import KafkaConsumer

    return KafkaConsumer(*topics, bootstrap_servers=bootstrap,
                         **{"request_timeout_ms": REQUEST_TIMEOUT_MS, **settings})


def kafka_python_admin(bootstrap: str, **settings: Any) -> KafkaAdminClient:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap,
                            **{"request_timeout_ms": REQUEST_TIMEOUT_MS, **settings})


def aiokafka_producer(bootstrap: str, **settings: Any) -> AIOKafkaProducer:
    """Not started: ``await producer.start()`` on the loop that uses it."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(bootstrap_servers=bootstrap,
                            **{"request_timeout_ms": REQUEST_TIMEOUT_MS, **settings})


def aiokafka_consumer(bootstrap: str, *topics: str, **settings: Any) -> AIOKafkaConsumer:
    """Not started: ``await consumer.start()`` on the loop that uses it."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap,
                            **{"request_timeout_ms": REQUEST_TIMEOUT_MS, **settings})


def create_topic(bootstrap: str, name: str, partitions: int = 1, replication: int = 1,
                 configs: dict[str, str] | None = None) -> None:
    """Create a topic through the Kafka admin API and wait for the broker's answer."""
    client = confluent_admin(bootstrap, {"socket.timeout.ms": 5000})  # must outlive the future
    futures = client.create_topics(
        [NewTopic(name, partitions, replication, config=configs or {})], request_timeout=15
    )
    futures[name].result(20)


def consume_all(bootstrap: str, topic: str, partitions: int, expected: int,
                timeout: float = 20.0) -> list[Message]:
    """The first ``expected`` records of ``topic``'s partitions, read from offset 0 by
    assignment (no group membership); fails if they do not arrive within ``timeout``."""
    consumer = confluent_consumer(bootstrap, {"enable.auto.commit": False,
                                              "socket.timeout.ms": 5000})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        messages: list[Message] = []

        def all_read() -> bool:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
            return len(messages) >= expected

        eventually(all_read, timeout=timeout, interval=0,
                   message=lambda: f"{expected} records of {topic} ({len(messages)} read)")
        return messages
    finally:
        consumer.close()
