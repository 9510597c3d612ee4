"""The Kafka request pipeline: every request passes the same steps, in one place.

decode → authenticate (on a SASL listener, until SaslAuthenticate succeeds only ApiVersions and
the SASL APIs are served; anything else, or any request but re-authentication after the KIP-368
session lifetime, closes the connection, as Kafka does) → authorize (:class:`Authorizer`) → quota
(:class:`QuotaManager`: ``throttle_time_ms``) → the handler → audit (admin APIs only: one line
per resource, :mod:`headrace.server.audit`) → observe (metrics and tracing, one
:class:`RequestObserver` call). It is Kafka's ``RequestChannel`` + ``KafkaApis`` dispatch in one
object: connections hand it frames and send what it returns; handlers see a typed context and
never consult security, quotas or metrics themselves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kio.static.primitive import i32

from headrace.core.policies import AllowAll, Authorizer, NoQuotas, QuotaManager, RequestUsage
from headrace.core.requests import (
    ApiRegistry,
    RequestContext,
    RequestObserver,
    SaslState,
    Session,
)
from headrace.core.security import Action
from headrace.observability.audit import Actor, AdminAudit, DenialAudit
from headrace.protocol.codec import (
    API_VERSIONS_KEY,
    FileSlice,
    MalformedRequestError,
    PreEncodedResponse,
    decode_request,
    encode_response,
    parse_request_header,
    request_schema,
    response_header_bytes,
)
from headrace.protocol.produce import MAX_VERSION as PRODUCE_MAX_VERSION
from headrace.protocol.produce import MIN_VERSION as PRODUCE_MIN_VERSION
from headrace.protocol.produce import ProduceDecodeError, decode_produce_request
from headrace.security.sasl import AuthenticationFailed, SaslAuthenticator
from headrace.server.audit import ADMIN_APIS, audit_kafka_request
from headrace.server.busy_time import run_timed
from headrace.server.handlers.api_versions import unsupported_version_response

_SIZE = struct.Struct(">i")
_I32 = struct.Struct(">i")
_API_PREFIX = struct.Struct(">hhi")
PRODUCE_KEY = 0
SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36
#: What a SASL listener serves before authentication, and after the session expired.
_BEFORE_AUTHENTICATION = frozenset({API_VERSIONS_KEY, SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY})
_REAUTHENTICATION = frozenset({SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY})
FETCH_KEY = 1
#: Kafka's cluster-action APIs among those served here (WriteTxnMarkers).
_CLUSTER_ACTIONS = frozenset({27})


class ConnectionClosed(Exception):
    """The peer went away or sent something that forces us to hang up."""


@dataclass(slots=True)
class Outgoing:
    """An encoded response in wire order, plus what to release once it is sent."""

    parts: list[bytes | FileSlice]
    release: Callable[[], None] | None = None
    #: Hang up once this is sent (a refused authentication).
    close_after: bool = False
    #: The client's quota throttle: its connection reads nothing more for this long (KIP-219).
    throttle_ms: int = 0

    def done(self) -> None:
        if self.release is not None:
            release, self.release = self.release, None
            release()


class RequestPipeline:
    """Turns one request frame of a session into its response (or None: nothing to send)."""

    def __init__(
        self,
        registry: ApiRegistry,
        observer: RequestObserver,
        *,
        authorizer: Authorizer | None = None,
        quotas: QuotaManager | None = None,
        audit: AdminAudit | None = None,
        denials: DenialAudit | None = None,
        authenticator: SaslAuthenticator | None = None,
        failed_authentication_delay_ms: int = 100,
    ) -> None:
        self.registry = registry
        self.observer = observer
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.quotas: QuotaManager = quotas or NoQuotas()
        #: Where admin requests are reported (None: not audited, e.g. bare pipeline tests).
        self.audit = audit
        #: Where denied actions are reported (rate-limited).
        self.denials = denials or DenialAudit()
        #: SASL listeners' mechanisms (None: no SASL listener).
        self.authenticator = authenticator
        #: Kafka's connection.failed.authentication.delay.ms: a refusal is answered this late.
        self.failed_authentication_delay_ms = failed_authentication_delay_ms

    async def process(self, frame: bytes | memoryview, session: Session) -> Outgoing | None:
        started = time.perf_counter()
        sasl = session.sasl
        if sasl is not None and sasl.raw_tokens and sasl.exchange is not None:
            return await self._raw_sasl_token(bytes(frame), session, sasl)
        api_key, api_version, correlation_id = _API_PREFIX.unpack_from(frame, 0)
        # -- authenticate (the gate; SaslHandshake/SaslAuthenticate set the principal)
        if sasl is not None:
            _authentication_gate(sasl, api_key)
        handler = self.registry.lookup(api_key, api_version)
        if handler is None:
            if api_key == API_VERSIONS_KEY:
                # Pitfall 2: an unknown ApiVersions version gets a v0-shaped error 35 answer.
                out = encode_response(correlation_id, unsupported_version_response(self.registry))
                self.observer.on_request(
                    api_key, api_version, time.perf_counter() - started, 35, len(frame), len(out)
                )
                return Outgoing([out])
            raise ConnectionClosed(f"unsupported API {api_key} v{api_version}")
        # -- decode
        schema = request_schema(api_key, api_version)
        if schema is None:
            raise ConnectionClosed(f"no schema for API {api_key} v{api_version}")
        try:
            if api_key == PRODUCE_KEY and PRODUCE_MIN_VERSION <= api_version <= PRODUCE_MAX_VERSION:
                # Hand-decoded: record bytes stay views of the frame instead of kio's copies.
                header = parse_request_header(frame, schema.__flexible__)
                request: Any = decode_produce_request(frame, header.body_offset, api_version)
            else:
                header, request = decode_request(frame, schema)
        except (MalformedRequestError, ProduceDecodeError) as error:
            raise ConnectionClosed(
                f"malformed API {api_key} v{api_version}: {error} (frame starts {frame[:48].hex()})"
            ) from error
        ctx = RequestContext(api_key, api_version, correlation_id, header.client_id, session)
        # -- authorize
        if self.authorizer.enabled:
            ctx = self._authorize(ctx, handler.actions, request)
        # -- handle, measured while quotas may apply (they are charged once it is answered,
        # as Kafka records when the response is ready)
        quotas = self.quotas
        charged = quotas.enabled and not _exempt(api_key, request)
        handler_seconds = 0.0
        if charged:
            if api_key == FETCH_KEY:
                request = _capped_fetch(request, quotas.fetch_bytes_limit(ctx))
            response, handler_seconds = await run_timed(handler.handle(request, ctx))
            if api_key == PRODUCE_KEY and request.acks == 0:
                handler_seconds = 0.0  # Kafka exempts acks=0 produce from request quotas
        else:
            response = await handler.handle(request, ctx)
        close_after = False
        if sasl is not None and api_key in _REAUTHENTICATION:
            close_after = await self._after_sasl_step(session, sasl, _error_code_of(response))
        # -- audit
        if self.audit is not None and response is not None and api_key in ADMIN_APIS:
            audit_kafka_request(self.audit, request, response, ctx)
        # -- quota and observe
        if response is None:
            throttle_ms = 0
            if charged:
                throttle_ms = quotas.throttle_ms(
                    ctx, RequestUsage(len(frame), 0, handler_seconds))
            self.observer.on_request(
                api_key, api_version, time.perf_counter() - started, 0, len(frame), 0
            )
            # acks=0 has no response, but its connection is still muted for a throttle.
            return Outgoing([], throttle_ms=throttle_ms) if throttle_ms else None
        outgoing, error_code, response_size = _encoded(correlation_id, api_key, response)
        if charged:
            throttle_ms = quotas.throttle_ms(
                ctx, RequestUsage(len(frame), response_size, handler_seconds))
            if throttle_ms:
                outgoing, error_code, response_size = _encoded(
                    correlation_id, api_key, with_throttle(response, throttle_ms))
                outgoing.throttle_ms = throttle_ms
        self.observer.on_request(
            api_key, api_version, time.perf_counter() - started, error_code, len(frame),
            response_size,
        )
        outgoing.close_after = close_after
        return outgoing

    async def _after_sasl_step(self, session: Session, sasl: SaslState, error_code: int) -> bool:
        """Count and audit an authentication that ended; True: hang up after answering (any
        refused SASL step closes the connection, as Kafka does, after a delay)."""
        outcome, sasl.outcome = sasl.outcome, None
        if outcome is not None:
            result, attempted, reason = outcome
            mechanism = sasl.mechanism or ""
            self.observer.on_authentication(mechanism, result)
            if result == "failure" and self.audit is not None:
                principal = f"User:{attempted}" if attempted else "unknown"
                self.audit.record(Actor(principal, session.client_host, session.listener),
                                  "authenticate", f"sasl:{mechanism}", f"failed: {reason}",
                                  mechanism=mechanism)
        if error_code == 0:
            return False
        if self.failed_authentication_delay_ms:
            await asyncio.sleep(self.failed_authentication_delay_ms / 1000)
        return True

    async def _raw_sasl_token(self, token: bytes, session: Session, sasl: SaslState) -> Outgoing:
        """SaslHandshake v0: the exchange's tokens come as bare size-prefixed frames."""
        assert self.authenticator is not None
        try:
            reply = await self.authenticator.authenticate(session, token)
        except AuthenticationFailed as failure:
            await self._after_sasl_step(session, sasl, 1)
            raise ConnectionClosed(f"SASL authentication failed: {failure.reason}") from None
        await self._after_sasl_step(session, sasl, 0)
        return Outgoing([_SIZE.pack(len(reply.challenge)) + reply.challenge])


    def _authorize(self, ctx: RequestContext,
                   actions_of: Callable[[Any], Sequence[Action]] | None,
                   request: Any) -> RequestContext:
        """``ctx`` with the resources the request may not touch and the authorizer's verdict
        function (for the resources a handler lists itself); each denial is audited."""
        denied: frozenset[tuple[int, str]] = frozenset()
        if actions_of is not None:
            actions = actions_of(request)
            if actions:
                verdicts = self.authorizer.authorize(ctx, actions)
                refused = [a for a, allowed in zip(actions, verdicts, strict=True) if not allowed]
                if refused:
                    denied = frozenset((int(a.resource_type), a.name) for a in refused)
                    self._audit_denials(ctx, refused)
        return dataclasses.replace(
            ctx, denied=denied, verdicts=functools.partial(self.authorizer.authorize, ctx)
        )

    def _audit_denials(self, ctx: RequestContext, refused: Sequence[Action]) -> None:
        actor = Actor(str(ctx.principal), ctx.client_host, ctx.listener)
        api = f"API {ctx.api_key} v{ctx.api_version}"
        for action in dict.fromkeys(refused):
            self.denials.denied(actor, action.operation.name,
                                f"{action.resource_type.name.lower()}:{action.name}", api)


