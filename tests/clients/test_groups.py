"""Consumer groups with real clients against a real ``headrace broker`` subprocess.

librdkafka (confluent-kafka), kafka-python and aiokafka join groups, split partitions, commit,
and resume exactly from their commits — across a broker restart and across a rebalance.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from tests.support.brokers import BrokerProcess
from tests.support.clients import (
    aiokafka_consumer,
    confluent_admin,
    confluent_consumer,
    confluent_producer,
    create_topic,
    kafka_python_consumer,
)
from tests.support.waiting import eventually, eventually_async

Record = tuple[int, int, bytes, bytes]  # partition, offset, key, value

FAST_GROUP = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 200,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def produce(bootstrap: str, topic: str, rows: Iterable[tuple[int, bytes, bytes]]) -> list[Record]:
    """Produce (partition, key, value) rows; returns them with their assigned offsets."""
    delivered: list[Record] = []
    errors: list[Any] = []

    def on_delivery(error: Any, message: Message) -> None:
        if error is not None:
            errors.append(error)
            return
        delivered.append((message.partition(), message.offset(), message.key(), message.value()))

    producer = confluent_producer(bootstrap, {"linger.ms": 5})
    for partition, key, value in rows:
        producer.produce(topic, value=value, key=key, partition=partition,
                         on_delivery=on_delivery)
    assert producer.flush(15) == 0
    assert errors == []
    return sorted(delivered)


def record_of(message: Message) -> Record:
    return (message.partition(), message.offset(), message.key(), message.value())


def poll_until(
    consumers: list[Consumer],
    done: Callable[[], bool],
    on_message: Callable[[int, Message], None],
    timeout: float = 30.0,
) -> None:
    """Poll every consumer in turn (each one's rebalance needs its own polls) until done()."""

    def polled_until_done() -> bool:
        for index, consumer in enumerate(consumers):
            message = consumer.poll(0.05)
            if message is None:
                continue
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                continue
            on_message(index, message)
        return done()

    if not done():
        eventually(polled_until_done, timeout=timeout, interval=0,
                   message=f"{len(consumers)} consumer(s) to reach what the test awaits")


@contextlib.contextmanager
def closing(*consumers: Consumer) -> Iterator[None]:
    """Close every consumer even when the test fails (a leaked one blocks interpreter exit)."""
    try:
        yield
    finally:
        for consumer in consumers:
            with contextlib.suppress(RuntimeError):  # already closed
                consumer.close()


def group_consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    return confluent_consumer(bootstrap, {"group.id": group, **FAST_GROUP, **extra})


@pytest.mark.parametrize("graceful", [True, False], ids=["sigterm", "sigkill"])
def test_confluent_commit_restart_resume_exactly(
    start_broker: Callable[..., BrokerProcess], graceful: bool
) -> None:
    broker = start_broker()
    topic, group = unique("resume"), unique("resume-group")
    create_topic(broker.bootstrap, topic, 2)
    rows = [(i % 2, f"k{i}".encode(), f"v{i}".encode()) for i in range(12)]
    produced = produce(broker.bootstrap, topic, rows)

    first: list[Record] = []
    consumer = group_consumer(broker.bootstrap, group)
    with closing(consumer):
        consumer.subscribe([topic])
        poll_until([consumer], lambda: len(first) >= 7, lambda _, m: first.append(record_of(m)))
        consumer.commit(asynchronous=False)
        committed = {
            tp.partition: tp.offset
            for tp in consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)
        }
        consumer.close()
    # What was committed is exactly "one past the last record consumed" per partition.
    expected_commits = {p: max(o for q, o, _, _ in first if q == p) + 1 for p in (0, 1)
                        if any(q == p for q, *_ in first)}
    assert {p: o for p, o in committed.items() if o >= 0} == expected_commits

    broker.restart(graceful=graceful)
    more = produce(broker.bootstrap, topic, [(0, b"after", b"restart"), (1, b"x", b"y")])

    second: list[Record] = []
    remaining = sorted(set(produced) - set(first)) + more
    consumer = group_consumer(broker.bootstrap, group)
    with closing(consumer):
        consumer.subscribe([topic])
        poll_until([consumer], lambda: len(second) >= len(remaining),
                   lambda _, m: second.append(record_of(m)))
        assert sorted(second) == sorted(remaining)
        restored = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)
        assert {tp.partition: tp.offset for tp in restored if tp.offset >= 0} == expected_commits
        consumer.close()
    assert sorted(first + second) == sorted(produced + more)


