"""ACLs against real clients: a ``headrace broker --authorizer acl`` whose ACLs name
``User:ANONYMOUS`` (every PLAINTEXT connection), driven by confluent-kafka, kafka-python,
aiokafka, ``headrace acls`` and Kafka's own ``kafka-acls`` (AclCommand of Kafka 4.4)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from headrace.core.security import CLUSTER_NAME, Operation
from headrace.core.security import ResourceType as Resource
from headrace.security.acls import AclBinding as Binding
from headrace.security.acls import PatternType, Permission
from headrace.security.authorizer import AclStore
from headrace.security.records import FileSecurityRecords
from tests.peers.kafka import kafka_missing_reason, run_kafka_tool
from tests.support.brokers import BrokerProcess, subprocess_env
from tests.support.waiting import eventually

ANONYMOUS = "User:ANONYMOUS"
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"


def _seed(data_dir: Path, *grants: tuple[Resource, str, PatternType, Operation]) -> None:
    """ACLs for User:ANONYMOUS written to the data dir before the broker starts (with deny by
    default nobody could create the first one over the wire)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = AclStore(FileSecurityRecords(data_dir))
    asyncio.run(store.create(
        Binding(rtype, name, pattern, ANONYMOUS, "*", operation, Permission.ALLOW)
        for rtype, name, pattern, operation in grants))


ADMIN_GRANTS = [(Resource.CLUSTER, CLUSTER_NAME, PatternType.LITERAL, op)
                for op in (Operation.CREATE, Operation.ALTER, Operation.DESCRIBE)]


@pytest.fixture
def acl_broker(tmp_path: Path) -> Callable[..., BrokerProcess]:
    started: list[BrokerProcess] = []

    def start(*grants: tuple[Resource, str, PatternType, Operation]) -> BrokerProcess:
        data_dir = tmp_path / "data"
        _seed(data_dir, *ADMIN_GRANTS, *grants)
        process = BrokerProcess(data_dir, ("--authorizer", "acl")).start()
        started.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in started:
        process.kill()


def _admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10_000})


def _create_topics(broker: BrokerProcess, *names: str) -> None:
    admin = _admin(broker)
    futures = admin.create_topics([NewTopic(n, 1, 1) for n in names], operation_timeout=10)
    for name in names:
        futures[name].result(timeout=15)


def test_confluent_kafka_is_refused_what_anonymous_may_not_do(
        acl_broker: Callable[..., BrokerProcess]) -> None:
    broker = acl_broker((Resource.TOPIC, "open-", PatternType.PREFIXED, Operation.ALL),
                        (Resource.GROUP, "allowed", PatternType.LITERAL, Operation.READ))
    _create_topics(broker, "open-a", "secret")
    # Metadata leaves out the topic ANONYMOUS may not describe.
    listed = _admin(broker).list_topics(timeout=10).topics
    assert "open-a" in listed and "secret" not in listed
    # A produce to it is refused with TOPIC_AUTHORIZATION_FAILED.
    outcomes: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 10_000})
    producer.produce("secret", b"x", on_delivery=lambda error, _msg: outcomes.append(error))
    producer.produce("open-a", b"y", on_delivery=lambda error, _msg: outcomes.append(error))
    assert producer.flush(20) == 0
    codes = sorted((e.code() if e else 0) for e in outcomes)
    assert codes == [0, KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # A consumer of a group it may not read gets GROUP_AUTHORIZATION_FAILED.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "denied",
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["open-a"])
        errors: list[int] = []

        def refused() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is not None:
                errors.append(message.error().code())
            return KafkaError.GROUP_AUTHORIZATION_FAILED in errors

        eventually(refused, timeout=30, message=lambda: f"errors seen: {errors}")
    finally:
        consumer.close()
    # The allowed group consumes.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "allowed",
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe(["open-a"])
        received: list[bytes] = []

        def consumed() -> bool:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                received.append(message.value())
            return received == [b"y"]

        eventually(consumed, timeout=30, message=lambda: f"received: {received}")
    finally:
        consumer.close()
    log = broker.log_path.read_text(errors="replace")
    assert "denied DESCRIBE on topic:secret by User:ANONYMOUS from 127.0.0.1" in log, log[-3000:]


def test_kafka_python_and_aiokafka_get_the_authorization_errors(
        acl_broker: Callable[..., BrokerProcess]) -> None:
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    broker = acl_broker((Resource.TOPIC, "open-", PatternType.PREFIXED, Operation.ALL))
    _create_topics(broker, "open-b", "secret")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_block_ms=10_000)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("secret", b"x").get(timeout=20)
        producer.send("open-b", b"x").get(timeout=20)
    finally:
        producer.close()

    async def consume_in_denied_group() -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.errors import GroupAuthorizationFailedError

        consumer = AIOKafkaConsumer("open-b", bootstrap_servers=broker.bootstrap,
                                    group_id="nobody-may", auto_offset_reset="earliest")
        try:
            with pytest.raises(GroupAuthorizationFailedError):  # from start() or the first get
                await consumer.start()
                await asyncio.wait_for(consumer.getone(), 30)
        finally:
            await consumer.stop()

    asyncio.run(consume_in_denied_group())


