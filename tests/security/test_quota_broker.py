"""Client quotas inside one broker, over real sockets: AlterClientQuotas/DescribeClientQuotas
(KIP-546), request-percentage quotas (KIP-124) and KIP-219's muted channel, user quotas for
principals other than ANONYMOUS (through the pipeline, as a SASL or TLS listener will hand them
over), quotas surviving a restart, and KIP-612's connection creation rates."""

from __future__ import annotations

import asyncio
import datetime
import io
import socket
import struct
import time
from pathlib import Path
from typing import Any

from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_writer
from kio.static.primitive import i16, i32

from headrace.app import BrokerApp
from headrace.core.requests import Session
from headrace.core.security import Principal
from headrace.observability.metrics import counter_value
from tests.server.wire import WireClient
from tests.support.brokers import in_process_broker


def _entity(**parts: str | None) -> tuple[dict[str, Any], ...]:
    return tuple({"entity_type": kind.replace("_", "-"), "entity_name": name}
                 for kind, name in parts.items())


async def _alter(client: WireClient, parts: tuple[dict[str, Any], ...],
                 ops: dict[str, float | None], validate_only: bool = False) -> Any:
    module = load_request_schema(49, 1)
    import sys

    classes = sys.modules[module.__module__]
    return await client.request(49, 1, validate_only=validate_only, entries=(
        classes.EntryData(
            entity=tuple(classes.EntityData(**part) for part in parts),
            ops=tuple(classes.OpData(key=key, value=value or 0.0, remove=value is None)
                      for key, value in ops.items())),))


async def _describe(client: WireClient, components: tuple[tuple[str, int, str | None], ...],
                    strict: bool = False) -> Any:
    import sys

    classes = sys.modules[load_request_schema(48, 1).__module__]
    return await client.request(48, 1, strict=strict, components=tuple(
        classes.ComponentData(entity_type=kind, match_type=match_type, match=match)
        for kind, match_type, match in components))


def _described(response: Any) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    assert response.error_code == ErrorCode.none, response.error_message
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity):
            {v.key: float(v.value) for v in entry.values} for entry in response.entries}


async def test_alter_and_describe_client_quotas_round_trip_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    async with in_process_broker(data) as running:
        client = await WireClient.connect(running.app.kafka_port)
        try:
            done = await _alter(client, _entity(user="alice"), {"producer_byte_rate": 1024})
            assert done.entries[0].error_code == ErrorCode.none
            await _alter(client, _entity(user=None, client_id=None),
                         {"consumer_byte_rate": 2048, "request_percentage": 12.5})
            dry = await _alter(client, _entity(client_id="app"), {"producer_byte_rate": 9},
                               validate_only=True)
            assert dry.entries[0].error_code == ErrorCode.none
            bad = await _alter(client, _entity(user="alice"), {"producer_byte_rate": 1.5})
            assert bad.entries[0].error_code == ErrorCode.invalid_request
            assert "fractional" in bad.entries[0].error_message
            everything = _described(await _describe(client, ()))
            assert everything == {
                (("user", "alice"),): {"producer_byte_rate": 1024.0},
                (("client-id", None), ("user", None)): {
                    "consumer_byte_rate": 2048.0, "request_percentage": 12.5},
            }
            only_users = _described(await _describe(client, (("user", 2, None),), strict=True))
            assert list(only_users) == [(("user", "alice"),)]
            unsupported = await _describe(client, (("group", 2, None),))
            assert unsupported.error_code == ErrorCode.unsupported_version
            removed = await _alter(client, _entity(user="alice"), {"producer_byte_rate": None})
            assert removed.entries[0].error_code == ErrorCode.none
        finally:
            await client.close()
    async with in_process_broker(data) as restarted:
        client = await WireClient.connect(restarted.app.kafka_port)
        try:
            assert _described(await _describe(client, ())) == {
                (("client-id", None), ("user", None)): {
                    "consumer_byte_rate": 2048.0, "request_percentage": 12.5},
            }
        finally:
            await client.close()