#: Errors with which Kafka fences a commit from a generation that has just ended.
GENERATION_FENCED = {
    KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS, KafkaError.UNKNOWN_MEMBER_ID
}


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_two_confluent_consumers_split_and_take_over(broker: BrokerProcess, assignor: str) -> None:
    """Eager (range) and incremental (cooperative-sticky) rebalancing over the classic protocol."""
    topic, group = unique("split"), unique("split-group")
    create_topic(broker.bootstrap, topic, 4)
    consumed: list[tuple[int, Record]] = []
    fenced: set[Record] = set()
    assignments: dict[int, list[set[int]]] = {0: [], 1: []}

    def tracker(index: int) -> dict[str, Any]:
        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            assignments[index].append({tp.partition for tp in partitions})

        return {"on_assign": on_assign}

    def take(index: int, message: Message) -> None:
        record = record_of(message)
        consumed.append((index, record))
        try:
            consumers[index].commit(message=message, asynchronous=False)
        except KafkaException as error:
            # A commit racing a rebalance may be fenced (as in Kafka); that record may come
            # back once to whoever owns its partition next.
            assert error.args[0].code() in GENERATION_FENCED, error
            fenced.add(record)

    consumers = [
        group_consumer(broker.bootstrap, group, **{"partition.assignment.strategy": assignor})
        for _ in range(2)
    ]
    with closing(*consumers):
        consumers[0].subscribe([topic], **tracker(0))
        # The first consumer owns everything before the second arrives.
        poll_until(consumers[:1], lambda: bool(assignments[0]), take)
        consumers[1].subscribe([topic], **tracker(1))

        def split_done() -> bool:
            a = {p.partition for p in consumers[0].assignment()}
            b = {p.partition for p in consumers[1].assignment()}
            return bool(a) and bool(b) and not a & b and a | b == {0, 1, 2, 3}

        poll_until(consumers, split_done, take)
        split = [{p.partition for p in c.assignment()} for c in consumers]
        assert sorted(len(s) for s in split) == [2, 2]  # both assignors balance 4 partitions
        # Records arrive only now, so each consumer starts on its own half.
        produced = produce(
            broker.bootstrap, topic,
            [(i % 4, f"k{i}".encode(), f"v{i}".encode()) for i in range(40)],
        )

        def second_took_some() -> bool:
            return sum(1 for index, _ in consumed if index == 1) >= 4

        poll_until(consumers, second_took_some, take)
        consumers[1].close()  # sends LeaveGroup: the first consumer must take over everything
        everything = set(produced)
        poll_until(consumers[:1], lambda: {r for _, r in consumed} == everything, take)
        assert {p.partition for p in consumers[0].assignment()} == {0, 1, 2, 3}

    # Every record exactly once across both consumers (bar fenced commits, at most twice), and
    # only from partitions each consumer owned.
    records = sorted(record for _, record in consumed)
    duplicates = {r for r in records if records.count(r) > 1}
    assert sorted(set(records)) == produced
    assert duplicates <= fenced
    assert all(records.count(r) == 2 for r in duplicates)
    second_partitions = {record[0] for index, record in consumed if index == 1}
    assert second_partitions <= split[1]
    # Cooperative rebalancing may first hand the newcomer nothing, then the revoked partitions.
    assert set().union(*assignments[1]) == split[1]


