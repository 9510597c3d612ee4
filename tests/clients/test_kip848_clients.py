"""KIP-848 groups with librdkafka (confluent-kafka, ``group.protocol=consumer``) against a
real ``headrace broker`` process: incremental hand-over between members, leaving, restart,
ConsumerGroupDescribe through the admin client, and conversion with classic groups."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_admin, create_topic
from tests.support.waiting import eventually

PARTITIONS = 6


@pytest.fixture
def kip848_broker(start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    # Quick heartbeats so hand-overs take a fraction of a second, not Kafka's 5 s steps.
    return start_broker("--group-consumer-heartbeat-interval-ms", "300",
                        "--group-consumer-session-timeout-ms", "10000")


def _produce(bootstrap: str, topic: str, values: range) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, str(value).encode(), partition=value % PARTITIONS)
    assert producer.flush(15) == 0


class Member:
    """A consumer-protocol consumer that records what it owns and what it read."""

    def __init__(self, bootstrap: str, group: str, topic: str,
                 owners: dict[tuple[str, int], str], name: str, **extra: Any) -> None:
        self.name = name
        self.owned: set[tuple[str, int]] = set()
        self.values: list[int] = []
        self._owners = owners
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, **extra,
        })
        self.consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            # The heart of KIP-848's reconciliation: nobody else may still hold it.
            assert key not in self._owners, f"{key} given to {self.name}, held by {self._owners}"
            self._owners[key] = self.name
            self.owned.add(key)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.values:
            with contextlib.suppress(KafkaException):  # nothing read on these partitions yet
                consumer.commit(asynchronous=False)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            self.owned.discard(key)
            if self._owners.get(key) == self.name:
                del self._owners[key]

    def poll(self) -> None:
        message = self.consumer.poll(0.05)
        if message is not None and message.error() is None:
            key = (message.topic(), message.partition())
            assert self._owners.get(key) == self.name, f"{self.name} read {key} it does not own"
            self.values.append(int(message.value()))

    def close(self) -> None:
        self.consumer.close()


def _poll_all_until(members: list[Member], condition: Callable[[], bool], what: str,
                    timeout: float = 30.0) -> None:
    def polled() -> bool:
        for member in members:
            member.poll()
        return condition()

    eventually(polled, timeout=timeout, message=f"waiting for {what}", interval=0)


def test_members_join_and_leave_with_incremental_hand_over(kip848_broker: BrokerProcess) -> None:
    bootstrap = kip848_broker.bootstrap
    topic, group = f"kip848-{uuid.uuid4().hex[:8]}", f"kip848-group-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    _produce(bootstrap, topic, range(0, 120))
    owners: dict[tuple[str, int], str] = {}
    a = Member(bootstrap, group, topic, owners, "a")
    b = Member(bootstrap, group, topic, owners, "b")
    members = [a, b]
    try:
        _poll_all_until(members, lambda: len(a.owned) == len(b.owned) == 3, "a 3/3 split")
        c = Member(bootstrap, group, topic, owners, "c")
        members.append(c)
        _poll_all_until(members, lambda: [len(m.owned) for m in members] == [2, 2, 2],
                        "a 2/2/2 split after c joined")
        admin = confluent_admin(bootstrap)
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert str(description.state).endswith("STABLE"), description.state
        assert str(description.type).endswith("CONSUMER"), description.type
        assert sorted(len(m.assignment.topic_partitions) for m in description.members) == [2] * 3
        _produce(bootstrap, topic, range(120, 240))
        a.close()
        members.remove(a)
        _poll_all_until(members, lambda: len(b.owned) + len(c.owned) == PARTITIONS,
                        "b and c to take a's partitions")
        _poll_all_until(
            members,
            lambda: set(a.values) | set(b.values) | set(c.values) == set(range(240)),
            "every record consumed",
        )
    finally:
        for member in members:
            member.close()


def test_an_empty_classic_group_converts_both_ways_keeping_its_offsets(
    kip848_broker: BrokerProcess,
) -> None:
    bootstrap = kip848_broker.bootstrap
    topic, group = f"kip848-conv-{uuid.uuid4().hex[:8]}", f"kip848-conv-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 1)
    _produce_one = Producer({"bootstrap.servers": bootstrap})
    for value in range(10):
        _produce_one.produce(topic, str(value).encode(), partition=0)
    assert _produce_one.flush(15) == 0

    def read(protocol: str, count: int) -> list[int]:
        consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "group.protocol": protocol,
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        consumer.subscribe([topic])
        values: list[int] = []
        deadline = time.monotonic() + 30
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                values.append(int(message.value()))
        consumer.commit(asynchronous=False)
        consumer.close()
        return values

    assert read("classic", 4)[:4] == [0, 1, 2, 3]
    assert read("consumer", 3)[:1] == [4]  # took over the classic group's offsets
    assert read("classic", 3)[:1] == [7]  # and back


def _group_type(bootstrap: str, group: str) -> str:
    admin = confluent_admin(bootstrap)
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return str(description.type).rsplit(".", 1)[-1]


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_a_live_classic_group_upgrades_when_a_consumer_member_joins_and_downgrades_after(
    kip848_broker: BrokerProcess, strategy: str,
) -> None:
    """KIP-848's online migration with librdkafka: a classic member (cooperative or eager)
    holds the group; a ``group.protocol=consumer`` member joins, so the group becomes a consumer
    group and the classic member, still speaking JoinGroup/SyncGroup, hands over half without a
    partition ever held by both; the consumer member leaves and the group is classic again."""
    bootstrap = kip848_broker.bootstrap
    topic, group = f"kip848-up-{uuid.uuid4().hex[:8]}", f"kip848-up-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, PARTITIONS)
    _produce(bootstrap, topic, range(0, 60))
    owners: dict[tuple[str, int], str] = {}
    classic = Member(bootstrap, group, topic, owners, "classic", **{
        "group.protocol": "classic", "partition.assignment.strategy": strategy,
        "heartbeat.interval.ms": 300})
    members = [classic]
    try:
        _poll_all_until(members, lambda: len(classic.owned) == PARTITIONS, "the classic join")
        assert _group_type(bootstrap, group) == "CLASSIC"
        modern = Member(bootstrap, group, topic, owners, "modern")
        members.append(modern)
        _poll_all_until(members, lambda: len(classic.owned) == len(modern.owned) == 3,
                        "a 3/3 split between the classic and the consumer member")
        assert _group_type(bootstrap, group) == "CONSUMER"
        _produce(bootstrap, topic, range(60, 120))
        _poll_all_until(members, lambda: set(classic.values) | set(modern.values)
                        == set(range(120)), "every record consumed")
        modern.close()
        members.remove(modern)
        _poll_all_until(members, lambda: len(classic.owned) == PARTITIONS,
                        "the classic member to hold everything again")
        eventually(lambda: _group_type(bootstrap, group) == "CLASSIC", timeout=20,
                   message="the group to be classic again")
    finally:
        for member in members:
            member.close()


def test_a_classic_member_joins_a_live_consumer_group(kip848_broker: BrokerProcess) -> None:
    bootstrap = kip848_broker.bootstrap
    topic, group = f"kip848-mix-{uuid.uuid4().hex[:8]}", f"kip848-mix-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 2)
    owners: dict[tuple[str, int], str] = {}
    modern = Member(bootstrap, group, topic, owners, "modern")
    members = [modern]
    try:
        _poll_all_until(members, lambda: len(modern.owned) == 2, "the consumer member's join")
        classic = Member(bootstrap, group, topic, owners, "classic", **{
            "group.protocol": "classic", "partition.assignment.strategy": "cooperative-sticky",
            "heartbeat.interval.ms": 300})
        members.append(classic)
        _poll_all_until(members, lambda: len(modern.owned) == len(classic.owned) == 1,
                        "one partition each")
        assert _group_type(bootstrap, group) == "CONSUMER"
    finally:
        for member in members:
            member.close()


def test_a_regex_subscription_is_matched_by_the_broker_and_picks_up_new_topics(
    kip848_broker: BrokerProcess,
) -> None:
    bootstrap = kip848_broker.bootstrap
    prefix = f"kip848-rx-{uuid.uuid4().hex[:6]}"
    group = f"{prefix}-group"
    create_topic(bootstrap, f"{prefix}-a", 1)
    create_topic(bootstrap, f"other-{prefix}", 1)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    owned: set[str] = set()
    consumer.subscribe([f"^{prefix}-.*"],
                       on_assign=lambda c, ps: owned.update(tp.topic for tp in ps))
    try:
        def holds(topics: set[str]) -> Callable[[], bool]:
            def check() -> bool:
                consumer.poll(0.1)
                return owned == topics
            return check

        eventually(holds({f"{prefix}-a"}), timeout=20, message="the matching topic assigned")
        create_topic(bootstrap, f"{prefix}-b", 1)
        eventually(holds({f"{prefix}-a", f"{prefix}-b"}), timeout=20,
                   message="the topic created later picked up")
        admin = confluent_admin(bootstrap)
        (member,) = admin.describe_consumer_groups([group])[group].result(timeout=10).members
        assert {tp.topic for tp in member.assignment.topic_partitions} == owned
    finally:
        consumer.close()
