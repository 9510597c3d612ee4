"""Real clients over SSL listeners: confluent-kafka, kafka-python, aiokafka and kcat produce and
consume; the mTLS principal (through ssl.principal.mapping.rules) reaches the request context
(the audit line of an admin action names it); wrong CAs and untrusted client certificates are
refused; a certificate rotated on disk is served to new connections without a restart."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from tests.security.pki import Pki, broker_cert, first_certificate_der, make_pki, write_pair
from tests.support.brokers import BrokerProcess
from tests.support.clients import (
    aiokafka_consumer,
    aiokafka_producer,
    confluent_admin,
    confluent_consumer,
    confluent_producer,
    consume_all,
    kafka_python_consumer,
    kafka_python_producer,
)
from tests.support.waiting import eventually

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
MAPPING = "RULE:^CN=([^,]*),OU=Engineering,.*$/$1/L,DEFAULT"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def ssl_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A PLAINTEXT listener (--kafka-listen) and an SSL one asking for client certificates."""
    process = BrokerProcess(tmp_path_factory.mktemp("ssl-broker") / "data", (
        "--listener", "SSL=SSL://127.0.0.1:0", *pki.broker_flags("requested"),
        "--ssl-principal-mapping-rules", MAPPING,
    ))
    process.start()
    try:
        yield process
    finally:
        process.kill()


def ssl_bootstrap(broker: BrokerProcess) -> str:
    return f"127.0.0.1:{broker.listener_ports['SSL']}"


def librdkafka_ssl(pki: Pki, *, client: bool = True, ca: Path | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {"security.protocol": "SSL",
                                "ssl.ca.location": str(ca or pki.ca)}
    if client:
        settings |= {"ssl.certificate.location": str(pki.alice.cert),
                     "ssl.key.location": str(pki.alice.key)}
    return settings


def python_ssl_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.alice.cert), str(pki.alice.key))
    return context


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_confluent_kafka_produces_and_consumes_over_ssl(ssl_broker: BrokerProcess,
                                                        pki: Pki) -> None:
    bootstrap = ssl_bootstrap(ssl_broker)
    settings = librdkafka_ssl(pki)
    metadata = confluent_admin(bootstrap, settings).list_topics(timeout=10)
    # The answer holds the SSL listener's endpoint, not the PLAINTEXT one.
    assert [(b.host, b.port) for b in metadata.brokers.values()] == [
        ("127.0.0.1", ssl_broker.listener_ports["SSL"])]
    topic = topic_name("confluent-ssl")
    producer = confluent_producer(bootstrap, settings)
    for index in range(200):
        producer.produce(topic, value=b"%d" % index)
    assert producer.flush(20) == 0
    consumer = confluent_consumer(bootstrap, {**settings, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])  # a group: FindCoordinator answers on the SSL listener too
    values: list[bytes] = []

    def read_all() -> bool:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            values.append(message.value())
        return len(values) >= 200

    try:
        eventually(read_all, timeout=30, interval=0, message=lambda: f"{len(values)} read")
    finally:
        consumer.close()
    assert values == [b"%d" % index for index in range(200)]
    # Fetched over TLS: records from segment files, encrypted (no sendfile) — and over the
    # PLAINTEXT listener the same bytes.
    plain = consume_all(ssl_broker.bootstrap, topic, 1, 200)
    assert [m.value() for m in plain] == values


def test_kafka_python_over_ssl(ssl_broker: BrokerProcess, pki: Pki) -> None:
    bootstrap = ssl_bootstrap(ssl_broker)
    topic = topic_name("kafka-python-ssl")
    settings = {"security_protocol": "SSL", "ssl_context": python_ssl_context(pki)}
    producer = kafka_python_producer(bootstrap, **settings)
    for index in range(50):
        producer.send(topic, b"v%d" % index)
    producer.flush(20)
    producer.close()
    consumer = kafka_python_consumer(bootstrap, topic, auto_offset_reset="earliest",
                                     consumer_timeout_ms=15_000, **settings)
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) == 50:
            break
    consumer.close()
    assert values == [b"v%d" % index for index in range(50)]


async def test_aiokafka_over_ssl(ssl_broker: BrokerProcess, pki: Pki) -> None:
    bootstrap = ssl_bootstrap(ssl_broker)
    topic = topic_name("aiokafka-ssl")
    settings = {"security_protocol": "SSL", "ssl_context": python_ssl_context(pki)}
    producer = aiokafka_producer(bootstrap, **settings)
    await producer.start()
    try:
        for index in range(50):
            await producer.send_and_wait(topic, b"a%d" % index)
    finally:
        await producer.stop()
    consumer = aiokafka_consumer(bootstrap, topic, auto_offset_reset="earliest",
                                 group_id=topic, **settings)
    await consumer.start()
    values: list[bytes] = []
    try:
        while len(values) < 50:
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"nothing more after {len(values)} records"
            values += [m.value for messages in batches.values() for m in messages]
    finally:
        await consumer.stop()
    assert values == [b"a%d" % index for index in range(50)]