def _authentication_gate(sasl: SaslState, api_key: int) -> None:
    if sasl.authenticated_with is None:
        if api_key not in _BEFORE_AUTHENTICATION:
            raise ConnectionClosed(f"API {api_key} before SASL authentication")
    elif (sasl.expires_at is not None and api_key not in _REAUTHENTICATION
          and time.monotonic() >= sasl.expires_at):
        raise ConnectionClosed(
            f"API {api_key} after the SASL session expired without re-authentication")


def _encoded(correlation_id: int, api_key: int, response: Any) -> tuple[Outgoing, int, int]:
    """(the response in wire order, its top-level error code, its size on the wire)."""
    if isinstance(response, PreEncodedResponse):
        header_bytes = response_header_bytes(correlation_id, api_key, response.flexible)
        total = len(header_bytes) + response.body_size()
        parts: list[bytes | FileSlice] = [_SIZE.pack(total) + header_bytes, *response.body_parts]
        return Outgoing(parts, response.release), response.error_code, total + 4
    encoded = encode_response(correlation_id, response)
    return Outgoing([encoded]), _error_code_of(response), len(encoded)


def _exempt(api_key: int, request: Any) -> bool:
    """What Kafka never charges to client quotas: cluster actions (a follower's Fetch, the
    coordinators' WriteTxnMarkers), which replication and transactions need to make progress."""
    if api_key == FETCH_KEY:
        return int(getattr(request, "replica_id", -1)) >= 0
    return api_key in _CLUSTER_ACTIONS


