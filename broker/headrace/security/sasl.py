"""SASL server mechanisms (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) and the authenticator that
drives them for a connection, as Kafka's ``SaslServerAuthenticator`` does.

Each mechanism's server side is a small state machine (an *exchange*): ``await step(token)``
returns the next challenge, and once complete the principal it authenticated (and, for a
bearer token, when the credential expires). Failures raise :class:`AuthenticationFailed`
carrying the principal the client claimed, so the audit line can name it — never the password.

Costs are bounded before they are spent: SCRAM proofs are checked against stored keys (two
HMACs); PLAIN's password check is PBKDF2, run in a worker thread with at most
:data:`PBKDF2_CONCURRENCY` at once broker-wide; a bearer token is validated against cached
keys (:mod:`headrace.security.oauthbearer`). Tokens are bounded by the connection's
``sasl.server.max.receive.size`` check, and a failed authentication closes the connection
after ``connection.failed.authentication.delay.ms`` (see :mod:`headrace.server.pipeline`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import scramp

from headrace.core.requests import SASL_SERVER_MAX_RECEIVE_SIZE, SaslState, Session
from headrace.core.security import Principal
from headrace.security.oauthbearer import BearerTokenValidator, TokenRejected
from headrace.security.scram import MECHANISMS as SCRAM_MECHANISMS
from headrace.security.scram import ScramCredentials, password_matches

PLAIN = "PLAIN"
OAUTHBEARER = "OAUTHBEARER"
SUPPORTED_MECHANISMS = (PLAIN, *SCRAM_MECHANISMS, OAUTHBEARER)
#: PLAIN password checks (PBKDF2) running at once, for the whole broker: a flood of logins
#: queues behind these instead of taking every core.
PBKDF2_CONCURRENCY = 2


class AuthenticationFailed(Exception):
    """The client's credentials were refused; ``attempted`` is who it claimed to be."""

    def __init__(self, reason: str, attempted: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempted = attempted


@dataclass(frozen=True, slots=True)
class Step:
    """A mechanism's answer to one client token."""

    challenge: bytes
    #: Set once the exchange is complete.
    principal: Principal | None = None
    #: Wall-clock milliseconds when the credential expires (bearer tokens), else None.
    expires_at_ms: int | None = None


class Exchange(Protocol):
    """The server side of one authentication."""

    async def step(self, token: bytes) -> Step:
        """Consume the client's next token; raise :class:`AuthenticationFailed` to refuse."""


def _user(name: str) -> Principal:
    return Principal("User", name)


class PlainExchange:
    """RFC 4616: one message ``authzid NUL authcid NUL password``, checked against the user's
    stored SCRAM keys (Kafka's PLAIN has its own JAAS users; ours are the SCRAM users)."""

    def __init__(self, credentials: ScramCredentials, pbkdf2: asyncio.Semaphore) -> None:
        self._credentials = credentials
        self._pbkdf2 = pbkdf2

    async def step(self, token: bytes) -> Step:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: expected 3 tokens")
        try:
            authzid, user, password = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SASL/PLAIN response: not UTF-8") from None
        if not user or not password:
            raise AuthenticationFailed("Authentication failed: username or password empty", user)
        if authzid and authzid != user:
            raise AuthenticationFailed("Authentication failed: Client requested an "
                                       "authorization id that is different from username", user)
        for mechanism in SCRAM_MECHANISMS:
            credential = self._credentials.lookup(user, mechanism)
            if credential is None:
                continue
            async with self._pbkdf2:
                matches = await asyncio.to_thread(password_matches, mechanism, credential,
                                                  password)
            if matches:
                return Step(b"", _user(user))
            break
        raise AuthenticationFailed("Authentication failed: Invalid username or password", user)


class ScramExchange:
    """RFC 5802 through scramp: client-first → server-first, client-final → server-final."""

    def __init__(self, mechanism: str, credentials: ScramCredentials) -> None:
        self._mechanism = mechanism
        self._credentials = credentials
        self._server = scramp.ScramMechanism(mechanism).make_server(self._auth_info)
        self._user = ""
        self._first_done = False
        self._gs2_header = ""

    def _auth_info(self, user: str) -> tuple[bytes, bytes, bytes, int]:
        # saslname escapes (RFC 5802 §5.1): "=2C" is ",", "=3D" is "=".
        self._user = str(user).replace("=2C", ",").replace("=3D", "=")
        credential = self._credentials.lookup(self._user, self._mechanism)
        if credential is None:
            raise AuthenticationFailed("Authentication failed: Invalid user credentials",
                                       self._user)
        return (credential.salt, credential.stored_key, credential.server_key,
                credential.iterations)

    async def step(self, token: bytes) -> Step:
        try:
            message = token.decode("utf-8")
            if not self._first_done:
                self._first_done = True
                self._gs2_header = message[: message.find(",", message.find(",") + 1) + 1]
                self._server.set_client_first(message)
                return Step(self._server.get_server_first().encode("utf-8"))
            legacy = self._legacy_librdkafka_final(message)
            if legacy is not None:
                return Step(legacy, _user(self._user))
            self._server.set_client_final(message)
            final = self._server.get_server_final().encode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid SCRAM message: not UTF-8", self._user) from None
        except scramp.ScramException as error:
            raise AuthenticationFailed(f"Authentication failed: {error}", self._user) from None
        return Step(final, _user(self._user))

    def _legacy_librdkafka_final(self, message: str) -> bytes | None:
        """librdkafka before 2.6.1 (kcat's, many distributions') sends ``r=`` as its own nonce
        followed by the server's whole nonce, which already starts with it (librdkafka#4895);
        Kafka 3.8.1+ accepts a nonce that ends with the server's, and so do we: the proof is
        checked by hand over the AuthMessage the client signed. None: not that case."""
        server = self._server
        expected = str(server.nonce)
        fields = dict(item.split("=", 1) for item in message.split(",") if "=" in item)
        nonce = fields.get("r", "")
        client_nonce = expected[: len(expected) - len(str(server.s_nonce))]
        if nonce == expected or nonce != client_nonce + expected or "p" not in fields:
            return None
        if fields.get("c") != base64.b64encode(self._gs2_header.encode()).decode():
            raise AuthenticationFailed("Authentication failed: channel bindings differ",
                                       self._user)
        without_proof = message[: message.rindex(",p=")]
        auth_message = ",".join(
            (server.client_first_bare, server.server_first, without_proof)).encode()
        digest = SCRAM_MECHANISMS[self._mechanism][1]
        signature = hmac.digest(server.stored_key, auth_message, digest)
        try:
            proof = base64.b64decode(fields["p"], validate=True)
        except ValueError:
            raise AuthenticationFailed("Authentication failed: malformed proof",
                                       self._user) from None
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if len(proof) != len(signature) or not hmac.compare_digest(
                hashlib.new(digest, client_key).digest(), server.stored_key):
            raise AuthenticationFailed("Authentication failed: The client keys don't match.",
                                       self._user)
        verifier = hmac.digest(server.server_key, auth_message, digest)
        return b"v=" + base64.b64encode(verifier)


class OAuthBearerExchange:
    """RFC 7628's client initial response ``n,[a=authzid],^Aauth=Bearer TOKEN^A...^A^A``,
    the token validated as a JWT (:class:`BearerTokenValidator`)."""

    def __init__(self, validator: BearerTokenValidator) -> None:
        self._validator = validator

    async def step(self, token: bytes) -> Step:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid OAUTHBEARER response: not UTF-8") from None
        header, sep, rest = text.partition("\x01")
        if not sep or not header.startswith(("n,", "y,")) or not rest.endswith("\x01\x01"):
            raise AuthenticationFailed("Invalid OAUTHBEARER initial client response")
        pairs = dict(item.partition("=")[::2] for item in rest[:-2].split("\x01") if item)
        scheme, _, bearer = pairs.get("auth", "").partition(" ")
        if scheme.lower() != "bearer" or not bearer:
            raise AuthenticationFailed("Invalid OAUTHBEARER initial client response: no "
                                       "bearer token")
        try:
            subject, expires_at_ms = await self._validator.validate(bearer)
        except TokenRejected as error:
            raise AuthenticationFailed(f"Authentication failed: {error}",
                                       error.subject) from None
        return Step(b"", _user(subject), expires_at_ms)


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's token for the client, and whether authentication is complete."""

    challenge: bytes
    complete: bool = False
    #: KIP-368 session_lifetime_ms once complete (0: unbounded).
    session_lifetime_ms: int = 0


class SaslAuthenticator:
    """The enabled mechanisms and their collaborators; moves a session's :class:`SaslState`."""

    def __init__(
        self,
        mechanisms: Sequence[str],
        credentials: ScramCredentials,
        *,
        bearer_validator: BearerTokenValidator | None = None,
        max_reauth_ms: int = 0,
    ) -> None:
        unknown = [m for m in mechanisms if m not in SUPPORTED_MECHANISMS]
        if unknown:
            raise ValueError(f"unknown SASL mechanism {unknown[0]}")
        if OAUTHBEARER in mechanisms and bearer_validator is None:
            raise ValueError("OAUTHBEARER needs a JWKS endpoint to validate tokens with")
        self.mechanisms = tuple(mechanisms)
        self._credentials = credentials
        self._bearer_validator = bearer_validator
        self.max_reauth_ms = max_reauth_ms
        self._pbkdf2 = asyncio.Semaphore(PBKDF2_CONCURRENCY)

    def exchange(self, mechanism: str) -> Exchange:
        if mechanism == PLAIN:
            return PlainExchange(self._credentials, self._pbkdf2)
        if mechanism == OAUTHBEARER:
            assert self._bearer_validator is not None
            return OAuthBearerExchange(self._bearer_validator)
        return ScramExchange(mechanism, self._credentials)

    def handshake(self, state: SaslState, mechanism: str, *, raw_tokens: bool) -> str | None:
        """Start authenticating with ``mechanism``; the refusal's error code name, or None."""
        if mechanism not in self.mechanisms:
            return "unsupported_sasl_mechanism"
        if state.exchange is not None:
            return "illegal_sasl_state"
        if state.authenticated_with is not None and state.mechanism != mechanism:
            return "illegal_sasl_state"  # KIP-368: re-authenticate with the same mechanism
        state.mechanism = mechanism
        state.exchange = self.exchange(mechanism)
        state.raw_tokens = raw_tokens
        return None

    async def authenticate(self, session: Session, token: bytes) -> Reply:
        """One client token of the exchange the handshake started; :class:`AuthenticationFailed`
        when refused (the exchange is over then, and the connection is to be closed)."""
        state = session.sasl
        assert state is not None
        exchange = state.exchange
        if not isinstance(exchange, (PlainExchange, ScramExchange, OAuthBearerExchange)):
            raise AuthenticationFailed("SaslAuthenticate before SaslHandshake")
        mechanism = state.mechanism or ""
        try:
            step = await exchange.step(token)
        except AuthenticationFailed as failure:
            state.exchange = None
            state.outcome = ("failure", failure.attempted, failure.reason)
            raise
        if step.principal is None:
            return Reply(step.challenge)
        state.exchange = None
        state.raw_tokens = False
        if state.authenticated_with is not None and step.principal != session.principal:
            reason = (f"Cannot change principals during re-authentication from "
                      f"{session.principal} to {step.principal}")
            state.outcome = ("failure", str(step.principal), reason)
            raise AuthenticationFailed(reason, str(step.principal))
        session.principal = step.principal
        state.authenticated_with = mechanism
        state.completions += 1
        state.outcome = ("success", str(step.principal), "")
        lifetime = self._session_lifetime_ms(step.expires_at_ms)
        state.expires_at = time.monotonic() + lifetime / 1000 if lifetime else None
        return Reply(step.challenge, True, lifetime)

    def _session_lifetime_ms(self, expires_at_ms: int | None) -> int:
        """Kafka's rule: the credential's remaining life, bounded by connections.max.reauth.ms
        when that is set (0 both: no limit)."""
        bounds = []
        if self.max_reauth_ms > 0:
            bounds.append(self.max_reauth_ms)
        if expires_at_ms is not None:
            bounds.append(max(1, expires_at_ms - int(time.time() * 1000)))
        return min(bounds) if bounds else 0


__all__ = [
    "OAUTHBEARER",
    "PLAIN",
    "SASL_SERVER_MAX_RECEIVE_SIZE",
    "SUPPORTED_MECHANISMS",
    "AuthenticationFailed",
    "Exchange",
    "Reply",
    "SaslAuthenticator",
    "Step",
]
