"""Apache Kafka's own command-line tools (the Java classes behind ``kafka-topics.sh``,
``kafka-console-producer.sh``, ``kafka-console-consumer.sh`` and ``kafka-consumer-groups.sh``,
at the version pinned in tests/peers/maven/pom.xml) against a real ``headrace broker``.

Every tool run is a JVM launch (about 1-2 s), so each test runs only the tools it is about and
checks the rest with confluent-kafka.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.clients.conftest import BrokerProcess
from tests.peers.kafka import (
    CONSOLE_CONSUMER,
    CONSOLE_PRODUCER,
    CONSUMER_GROUP_COMMAND,
    TOPIC_COMMAND,
    kafka_missing_reason,
    kafka_tool_command,
    run_kafka_tool,
)

MISSING = kafka_missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

TOOL_TIMEOUT = 60.0


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _tool(main_class: str, broker: BrokerProcess, *args: str, input: str | None = None) -> str:
    """Run a tool against ``broker``; its stdout, after checking it exited 0."""
    done = run_kafka_tool(
        main_class, "--bootstrap-server", broker.bootstrap, *args,
        input=input, timeout=TOOL_TIMEOUT,
    )
    assert done.returncode == 0, _failure(done)
    return done.stdout


def _failure(done: subprocess.CompletedProcess[str]) -> str:
    command = " ".join(str(part) for part in done.args[-12:])
    return f"...{command} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


def _admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10_000})


def _create_topic(broker: BrokerProcess, topic: str, partitions: int) -> None:
    admin = _admin(broker)  # held until the result: a dropped client cancels its futures
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=10)
    futures[topic].result(timeout=15)


def _poll_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def _fields(line: str) -> dict[str, str]:
    """``Topic: t<TAB>Partition: 0<TAB>Leader: 1 ...`` (kafka-topics --describe) as a dict."""
    fields: dict[str, str] = {}
    for part in line.strip().split("\t"):
        key, _, value = part.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _table(output: str, first_column: str) -> list[dict[str, str]]:
    """The whitespace-aligned table kafka-consumer-groups prints, one dict per row."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    for index, words in enumerate(lines):
        if words and words[0] == first_column:
            header = words
            return [dict(zip(header, row, strict=True)) for row in lines[index + 1:]]
    raise AssertionError(f"no {first_column} table in:\n{output}")


def _produce(broker: BrokerProcess, topic: str, records: list[tuple[str, str]]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for key, value in records:
        producer.produce(topic, key=key.encode(), value=value.encode())
    assert producer.flush(15) == 0


def _consumer(broker: BrokerProcess, group: str, **extra: Any) -> Consumer:
    return Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **extra,
    })


def _committed(broker: BrokerProcess, group: str, topic: str, partitions: int) -> list[int]:
    consumer = _consumer(broker, group)
    try:
        offsets = consumer.committed(
            [TopicPartition(topic, partition) for partition in range(partitions)], timeout=10
        )
        return [offset.offset for offset in sorted(offsets, key=lambda tp: tp.partition)]
    finally:
        consumer.close()