def _capped_fetch(request: Any, limit: int | None) -> Any:
    """A consumer Fetch asks for at most what its quota lets it receive at once (Kafka's
    ``getMaxValueInQuotaWindow``): a larger answer would be throttled whatever came before."""
    if limit is None or limit >= int(request.max_bytes):
        return request
    return dataclasses.replace(request, max_bytes=i32(max(limit, 1)))


def with_throttle(response: Any, throttle_ms: int) -> Any:
    """``response`` carrying ``throttle_time_ms`` (unchanged where its version has none)."""
    if isinstance(response, PreEncodedResponse):
        at = response.throttle_at
        head = response.body_parts[0] if response.body_parts else None
        if at is None or not isinstance(head, bytes):
            return response
        patched = head[:at] + _I32.pack(throttle_ms) + head[at + 4 :]
        return dataclasses.replace(response, body_parts=[patched, *response.body_parts[1:]])
    if dataclasses.is_dataclass(response) and not isinstance(response, type) and hasattr(
        response, "throttle_time"
    ):
        return dataclasses.replace(
            response, throttle_time=datetime.timedelta(milliseconds=throttle_ms)
        )
    return response


def _error_code_of(response: Any) -> int:
    code = getattr(response, "error_code", 0)
    return int(code) if code is not None else 0


__all__ = ["ConnectionClosed", "Outgoing", "RequestPipeline", "with_throttle"]