def test_kafka_python_group_commit_and_resume(broker: BrokerProcess) -> None:
    from kafka import TopicPartition as KafkaTopicPartition

    topic, group = unique("kpy"), unique("kpy-group")
    create_topic(broker.bootstrap, topic, 1)
    produced = produce(broker.bootstrap, topic,
                       [(0, f"k{i}".encode(), f"v{i}".encode()) for i in range(10)])

    def consume(count: int) -> list[Record]:
        consumer = kafka_python_consumer(
            broker.bootstrap, topic, group_id=group,
            auto_offset_reset="earliest", enable_auto_commit=False,
        )
        # Wait until the consumer knows the topic before its first poll joins the group.
        # kafka-python fetches the subscribed topic's metadata retry_backoff_ms after its
        # bootstrap, so without this the first JoinGroup can win the race, the leader assigns
        # nothing ("No partition metadata for topic") and the metadata change starts a second
        # rebalance; kafka-python 3.0.12 loses the result of that rebalance when a poll's
        # timeout ends while its SyncGroup is in flight (need_rejoin() is already False once
        # the assignor has run), leaving the consumer with no partitions for good.
        assert consumer.partitions_for_topic(topic) == {0}
        got: list[Record] = []

        def got_all() -> bool:
            for records in consumer.poll(timeout_ms=200, max_records=count - len(got)).values():
                got.extend((r.partition, r.offset, r.key, r.value) for r in records)
            return len(got) >= count

        eventually(got_all, timeout=30, interval=0, message=f"{count} records for the group")
        consumer.commit()
        assert consumer.committed(KafkaTopicPartition(topic, 0)) == got[-1][1] + 1
        consumer.close()
        return got

    assert consume(4) == produced[:4]
    assert consume(6) == produced[4:]


def test_aiokafka_group_commit_and_resume(broker: BrokerProcess) -> None:
    from aiokafka.structs import TopicPartition as AioTopicPartition

    topic, group = unique("aio"), unique("aio-group")
    create_topic(broker.bootstrap, topic, 2)
    produced = produce(broker.bootstrap, topic,
                       [(i % 2, f"k{i}".encode(), f"v{i}".encode()) for i in range(10)])

    async def consume(count: int) -> list[Record]:
        consumer = aiokafka_consumer(
            broker.bootstrap, topic, group_id=group,
            auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=6000, heartbeat_interval_ms=200,
        )
        await consumer.start()
        try:
            got: list[Record] = []

            async def got_all() -> bool:
                batches = await consumer.getmany(timeout_ms=200, max_records=count - len(got))
                for records in batches.values():
                    got.extend((r.partition, r.offset, r.key, r.value) for r in records)
                return len(got) >= count

            await eventually_async(got_all, timeout=30, interval=0,
                                   message=f"{count} records for the group")
            await consumer.commit()
            for partition in (0, 1):
                mine = [o for p, o, _, _ in got if p == partition]
                if mine:
                    committed = await consumer.committed(AioTopicPartition(topic, partition))
                    assert committed == max(mine) + 1
            return got
        finally:
            await consumer.stop()

    first = asyncio.run(consume(6))
    second = asyncio.run(consume(4))
    assert sorted(first + second) == produced
    assert not set(first) & set(second)


def test_static_member_restart_keeps_assignment_without_rebalance(broker: BrokerProcess) -> None:
    topic, group = unique("static"), unique("static-group")
    create_topic(broker.bootstrap, topic, 4)
    events: dict[str, list[tuple[str, frozenset[int]]]] = {"a": [], "b": []}

    def callbacks(name: str) -> dict[str, Any]:
        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            events[name].append(("assign", frozenset(tp.partition for tp in partitions)))

        def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            events[name].append(("revoke", frozenset(tp.partition for tp in partitions)))

        return {"on_assign": on_assign, "on_revoke": on_revoke}

    def static_consumer(instance: str) -> Consumer:
        return group_consumer(
            broker.bootstrap, group, **{"group.instance.id": instance,
                                        "session.timeout.ms": 15000}
        )

    a, b = static_consumer("instance-a"), static_consumer("instance-b")
    with closing(b):
        with closing(a):
            a.subscribe([topic], **callbacks("a"))
            b.subscribe([topic], **callbacks("b"))

            def split() -> bool:
                pa = {p.partition for p in a.assignment()}
                pb = {p.partition for p in b.assignment()}
                return bool(pa) and bool(pb) and pa | pb == {0, 1, 2, 3} and not pa & pb

            poll_until([a, b], split, lambda i, m: None)
            a_partitions = frozenset(p.partition for p in a.assignment())
            b_events_before = list(events["b"])
        # Closed: static members send no LeaveGroup, the group keeps instance-a's slot.
        restarted = static_consumer("instance-a")
        events["a2"] = []
        with closing(restarted):
            restarted.subscribe([topic], **callbacks("a2"))
            poll_until([restarted, b], lambda: bool(restarted.assignment()), lambda i, m: None)
            assert frozenset(p.partition for p in restarted.assignment()) == a_partitions
            # Both keep polling for a while: b must see no revoke/assign (no rebalance).
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                restarted.poll(0.05)
                b.poll(0.05)
            assert events["b"] == b_events_before
            assert events["a2"] == [("assign", a_partitions)]


