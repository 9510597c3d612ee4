"""KIP-368 re-authentication: with connections.max.reauth.ms the broker tells clients their
session lifetime, librdkafka re-authenticates on its connections before it ends (counted by
``headrace_sasl_authentications_total``), a connection that does not is closed at its next
request, and a bearer token's expiry bounds the session."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
import uuid
from collections.abc import Callable

from kio.schema.errors import ErrorCode

from tests.security.sasl_support import PASSWORD, USER, confluent_sasl, token
from tests.server.wire import WireClient
from tests.support.brokers import BrokerProcess
from tests.support.clients import confluent_producer
from tests.support.waiting import eventually

METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 17, 36


def _metric(broker: BrokerProcess, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics",
                                  timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if line.split("{")[0].split(" ")[0] == name and all(
                found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_librdkafka_reauthenticates_before_the_session_ends(
        start_sasl_broker: Callable[..., BrokerProcess]) -> None:
    broker = start_sasl_broker("--connections-max-reauth-ms", "1500")
    producer = confluent_producer(broker.bootstrap, confluent_sasl("SCRAM-SHA-256"))
    topic = f"reauth-{uuid.uuid4().hex[:8]}"
    producer.produce(topic, b"first")
    assert producer.flush(20) == 0
    successes = "headrace_sasl_authentications_total"
    first = _metric(broker, successes, mechanism="SCRAM-SHA-256", result="success")
    connections = _metric(broker, "headrace_connections_total")

    def reauthenticated() -> bool:
        producer.produce(topic, b"more")
        producer.poll(0.2)
        return _metric(broker, successes, mechanism="SCRAM-SHA-256",
                       result="success") >= first + 2

    eventually(reauthenticated, timeout=30, interval=0.2,
               message="two more SCRAM authentications (re-authentication)")
    assert producer.flush(20) == 0
    # The same connections re-authenticated: none was closed and opened again.
    assert _metric(broker, "headrace_connections_total") == connections
    assert "after the SASL session expired" not in broker.log()


async def _plain_session(port: int) -> tuple[WireClient, int]:
    wire = await WireClient.connect(port)
    await wire.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
    done = await wire.request(SASL_AUTHENTICATE, 2,
                              auth_bytes=b"\0" + USER.encode() + b"\0" + PASSWORD.encode())
    assert done.error_code == ErrorCode.none
    return wire, round(done.session_lifetime.total_seconds() * 1000)


def test_a_connection_that_does_not_reauthenticate_is_closed(
        start_sasl_broker: Callable[..., BrokerProcess]) -> None:
    broker = start_sasl_broker("--connections-max-reauth-ms", "600")

    async def scenario() -> None:
        wire, lifetime = await _plain_session(broker.kafka_port)
        assert lifetime == 600
        # Re-authenticating within the lifetime is served and starts a new session.
        await wire.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
        again = await wire.request(SASL_AUTHENTICATE, 2, auth_bytes=b"\0alice\0" +
                                   PASSWORD.encode())
        assert again.error_code == ErrorCode.none
        started = time.monotonic()
        while True:  # requests are served until the session ends, then the connection closes
            wire.send(METADATA, 4, topics=(), allow_auto_topic_creation=False)
            try:
                await wire.receive(METADATA, 4, wait_seconds=5)
            except asyncio.IncompleteReadError:
                break
            assert time.monotonic() - started < 10, "still served long after expiry"
            await asyncio.sleep(0.05)
        assert time.monotonic() - started >= 0.5
        await wire.close()

    asyncio.run(scenario())
    assert "after the SASL session expired without re-authentication" in broker.log()


def test_a_bearer_token_bounds_the_session(sasl_broker: BrokerProcess) -> None:
    async def scenario() -> int:
        wire = await WireClient.connect(sasl_broker.kafka_port)
        await wire.request(SASL_HANDSHAKE, 1, mechanism="OAUTHBEARER")
        jwt, _ = token(lifetime=60)
        done = await wire.request(SASL_AUTHENTICATE, 2,
                                  auth_bytes=f"n,,\x01auth=Bearer {jwt}\x01\x01".encode())
        assert done.error_code == ErrorCode.none, done.error_message
        await wire.close()
        return round(done.session_lifetime.total_seconds() * 1000)

    lifetime = asyncio.run(scenario())
    assert 50_000 <= lifetime <= 60_000
