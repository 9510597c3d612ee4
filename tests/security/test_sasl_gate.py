"""The pipeline's authenticate step on a SASL listener, over a real socket: before
authentication only ApiVersions and the SASL APIs are served, anything else (or an oversized
frame) closes the connection; a refusal is SASL_AUTHENTICATION_FAILED and then a hang-up;
SaslHandshake v0's bare tokens work."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator

import pytest
from kio.schema.errors import ErrorCode

from tests.security.sasl_support import PASSWORD, USER
from tests.server.wire import WireClient
from tests.support.brokers import BrokerProcess

METADATA, API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 3, 18, 17, 36


@pytest.fixture
async def wire(sasl_broker: BrokerProcess) -> AsyncIterator[WireClient]:
    client = await WireClient.connect(sasl_broker.kafka_port)
    try:
        yield client
    finally:
        await client.close()


def _plain(password: str) -> bytes:
    return b"\0" + USER.encode() + b"\0" + password.encode()


async def _metadata(wire: WireClient) -> object:
    return await wire.request(METADATA, 4, topics=(), allow_auto_topic_creation=False)


async def test_a_request_before_authentication_closes_the_connection(wire: WireClient) -> None:
    wire.send(METADATA, 4, topics=(), allow_auto_topic_creation=False)
    assert await wire.is_closed_by_peer()


async def test_api_versions_is_served_and_advertises_the_sasl_apis(wire: WireClient) -> None:
    response = await wire.request(API_VERSIONS, 3, client_software_name="t",
                                  client_software_version="1")
    keys = {entry.api_key: (entry.min_version, entry.max_version)
            for entry in response.api_keys}
    assert keys[SASL_HANDSHAKE] == (0, 1)
    assert keys[SASL_AUTHENTICATE] == (0, 2)
    assert keys[50] == (0, 0) and keys[51] == (0, 0)


async def test_plain_authentication_then_requests_flow(wire: WireClient) -> None:
    handshake = await wire.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
    assert handshake.error_code == ErrorCode.none
    assert "SCRAM-SHA-512" in handshake.mechanisms
    done = await wire.request(SASL_AUTHENTICATE, 2, auth_bytes=_plain(PASSWORD))
    assert done.error_code == ErrorCode.none
    assert done.session_lifetime.total_seconds() == 0  # connections.max.reauth.ms=0
    assert (await _metadata(wire)).brokers  # type: ignore[attr-defined]


async def test_wrong_password_is_refused_with_58_then_closed(wire: WireClient) -> None:
    await wire.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
    refused = await wire.request(SASL_AUTHENTICATE, 2, auth_bytes=_plain("wrong"))
    assert refused.error_code == ErrorCode.sasl_authentication_failed
    assert "invalid credentials" in refused.error_message
    assert await wire.is_closed_by_peer()


async def test_unknown_mechanism_is_refused_with_the_list(wire: WireClient) -> None:
    handshake = await wire.request(SASL_HANDSHAKE, 1, mechanism="GSSAPI")
    assert handshake.error_code == ErrorCode.unsupported_sasl_mechanism
    assert set(handshake.mechanisms) >= {"PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"}
    assert await wire.is_closed_by_peer()


async def test_an_oversized_frame_before_authentication_closes(wire: WireClient) -> None:
    # sasl.server.max.receive.size (512 KiB): refused on its size prefix, before it arrives.
    wire.send_raw(struct.pack(">i", 600_000) + b"\0" * 64)
    assert await wire.is_closed_by_peer()


async def test_a_huge_plain_token_is_refused_not_buffered(wire: WireClient) -> None:
    await wire.request(SASL_HANDSHAKE, 1, mechanism="PLAIN")
    wire.send(SASL_AUTHENTICATE, 2, auth_bytes=_plain("x" * 600_000))
    # A reset (closed while the rest of the frame was still on its way) is as good.
    with contextlib.suppress(ConnectionResetError):
        assert await wire.is_closed_by_peer()


async def test_authenticate_without_handshake_is_illegal(wire: WireClient) -> None:
    refused = await wire.request(SASL_AUTHENTICATE, 2, auth_bytes=_plain(PASSWORD))
    assert refused.error_code == ErrorCode.illegal_sasl_state
    assert await wire.is_closed_by_peer()


async def test_handshake_v0_takes_bare_tokens(wire: WireClient) -> None:
    handshake = await wire.request(SASL_HANDSHAKE, 0, mechanism="PLAIN")
    assert handshake.error_code == ErrorCode.none
    token = _plain(PASSWORD)
    wire.send_raw(struct.pack(">i", len(token)) + token)
    assert await wire.reader.readexactly(4) == b"\0\0\0\0"  # PLAIN's empty final token
    assert (await _metadata(wire)).brokers  # type: ignore[attr-defined]


async def test_handshake_v0_with_a_wrong_password_closes(wire: WireClient) -> None:
    await wire.request(SASL_HANDSHAKE, 0, mechanism="PLAIN")
    token = _plain("wrong")
    wire.send_raw(struct.pack(">i", len(token)) + token)
    assert await wire.is_closed_by_peer()