def test_describe_and_list_groups_through_admin(broker: BrokerProcess) -> None:
    topic, group = unique("admin"), unique("admin-group")
    create_topic(broker.bootstrap, topic, 2)
    consumer = group_consumer(broker.bootstrap, group)
    admin = confluent_admin(broker.bootstrap)
    with closing(consumer):
        consumer.subscribe([topic])
        poll_until([consumer], lambda: len(consumer.assignment()) == 2, lambda i, m: None)
        listed = admin.list_consumer_groups().result(10)
        assert group in {g.group_id for g in listed.valid}
        description = admin.describe_consumer_groups([group])[group].result(10)
        assert str(description.state).endswith("STABLE")
        assert len(description.members) == 1
        member = description.members[0]
        assert {tp.partition for tp in member.assignment.topic_partitions} == {0, 1}

    # Offsets administration on the now empty group: alter (OffsetCommit with generation -1),
    # list (OffsetFetch), then delete the group (DeleteGroups) and see it gone.
    from confluent_kafka import ConsumerGroupTopicPartitions

    wanted = [TopicPartition(topic, 0, 11), TopicPartition(topic, 1, 22)]
    admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, wanted)]
    )[group].result(10)
    listed_offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)]
    )[group].result(10)
    assert sorted((tp.topic, tp.partition, tp.offset)
                  for tp in listed_offsets.topic_partitions) == [(topic, 0, 11), (topic, 1, 22)]
    # As Kafka: a commit for a partition that does not exist is refused.
    missing = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 7, 1),
                                              TopicPartition(unique("absent"), 0, 1)])]
    )[group].result(10)
    assert [tp.error.code() for tp in missing.topic_partitions] == [
        KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.UNKNOWN_TOPIC_OR_PART
    ]
    admin.delete_consumer_groups([group])[group].result(10)
    assert group not in {g.group_id for g in admin.list_consumer_groups().result(10).valid}


CRASHING_CONSUMER = """
import sys
from confluent_kafka import Consumer
consumer = Consumer({
    "bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "session.timeout.ms": 2000,
    "heartbeat.interval.ms": 200, "auto.offset.reset": "earliest",
})
consumer.subscribe([sys.argv[3]])
while True:
    consumer.poll(0.05)
    partitions = sorted(tp.partition for tp in consumer.assignment())
    if partitions:
        print(" ".join(map(str, partitions)), flush=True)
"""