async def test_a_request_percentage_quota_throttles_and_mutes_the_connection(
    tmp_path: Path,
) -> None:
    async with in_process_broker(tmp_path / "data", quota_window_num=2) as running:
        app = running.app
        await app.client_quotas.alter([([("client-id", "wire-test")],
                                        [("request_percentage", 0.01)])], False)
        client = await WireClient.connect(app.kafka_port)
        try:
            throttle = datetime.timedelta(0)
            deadline = time.monotonic() + 30
            while not throttle and time.monotonic() < deadline:
                metadata = await client.request(3, 12, topics=None,
                                                allow_auto_topic_creation=False,
                                                include_topic_authorized_operations=False)
                throttle = metadata.throttle_time
            assert throttle > datetime.timedelta(0), "never throttled"
            assert throttle <= datetime.timedelta(seconds=1)  # capped at one window
            sent = time.monotonic()
            await client.request(18, 3, client_software_name="t", client_software_version="1")
            waited = time.monotonic() - sent
            # KIP-219: nothing more is read from the client until its throttle has passed.
            assert waited >= throttle.total_seconds() * 0.9
        finally:
            await client.close()
        assert counter_value(app.metrics.registry, "headrace_quota_throttled_total",
                             {"quota": "request"}) >= 1


def _frame(api_key: int, version: int, client_id: str, **fields: Any) -> bytes:
    schema = load_request_schema(api_key, version)
    header_cls = schema.__header_schema__
    buffer = io.BytesIO()
    entity_writer(header_cls)(buffer, header_cls(
        request_api_key=i16(api_key), request_api_version=i16(version),
        correlation_id=i32(1), client_id=client_id))
    entity_writer(schema)(buffer, schema(**fields))
    return buffer.getvalue()


async def _throttled(app: BrokerApp, principal: Principal, client_id: str, times: int) -> int:
    """The largest throttle of ``times`` Metadata requests by ``principal``."""
    session = Session("PLAINTEXT", "127.0.0.1", principal)
    frame = _frame(3, 12, client_id, topics=None, allow_auto_topic_creation=False,
                   include_topic_authorized_operations=False)
    worst = 0
    for _ in range(times):
        outgoing = await app.pipeline.process(frame, session)
        assert outgoing is not None
        worst = max(worst, outgoing.throttle_ms)
        outgoing.done()
    return worst


async def test_user_quotas_follow_the_principal_and_fall_back_to_the_default(
    tmp_path: Path,
) -> None:
    async with in_process_broker(tmp_path / "data", quota_window_num=2) as running:
        app = running.app
        await app.client_quotas.alter([
            ([("user", "alice")], [("request_percentage", 0.001)]),
            ([("user", None)], [("request_percentage", 1000.0)]),
        ], False)
        alice, bob = Principal("User", "alice"), Principal("User", "bob")
        assert await _throttled(app, alice, "any", 200) > 0
        assert await _throttled(app, bob, "any", 200) == 0  # the generous default applies
        # A user quota is shared by all of the user's client ids.
        assert await _throttled(app, alice, "another", 1) > 0


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _answers(sock: socket.socket) -> bool:
    """Whether the broker answers an ApiVersions on ``sock`` (False: it closed it)."""
    payload = _frame(18, 0, "rate-test")
    try:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        return len(sock.recv(4)) == 4
    except OSError:
        return False


async def test_connection_creation_rates_delay_broker_wide_and_close_per_ip(
    tmp_path: Path,
) -> None:
    async with in_process_broker(tmp_path / "data", max_connection_creation_rate=4,
                                 quota_window_num=2) as running:
        app = running.app
        port = app.kafka_port

        def open_answered(count: int) -> tuple[float, int]:
            started, answered, socks = time.monotonic(), 0, []
            try:
                for _ in range(count):
                    sock = _connect(port)
                    socks.append(sock)
                    answered += _answers(sock)
            finally:
                for sock in socks:
                    sock.close()
            return time.monotonic() - started, answered

        # Broker-wide: 12 connections at 4/s (one window free) are all served, but late.
        elapsed, answered = await asyncio.to_thread(open_answered, 12)
        assert answered == 12
        assert elapsed >= 1.0
        assert counter_value(app.metrics.registry, "headrace_connection_creation_throttled_total",
                             {"scope": "broker"}) >= 1
        # Per IP: over 1 connection/s from 127.0.0.1, connections are closed instead.
        app.connection_policy.connection_rates.max_rate = None
        await app.client_quotas.alter(
            [([("ip", "127.0.0.1")], [("connection_creation_rate", 1)])], False)
        _, answered = await asyncio.to_thread(open_answered, 6)
        assert 1 <= answered < 6
        assert counter_value(app.metrics.registry, "headrace_connection_creation_throttled_total",
                             {"scope": "ip"}) >= 1