def test_kafka_topics_create_describe_list_alter_delete(broker: BrokerProcess) -> None:
    topic = _unique("compat-topics")
    created = _tool(
        TOPIC_COMMAND, broker, "--create", "--topic", topic, "--partitions", "3",
        "--replication-factor", "1", "--config", "retention.ms=3600000",
        "--config", "cleanup.policy=compact",
    )
    assert f"Created topic {topic}." in created

    described = [line for line in
                 _tool(TOPIC_COMMAND, broker, "--describe", "--topic", topic).splitlines()
                 if line.strip()]
    header = _fields(described[0])
    assert header["Topic"] == topic
    assert header["PartitionCount"] == "3"
    assert header["ReplicationFactor"] == "1"
    assert len(header["TopicId"]) == 22  # a base64 Uuid, not the zero id
    # Only settings not at their defaults; Apache Kafka 4.4 also lists the cluster-wide
    # min.insync.replicas=1 its controller sets (KIP-966), so the topic's own are a subset.
    configs = set(header["Configs"].split(","))
    assert {"cleanup.policy=compact", "retention.ms=3600000"} <= configs, described[0]
    rows = [_fields(line) for line in described[1:]]
    assert sorted(int(row["Partition"]) for row in rows) == [0, 1, 2]
    brokers = {str(node) for node in _admin(broker).list_topics(timeout=10).brokers}
    for row in rows:
        assert row["Topic"] == topic
        assert row["Leader"] in brokers
        assert row["Replicas"] == row["Isr"] == row["Leader"]

    listed = _tool(TOPIC_COMMAND, broker, "--list").splitlines()
    assert topic in listed

    _tool(TOPIC_COMMAND, broker, "--alter", "--topic", topic, "--partitions", "5")
    admin = _admin(broker)
    _poll_until(
        lambda: len(admin.list_topics(topic, timeout=5).topics[topic].partitions) == 5,
        f"{topic} has 5 partitions",
    )

    _tool(TOPIC_COMMAND, broker, "--delete", "--topic", topic)
    _poll_until(lambda: topic not in admin.list_topics(timeout=5).topics, f"{topic} deleted")
    gone = run_kafka_tool(
        TOPIC_COMMAND, "--bootstrap-server", broker.bootstrap, "--describe", "--topic", topic,
        timeout=TOOL_TIMEOUT,
    )
    assert gone.returncode != 0, _failure(gone)
    assert f"Topic '{topic}' does not exist" in gone.stdout + gone.stderr, _failure(gone)


def test_console_producer_consumer_round_trip_then_group_describe(broker: BrokerProcess) -> None:
    topic, group = _unique("compat-console"), _unique("compat-console-group")
    _create_topic(broker, topic, 3)
    records = [(f"key-{index}", f"value {index}, with spaces") for index in range(6)]

    produced = run_kafka_tool(
        CONSOLE_PRODUCER, "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=|",
        "--command-property", "acks=all",
        input="".join(f"{key}|{value}\n" for key, value in records), timeout=TOOL_TIMEOUT,
    )
    assert produced.returncode == 0, _failure(produced)
    assert "ERROR" not in produced.stderr, _failure(produced)

    consumed = run_kafka_tool(
        CONSOLE_CONSUMER, "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--group", group, "--from-beginning", "--max-messages", str(len(records)),
        "--timeout-ms", "20000",
        "--formatter-property", "print.key=true", "--formatter-property", "key.separator=|",
        "--formatter-property", "print.partition=true",
        timeout=TOOL_TIMEOUT,
    )
    assert consumed.returncode == 0, _failure(consumed)
    assert f"Processed a total of {len(records)} messages" in consumed.stderr, _failure(consumed)
    # Each line: "Partition:<n>|<key>|<value>" (print.partition, then print.key, one separator).
    seen = [line.split("|", 2) for line in consumed.stdout.splitlines() if line.strip()]
    assert all(len(fields) == 3 and fields[0].startswith("Partition:") for fields in seen), (
        consumed.stdout
    )
    assert sorted((key, value) for _, key, value in seen) == sorted(records)
    by_partition: dict[int, int] = {}
    for where, _, _ in seen:
        partition = int(where.removeprefix("Partition:"))
        by_partition[partition] = by_partition.get(partition, 0) + 1

    # The console consumer commits on close; kafka-consumer-groups reads those offsets back.
    described = run_kafka_tool(
        CONSUMER_GROUP_COMMAND, "--bootstrap-server", broker.bootstrap,
        "--describe", "--group", group, timeout=TOOL_TIMEOUT,
    )
    assert described.returncode == 0, _failure(described)
    assert f"Consumer group '{group}' has no active members." in (
        described.stdout + described.stderr
    ), _failure(described)
    rows = _table(described.stdout, "GROUP")
    assert sorted(int(row["PARTITION"]) for row in rows) == [0, 1, 2], described.stdout
    for row in rows:
        assert row["GROUP"] == group
        assert row["TOPIC"] == topic
        partition = int(row["PARTITION"])
        assert int(row["CURRENT-OFFSET"]) == by_partition.get(partition, 0), described.stdout
        assert row["LOG-END-OFFSET"] == row["CURRENT-OFFSET"]
        assert row["LAG"] == "0"
        assert row["CONSUMER-ID"] == "-"