def test_kcat_over_ssl(ssl_broker: BrokerProcess, pki: Pki) -> None:
    assert KCAT is not None, "kcat missing: run tests/tools/install.sh"
    bootstrap = ssl_bootstrap(ssl_broker)
    topic = topic_name("kcat-ssl")
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={pki.ca}",
           "-X", f"ssl.certificate.location={pki.alice.cert}",
           "-X", f"ssl.key.location={pki.alice.key}"]

    def kcat(*args: str, stdin: str | None = None) -> str:
        result = subprocess.run([KCAT, "-b", bootstrap, *tls, *args], input=stdin,
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    kcat("-P", "-t", topic, stdin="one\ntwo\nthree\n")
    assert kcat("-C", "-t", topic, "-e", "-o", "beginning").split() == ["one", "two", "three"]


def _create_topic(bootstrap: str, settings: dict[str, Any], topic: str) -> None:
    client = confluent_admin(bootstrap, settings)  # must outlive the future
    futures = client.create_topics([NewTopic(topic, 1, 1)])
    futures[topic].result(20)


def test_client_certificate_subject_is_the_mapped_principal(ssl_broker: BrokerProcess,
                                                            pki: Pki) -> None:
    bootstrap = ssl_bootstrap(ssl_broker)
    with_cert, without_cert = topic_name("mtls"), topic_name("anonymous")
    _create_topic(bootstrap, librdkafka_ssl(pki), with_cert)
    _create_topic(bootstrap, librdkafka_ssl(pki, client=False), without_cert)
    # CN=alice,OU=Engineering,O=Acme → "alice" by the first rule (lower-cased).
    eventually(lambda: f"topic.create topic:{with_cert} by User:alice " in ssl_broker.log(),
               timeout=10, message=ssl_broker.log)
    # client auth "requested": no certificate is the anonymous principal, as in Kafka.
    eventually(lambda: f"topic.create topic:{without_cert} by User:ANONYMOUS " in
               ssl_broker.log(), timeout=10, message=ssl_broker.log)
    assert "by User:alice from 127.0.0.1 via SSL" in ssl_broker.log()


def test_a_client_trusting_another_ca_refuses_the_broker(ssl_broker: BrokerProcess,
                                                         pki: Pki) -> None:
    settings = {**librdkafka_ssl(pki, ca=pki.other_ca), "socket.timeout.ms": 3000}
    with pytest.raises(KafkaException):
        confluent_admin(ssl_bootstrap(ssl_broker), settings).list_topics(timeout=5)


@pytest.fixture
def required_broker(pki: Pki, start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    return start_broker("--listener", "SSL=SSL://127.0.0.1:0", *pki.broker_flags("required"))


def test_required_client_auth_refuses_untrusted_and_missing_certificates(
        required_broker: BrokerProcess, pki: Pki) -> None:
    bootstrap = ssl_bootstrap(required_broker)
    stranger = {**librdkafka_ssl(pki, client=False), "socket.timeout.ms": 3000,
                "ssl.certificate.location": str(pki.stranger.cert),
                "ssl.key.location": str(pki.stranger.key)}
    with pytest.raises(KafkaException):
        confluent_admin(bootstrap, stranger).list_topics(timeout=5)
    no_cert = {**librdkafka_ssl(pki, client=False), "socket.timeout.ms": 3000}
    with pytest.raises(KafkaException):
        confluent_admin(bootstrap, no_cert).list_topics(timeout=5)
    eventually(lambda: "TLS handshake with 127.0.0.1 on listener SSL failed" in
               required_broker.log(), timeout=10, message=required_broker.log)
    # A certificate of the trusted CA is served.
    metadata = confluent_admin(bootstrap, librdkafka_ssl(pki)).list_topics(timeout=10)
    assert list(metadata.brokers) == [1]


def _served_certificate(port: int, ca: Path) -> bytes | None:
    """The DER certificate a new TLS connection to ``port`` gets, if ``ca`` verifies it."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError:
        return None


def test_a_rotated_certificate_is_served_without_a_restart(
        pki: Pki, tmp_path: Path, start_broker: Callable[..., BrokerProcess]) -> None:
    old_authority = trustme.CA()
    old_ca = tmp_path / "old-ca.pem"
    old_authority.cert_pem.write_to_path(str(old_ca))
    served = write_pair(tmp_path, "served", broker_cert(old_authority))
    broker = start_broker("--listener", "SSL=SSL://127.0.0.1:0",
                          "--tls-cert", str(served.cert), "--tls-key", str(served.key))
    port = broker.listener_ports["SSL"]
    assert _served_certificate(port, old_ca) == first_certificate_der(served.cert)
    # Rotate in place: a certificate of the CA the clients trust. The key lands first, so
    # for a moment the files do not match (the broker keeps the old pair then).
    (tmp_path / "next").mkdir()
    rotated = write_pair(tmp_path / "next", "rotated", broker_cert(pki.authority))
    shutil.copy(rotated.key, served.key)
    shutil.copy(rotated.cert, served.cert)
    expected = first_certificate_der(rotated.cert)
    eventually(lambda: _served_certificate(port, pki.ca) == expected, timeout=10,
               message=lambda: "the rotated certificate\n" + broker.log())
    metadata = confluent_admin(ssl_bootstrap(broker), librdkafka_ssl(pki)).list_topics(timeout=10)
    assert list(metadata.brokers) == [1]
    assert "TLS files changed: new connections get the new certificate" in broker.log()
