"""The authenticator's rules without a socket: KIP-368 re-authentication keeps the mechanism
and the principal, the session lifetime is the shorter of connections.max.reauth.ms and the
credential's life, and a failure ends the exchange."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from headrace.core.config import SecurityProtocol
from headrace.core.requests import Session
from headrace.security.records import MemorySecurityRecords
from headrace.security.sasl import AuthenticationFailed, SaslAuthenticator
from headrace.security.scram import ScramCredentials


async def _authenticator(max_reauth_ms: int = 0) -> SaslAuthenticator:
    credentials = ScramCredentials(MemorySecurityRecords())
    await credentials.ensure("ann", "pw-a", ["SCRAM-SHA-256"])
    await credentials.ensure("ben", "pw-b", ["SCRAM-SHA-256"])
    return SaslAuthenticator(["PLAIN", "SCRAM-SHA-256"], credentials,
                             max_reauth_ms=max_reauth_ms)


def _session() -> Session:
    return Session("SASL", "10.0.0.1", security_protocol=SecurityProtocol.SASL_PLAINTEXT)


async def test_reauthentication_keeps_the_principal_and_mechanism() -> None:
    authenticator = await _authenticator(max_reauth_ms=60_000)
    session = _session()
    state = session.sasl
    assert state is not None
    assert authenticator.handshake(state, "PLAIN", raw_tokens=False) is None
    reply = await authenticator.authenticate(session, b"\0ann\0pw-a")
    assert reply.complete and reply.session_lifetime_ms == 60_000
    assert str(session.principal) == "User:ann"
    assert state.expires_at is not None and state.expires_at > time.monotonic()
    # Another mechanism on re-authentication: refused at the handshake.
    assert authenticator.handshake(state, "SCRAM-SHA-256", raw_tokens=False) == \
        "illegal_sasl_state"
    # Another principal: refused, and the session keeps its principal.
    assert authenticator.handshake(state, "PLAIN", raw_tokens=False) is None
    with pytest.raises(AuthenticationFailed, match="Cannot change principals"):
        await authenticator.authenticate(session, b"\0ben\0pw-b")
    assert str(session.principal) == "User:ann"
    assert state.outcome is not None and state.outcome[0] == "failure"
    assert state.exchange is None


async def test_a_refusal_ends_the_exchange() -> None:
    authenticator = await _authenticator()
    session = _session()
    state = session.sasl
    assert state is not None
    authenticator.handshake(state, "PLAIN", raw_tokens=False)
    with pytest.raises(AuthenticationFailed) as refused:
        await authenticator.authenticate(session, b"\0ann\0wrong")
    assert refused.value.attempted == "ann"
    assert state.exchange is None and state.authenticated_with is None
    with pytest.raises(AuthenticationFailed):  # no exchange any more
        await authenticator.authenticate(session, b"\0ann\0pw-a")


def test_oauthbearer_needs_a_jwks() -> None:
    with pytest.raises(ValueError, match="JWKS"):
        SaslAuthenticator(["OAUTHBEARER"], ScramCredentials(MemorySecurityRecords()))


@pytest.mark.parametrize(("flags", "words"), [
    (("--sasl-mechanisms", "OAUTHBEARER"), ("OAUTHBEARER", "--sasl-oauthbearer-jwks-endpoint-url")),
    (("--sasl-mechanisms", "SCRAM-SHA-256", "--sasl-oauthbearer-jwks-endpoint-url",
      "ftp://idp/jwks"), ("--sasl-oauthbearer-jwks-endpoint-url", "http(s) or file")),
])
def test_sasl_settings_that_cannot_work_are_one_error_line(
        tmp_path: Path, flags: tuple[str, ...], words: tuple[str, ...]) -> None:
    from tests.cli.test_startup_errors import assert_one_line_error, headrace

    result = headrace("broker", "--data-dir", str(tmp_path / "data"), "--kafka-listen",
                      "127.0.0.1:0", "--http-listen", "127.0.0.1:0", *flags)
    assert_one_line_error(result, *words)


async def test_scram_exchange_and_an_unknown_user() -> None:
    import scramp

    authenticator = await _authenticator()
    session = _session()
    state = session.sasl
    assert state is not None
    authenticator.handshake(state, "SCRAM-SHA-256", raw_tokens=False)
    client = scramp.ScramClient(["SCRAM-SHA-256"], "ann", "pw-a")
    first = await authenticator.authenticate(session, client.get_client_first().encode())
    assert not first.complete
    client.set_server_first(first.challenge.decode())
    final = await authenticator.authenticate(session, client.get_client_final().encode())
    assert final.complete
    client.set_server_final(final.challenge.decode())  # the server proved it knows the key
    assert str(session.principal) == "User:ann"

    stranger = _session()
    assert stranger.sasl is not None
    authenticator.handshake(stranger.sasl, "SCRAM-SHA-256", raw_tokens=False)
    with pytest.raises(AuthenticationFailed) as refused:
        await authenticator.authenticate(
            stranger, scramp.ScramClient(["SCRAM-SHA-256"], "nobody", "x")
            .get_client_first().encode())
    assert refused.value.attempted == "nobody"