def test_consumer_groups_reset_offsets_and_delete(broker: BrokerProcess) -> None:
    topic, group = _unique("compat-reset"), _unique("compat-reset-group")
    _create_topic(broker, topic, 2)
    _produce(broker, topic, [(f"k{index}", f"v{index}") for index in range(8)])
    consumer = _consumer(broker, group)
    consumer.subscribe([topic])
    received = 0
    deadline = time.monotonic() + 20
    while received < 8 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received += 1
    assert received == 8
    consumer.commit(asynchronous=False)
    consumer.close()
    before = _committed(broker, group, topic, 2)
    assert sum(before) == 8

    reset = _tool(
        CONSUMER_GROUP_COMMAND, broker, "--reset-offsets", "--group", group, "--topic", topic,
        "--to-earliest", "--execute",
    )
    rows = _table(reset, "GROUP")
    assert {(row["TOPIC"], row["PARTITION"], row["NEW-OFFSET"]) for row in rows} == {
        (topic, "0", "0"), (topic, "1", "0"),
    }
    assert _committed(broker, group, topic, 2) == [0, 0]

    deleted = _tool(CONSUMER_GROUP_COMMAND, broker, "--delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in deleted
    admin = _admin(broker)
    groups = admin.list_consumer_groups().result(timeout=10)
    assert group not in {listing.group_id for listing in groups.valid}


def test_consumer_groups_describe_members_of_a_running_console_consumer(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    topic, group = _unique("compat-members"), _unique("compat-members-group")
    _create_topic(broker, topic, 3)
    log_path = tmp_path / "console-consumer.log"
    with open(log_path, "wb") as log:
        running = subprocess.Popen(
            kafka_tool_command(
                CONSOLE_CONSUMER, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--group", group, "--timeout-ms", "60000",
            ),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        admin = _admin(broker)

        def assigned() -> bool:
            assert running.poll() is None, log_path.read_text(errors="replace")
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            return (
                len(description.members) == 1
                and description.members[0].assignment is not None
                and len(description.members[0].assignment.topic_partitions) == 3
            )

        _poll_until(assigned, f"the console consumer holds all of {topic}", timeout=30)
        members = _tool(
            CONSUMER_GROUP_COMMAND, broker, "--describe", "--group", group,
            "--members", "--verbose",
        )
        rows = _table(members, "GROUP")
        assert len(rows) == 1, members
        (member,) = rows
        assert member["GROUP"] == group
        assert member["CLIENT-ID"] == "console-consumer"
        assert member["CONSUMER-ID"].startswith("console-consumer-")
        assert member["HOST"] == "/127.0.0.1"  # as Apache Kafka prints it
        assert member["#PARTITIONS"] == "3"
        # A classic-protocol member, as Apache Kafka 4 describes one: no epochs, no target.
        assert member["CURRENT-ASSIGNMENT"] == f"{topic}:0,1,2", members
        assert member["CURRENT-EPOCH"] == member["TARGET-EPOCH"] == "-", members
        assert member["TARGET-ASSIGNMENT"] == "-", members
    finally:
        running.terminate()
        try:
            running.wait(20)
        except subprocess.TimeoutExpired:
            running.kill()
            running.wait()


def test_console_consumer_with_the_kip848_consumer_group_protocol(broker: BrokerProcess) -> None:
    topic, group = _unique("compat-kip848"), _unique("compat-kip848-group")
    _create_topic(broker, topic, 1)
    _produce(broker, topic, [("a", "1"), ("b", "2")])
    consumed = run_kafka_tool(
        CONSOLE_CONSUMER, "--bootstrap-server", broker.bootstrap, "--topic", topic,
        "--group", group, "--from-beginning", "--max-messages", "2", "--timeout-ms", "15000",
        "--command-property", "group.protocol=consumer",
        "--formatter-property", "print.key=true", "--formatter-property", "key.separator=|",
        timeout=TOOL_TIMEOUT,
    )
    assert "Processed a total of 2 messages" in consumed.stderr, _failure(consumed)
    assert sorted(consumed.stdout.split()) == ["a|1", "b|2"]


def test_group_member_host_is_reported_as_apache_kafka_does(broker: BrokerProcess) -> None:
    topic, group = _unique("compat-host"), _unique("compat-host-group")
    _create_topic(broker, topic, 1)
    consumer = _consumer(broker, group)
    consumer.subscribe([topic])
    try:
        admin = _admin(broker)

        def member_host() -> str | None:
            consumer.poll(0.1)
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            return description.members[0].host if description.members else None

        _poll_until(lambda: member_host() is not None, f"{group} has its member")
        assert member_host() == "/127.0.0.1"
    finally:
        consumer.close()


def test_kafka_topics_describe_reads_eligible_leader_replicas(broker: BrokerProcess) -> None:
    """kafka-topics --describe asks DescribeTopicPartitions (KIP-966), not Metadata: it prints
    the (empty) ELR lists where, against a broker without the API, it prints 'Elr: N/A'."""
    topic = _unique("compat-elr")
    _create_topic(broker, topic, 1)
    described = _tool(TOPIC_COMMAND, broker, "--describe", "--topic", topic).splitlines()
    (row,) = [_fields(line) for line in described[1:] if line.strip()]
    assert row["Elr"] == "", described
    assert row["LastKnownElr"] == "", described


def test_consumer_groups_describe_a_kip848_group_with_its_epochs(
    broker: BrokerProcess, tmp_path: Path
) -> None:
    """kafka-consumer-groups reads a consumer-protocol group through ConsumerGroupDescribe:
    member and target epochs and assignments, the group epoch and the server-side assignor."""
    topic, group = _unique("compat-kip848-describe"), _unique("compat-kip848-describe-group")
    _create_topic(broker, topic, 3)
    log_path = tmp_path / "console-consumer.log"
    with open(log_path, "wb") as log:
        running = subprocess.Popen(
            kafka_tool_command(
                CONSOLE_CONSUMER, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                "--group", group, "--timeout-ms", "60000",
                "--command-property", "group.protocol=consumer",
                "--command-property", "group.remote.assignor=range",
            ),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        def stable() -> bool:
            assert running.poll() is None, log_path.read_text(errors="replace")
            described = _tool(CONSUMER_GROUP_COMMAND, broker, "--describe", "--group", group,
                              "--state", "--verbose")
            if "does not exist" in described:  # the consumer has not joined yet
                return False
            state = _table(described, "GROUP")
            return bool(state) and state[0]["STATE"] == "Stable"

        _poll_until(stable, f"{group} is Stable", timeout=40)
        state = _table(_tool(CONSUMER_GROUP_COMMAND, broker, "--describe", "--group", group,
                             "--state", "--verbose"), "GROUP")
        assert state[0]["ASSIGNMENT-STRATEGY"] == "range", state
        assert state[0]["GROUP-EPOCH"] == state[0]["TARGET-ASSIGNMENT-EPOCH"] == "1", state
        members = _tool(
            CONSUMER_GROUP_COMMAND, broker, "--describe", "--group", group,
            "--members", "--verbose",
        )
        (member,) = _table(members, "GROUP")
        assert member["CURRENT-EPOCH"] == member["TARGET-EPOCH"] == "1", members
        assert member["CURRENT-ASSIGNMENT"] == member["TARGET-ASSIGNMENT"] == f"{topic}:0,1,2"
    finally:
        running.terminate()
        try:
            running.wait(20)
        except subprocess.TimeoutExpired:
            running.kill()
            running.wait()
