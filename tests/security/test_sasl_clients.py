"""Real clients authenticate over SASL_PLAINTEXT with PLAIN and SCRAM-SHA-256/512, produce and
consume; a wrong password is refused (SASL_AUTHENTICATION_FAILED) and audited without the
password. Clients: confluent-kafka (librdkafka), kafka-python, aiokafka, kcat, KafkaJS."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from tests.security.sasl_support import MECHANISMS, PASSWORD, USER, confluent_sasl
from tests.support.brokers import BrokerProcess
from tests.support.clients import (
    aiokafka_consumer,
    aiokafka_producer,
    confluent_admin,
    confluent_consumer,
    confluent_producer,
    kafka_python_consumer,
    kafka_python_producer,
)
from tests.support.waiting import eventually

KAFKAJS = Path(__file__).resolve().parents[1] / "peers" / "kafkajs"


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create(bootstrap: str, topic: str, mechanism: str = "SCRAM-SHA-256") -> None:
    admin = confluent_admin(bootstrap, confluent_sasl(mechanism, **{"socket.timeout.ms": 5000}))
    from confluent_kafka.admin import NewTopic

    admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=15)[topic].result(20)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_produces_and_consumes(sasl_broker: BrokerProcess, mechanism: str) -> None:
    topic = _topic("confluent")
    _create(sasl_broker.bootstrap, topic, mechanism)
    producer = confluent_producer(sasl_broker.bootstrap, confluent_sasl(mechanism))
    producer.produce(topic, f"via {mechanism}".encode())
    assert producer.flush(20) == 0
    consumer = confluent_consumer(sasl_broker.bootstrap, confluent_sasl(
        mechanism, **{"auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    try:
        def read() -> bytes | None:
            message = consumer.poll(0.5)
            return message.value() if message is not None and message.error() is None else None

        assert eventually(read, timeout=30, interval=0,
                          message="the record back") == f"via {mechanism}".encode()
    finally:
        consumer.close()


def test_confluent_wrong_password_is_refused_and_audited(sasl_broker: BrokerProcess) -> None:
    errors: list[KafkaError] = []
    wrong = "not-" + uuid.uuid4().hex
    producer = confluent_producer(sasl_broker.bootstrap, confluent_sasl(
        "SCRAM-SHA-512", password=wrong, error_cb=errors.append))
    producer.produce("never", b"x")
    eventually(lambda: [producer.poll(0.2)] and errors, timeout=20,
               message="an authentication error")
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert "invalid credentials" in errors[0].str()
    eventually(lambda: "authenticate sasl:SCRAM-SHA-512 by User:alice from 127.0.0.1"
               in sasl_broker.log(), timeout=10, message="the audit line")
    assert wrong not in sasl_broker.log()
    producer.purge()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_produces_and_consumes(sasl_broker: BrokerProcess, mechanism: str) -> None:
    topic = _topic("kafka-python")
    _create(sasl_broker.bootstrap, topic)
    sasl: dict[str, Any] = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
                            "sasl_plain_username": USER, "sasl_plain_password": PASSWORD}
    producer = kafka_python_producer(sasl_broker.bootstrap, **sasl)
    producer.send(topic, b"kafka-python").get(timeout=20)
    producer.close()
    consumer = kafka_python_consumer(sasl_broker.bootstrap, topic, auto_offset_reset="earliest",
                                     consumer_timeout_ms=15000, **sasl)
    try:
        assert next(iter(consumer)).value == b"kafka-python"
    finally:
        consumer.close()


def test_kafka_python_wrong_password_is_refused(sasl_broker: BrokerProcess) -> None:
    from kafka.errors import KafkaError as PythonKafkaError

    refusals = sasl_broker.log().count("authenticate sasl:PLAIN by User:alice")
    with pytest.raises(PythonKafkaError):
        kafka_python_producer(sasl_broker.bootstrap, security_protocol="SASL_PLAINTEXT",
                              sasl_mechanism="PLAIN", sasl_plain_username=USER,
                              sasl_plain_password="wrong", max_block_ms=3000,
                              reconnect_backoff_ms=50, reconnect_backoff_max_ms=200)
    assert sasl_broker.log().count("authenticate sasl:PLAIN by User:alice") > refusals


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka_produces_and_consumes(sasl_broker: BrokerProcess, mechanism: str) -> None:
    topic = _topic("aiokafka")
    _create(sasl_broker.bootstrap, topic)
    sasl: dict[str, Any] = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": mechanism,
                            "sasl_plain_username": USER, "sasl_plain_password": PASSWORD}

    async def roundtrip() -> bytes:
        producer = aiokafka_producer(sasl_broker.bootstrap, **sasl)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"aiokafka")
        finally:
            await producer.stop()
        consumer = aiokafka_consumer(sasl_broker.bootstrap, topic, auto_offset_reset="earliest",
                                     **sasl)
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 20)
            return bytes(message.value or b"")
        finally:
            await consumer.stop()

    assert asyncio.run(roundtrip()) == b"aiokafka"


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kcat_produces_and_consumes(sasl_broker: BrokerProcess, mechanism: str) -> None:
    topic = _topic("kcat")
    _create(sasl_broker.bootstrap, topic)
    auth = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
            "-X", f"sasl.username={USER}", "-X", f"sasl.password={PASSWORD}"]
    subprocess.run(["kcat", "-b", sasl_broker.bootstrap, *auth, "-P", "-t", topic],
                   input=b"from-kcat\n", check=True, timeout=30)
    read = subprocess.run(["kcat", "-b", sasl_broker.bootstrap, *auth, "-C", "-t", topic,
                           "-o", "beginning", "-c", "1", "-e"],
                          capture_output=True, check=True, timeout=30)
    assert read.stdout.strip() == b"from-kcat"


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed")
def test_kcat_wrong_password_fails(sasl_broker: BrokerProcess) -> None:
    done = subprocess.run(
        ["kcat", "-b", sasl_broker.bootstrap, "-X", "security.protocol=SASL_PLAINTEXT",
         "-X", "sasl.mechanisms=PLAIN", "-X", f"sasl.username={USER}",
         "-X", "sasl.password=wrong", "-L", "-m", "5"],
        capture_output=True, timeout=30)
    assert done.returncode != 0
    assert b"Authentication failed" in done.stderr


def _kafkajs_modules() -> Path | None:
    lock = hashlib.sha256((KAFKAJS / "package-lock.json").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("HEADRACE_PEER_CACHE", Path.home() / ".cache/headrace-peers"))
    home = cache / f"kafkajs-{lock}"
    return home / "node_modules" if (home / ".installed").exists() else None


def _kafkajs(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    modules = _kafkajs_modules()
    if modules is None or shutil.which("node") is None:
        pytest.skip("KafkaJS peer not installed (bash tests/tools/install.d/kafkajs.sh)")
    return subprocess.run(["node", str(KAFKAJS / "sasl.js"), bootstrap, *args],
                          env={**os.environ, "NODE_PATH": str(modules)},
                          capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafkajs_produces_and_consumes(sasl_broker: BrokerProcess, mechanism: str) -> None:
    topic = _topic("kafkajs")
    _create(sasl_broker.bootstrap, topic)
    done = _kafkajs(sasl_broker.bootstrap, topic, mechanism.lower(), USER, PASSWORD, "from-js")
    assert done.returncode == 0, done.stderr
    assert "from-js" in json.loads(done.stdout.strip().splitlines()[-1])


def test_kafkajs_wrong_password_is_refused(sasl_broker: BrokerProcess) -> None:
    done = _kafkajs(sasl_broker.bootstrap, "never", "scram-sha-256", USER, "wrong", "x")
    assert done.returncode == 2, done.stderr
    refusal = json.loads(done.stdout.strip().splitlines()[-1])
    assert refusal["error"] == "KafkaJSSASLAuthenticationError", refusal
    assert "invalid credentials" in refusal["message"], refusal