def test_crashed_consumer_expires_and_survivor_takes_over(broker: BrokerProcess) -> None:
    """A consumer killed without LeaveGroup is removed when its session times out."""
    topic, group = unique("crash"), unique("crash-group")
    create_topic(broker.bootstrap, topic, 4)
    survivor = group_consumer(broker.bootstrap, group, **{"session.timeout.ms": 2000})
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_CONSUMER, broker.bootstrap, group, topic],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        with closing(survivor):
            survivor.subscribe([topic])
            child_partitions: set[int] = set()

            def split() -> bool:
                assert child.stdout is not None
                while select.select([child.stdout], [], [], 0)[0]:
                    line = child.stdout.readline()
                    assert line, "the child consumer exited"
                    child_partitions.clear()
                    child_partitions.update(int(p) for p in line.split())
                mine = {tp.partition for tp in survivor.assignment()}
                return (
                    bool(mine) and bool(child_partitions)
                    and mine | child_partitions == {0, 1, 2, 3}
                    and not mine & child_partitions
                )

            poll_until([survivor], split, lambda i, m: None)
            child.kill()  # no LeaveGroup, no more heartbeats
            child.wait()
            killed_at = time.monotonic()
            poll_until(
                [survivor],
                lambda: {tp.partition for tp in survivor.assignment()} == {0, 1, 2, 3},
                lambda i, m: None,
            )
            # The coordinator waited for the session timeout rather than guessing early.
            assert time.monotonic() - killed_at >= 1.0
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_kcat_balanced_consumer_resumes_from_its_commits(broker: BrokerProcess) -> None:
    """Debian's kcat (librdkafka 2.0.2) in -G mode: auto-commit on exit, resume on the next run."""
    topic, group = unique("kcat"), unique("kcat-group")
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic,
            [(i % 2, f"k{i}".encode(), f"v{i}".encode()) for i in range(6)])

    def run_kcat() -> set[str]:
        result = subprocess.run(
            ["kcat", "-b", broker.bootstrap, "-G", group, "-X", "auto.offset.reset=earliest",
             "-e", "-q", "-f", "%p:%o:%k=%s\\n", topic],
            capture_output=True, text=True, timeout=60, check=True,
        )
        lines = result.stdout.splitlines()
        assert len(lines) == len(set(lines))
        return set(lines)

    assert run_kcat() == {f"{i % 2}:{i // 2}:k{i}=v{i}" for i in range(6)}
    produce(broker.bootstrap, topic, [(0, b"late", b"x")])
    assert run_kcat() == {"0:3:late=x"}


def free_port() -> int:
    """An ephemeral port the OS just handed out, so a restarted broker can keep its address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_running_consumer_survives_broker_restart_without_rebalance(
    start_broker: Callable[..., BrokerProcess],
) -> None:
    """The group comes back Stable from __consumer_offsets: the member's heartbeats go on."""
    broker = start_broker("--kafka-listen", f"127.0.0.1:{free_port()}")
    topic, group = unique("survive"), unique("survive-group")
    create_topic(broker.bootstrap, topic, 2)
    events: list[tuple[str, int]] = []
    got: list[Record] = []
    # The member must outlive the restart: librdkafka itself revokes and rejoins once it has
    # had no heartbeat answer for session.timeout.ms, and a restart (mostly interpreter start
    # and imports) takes well over FAST_GROUP's 6 s on a loaded 2-core machine. Nothing here
    # waits for this timeout, so a generous one (Kafka's default) costs no time.
    consumer = group_consumer(broker.bootstrap, group, **{"session.timeout.ms": 45000})
    with closing(consumer):
        consumer.subscribe(
            [topic],
            on_assign=lambda _, parts: events.append(("assign", len(parts))),
            on_revoke=lambda _, parts: events.append(("revoke", len(parts))),
        )
        before = produce(broker.bootstrap, topic, [(0, b"a", b"1"), (1, b"b", b"2")])
        poll_until([consumer], lambda: len(got) >= 2, lambda _, m: got.append(record_of(m)))
        consumer.commit(asynchronous=False)
        port = broker.kafka_port
        broker.restart()
        assert broker.kafka_port == port
        after = produce(broker.bootstrap, topic, [(0, b"c", b"3"), (1, b"d", b"4")])
        poll_until([consumer], lambda: len(got) >= 4, lambda _, m: got.append(record_of(m)))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], 10)
        # (Before close, which revokes.) An eager rebalance would have revoked and reassigned.
        assert events == [("assign", 2)]
    assert sorted(got) == sorted(before + after)
    assert {tp.partition: tp.offset for tp in committed} == {0: 2, 1: 2}