def _binding(topic: str, principal: str = "User:bob") -> AclBinding:
    return AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
                      AclOperation.READ, AclPermissionType.ALLOW)


def _all_topic_acls() -> AclBindingFilter:
    return AclBindingFilter(ResourceType.TOPIC, None, ResourcePatternType.ANY, None, None,
                            AclOperation.ANY, AclPermissionType.ANY)


def test_admin_client_acls_round_trip_and_persist_across_restart(
        acl_broker: Callable[..., BrokerProcess]) -> None:
    broker = acl_broker()
    admin = _admin(broker)
    created = admin.create_acls([_binding("t1"), _binding("t2")], request_timeout=10)
    for future in created.values():
        assert future.result(timeout=15) is None
    invalid = AclBinding(ResourceType.BROKER, "not-the-cluster", ResourcePatternType.LITERAL,
                         "User:bob", "*", AclOperation.ALTER, AclPermissionType.ALLOW)
    with pytest.raises(Exception, match="kafka-cluster"):
        admin.create_acls([invalid], request_timeout=10)[invalid].result(timeout=15)
    described = admin.describe_acls(_all_topic_acls(), request_timeout=10).result(timeout=15)
    assert sorted(b.name for b in described) == ["t1", "t2"]
    broker.restart()
    admin = _admin(broker)
    described = admin.describe_acls(_all_topic_acls(), request_timeout=10).result(timeout=15)
    assert sorted(b.name for b in described) == ["t1", "t2"]
    only_t1 = AclBindingFilter(ResourceType.TOPIC, "t1", ResourcePatternType.LITERAL, None,
                               None, AclOperation.ANY, AclPermissionType.ANY)
    deleted = admin.delete_acls([only_t1], request_timeout=10)[only_t1].result(timeout=15)
    assert [b.name for b in deleted] == ["t1"]
    described = admin.describe_acls(_all_topic_acls(), request_timeout=10).result(timeout=15)
    assert [b.name for b in described] == ["t2"]


def _headrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "headrace", *args], capture_output=True,
                          text=True, timeout=60, env=subprocess_env())


def test_headrace_acls_creates_lists_and_deletes(
        acl_broker: Callable[..., BrokerProcess]) -> None:
    broker = acl_broker()
    created = _headrace("acls", "create", "--topic", "orders", "--principal", "User:carol",
                        "--operation", "read", "--operation", "describe",
                        "-b", broker.bootstrap)
    assert created.returncode == 0, created.stderr
    listed = _headrace("acls", "list", "--principal", "User:carol", "-o", "json",
                       "-b", broker.bootstrap)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["operation"] for r in rows) == ["DESCRIBE", "READ"]
    assert {r["name"] for r in rows} == {"orders"}
    everything = _headrace("acls", "delete", "-b", broker.bootstrap)
    assert everything.returncode == 1 and "refusing" in everything.stderr
    deleted = _headrace("acls", "delete", "--topic", "orders", "--operation", "read",
                        "-b", broker.bootstrap)
    assert deleted.returncode == 0, deleted.stderr
    listed = _headrace("acls", "list", "--principal", "User:carol", "-o", "json",
                       "-b", broker.bootstrap)
    assert [r["operation"] for r in json.loads(listed.stdout)] == ["DESCRIBE"]


@pytest.mark.skipif(kafka_missing_reason() is not None, reason=str(kafka_missing_reason()))
def test_kafkas_acl_command_adds_lists_and_removes(
        acl_broker: Callable[..., BrokerProcess]) -> None:
    broker = acl_broker()
    topic = f"audited-{uuid.uuid4().hex[:6]}"

    def tool(*args: str) -> str:
        done = run_kafka_tool(ACL_COMMAND, "--bootstrap-server", broker.bootstrap, *args,
                              timeout=90)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        return done.stdout

    tool("--add", "--allow-principal", "User:dave", "--operation", "Read", "--operation",
         "Write", "--topic", topic)
    tool("--add", "--deny-principal", "User:eve", "--operation", "All",
         "--resource-pattern-type", "prefixed", "--group", "billing-")
    listing = tool("--list", "--topic", topic)
    assert "User:dave" in listing and "READ" in listing and "WRITE" in listing
    admin = _admin(broker)  # held until the result: a dropped client cancels its futures
    described = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
        AclPermissionType.ANY), request_timeout=10).result(timeout=15)
    found = {(b.restype.name, b.name, b.resource_pattern_type.name, b.principal,
              b.operation.name, b.permission_type.name) for b in described}
    assert ("GROUP", "billing-", "PREFIXED", "User:eve", "ALL", "DENY") in found
    assert ("TOPIC", topic, "LITERAL", "User:dave", "WRITE", "ALLOW") in found
    tool("--remove", "--force", "--topic", topic)
    assert topic not in tool("--list")
