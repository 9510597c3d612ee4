"""The Kafka request pipeline: every request passes the same steps, in one place.

decode → authenticate (the session's principal) → authorize (:class:`Authorizer`) → quota
(:class:`QuotaManager`: ``throttle_time_ms``) → the handler → audit (admin APIs only: one line
per resource, :mod:`headrace.server.audit`) → observe (metrics and tracing, one
:class:`RequestObserver` call). It is Kafka's ``RequestChannel`` + ``KafkaApis`` dispatch in one
object: connections hand it frames and send what it returns; handlers see a typed context and
never consult security, quotas or metrics themselves.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from headrace.core.policies import AllowAll, Authorizer, NoQuotas, QuotaManager
from headrace.core.requests import ApiRegistry, RequestContext, RequestObserver, Session
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
from headrace.server.audit import ADMIN_APIS, audit_kafka_request
from headrace.server.handlers.api_versions import unsupported_version_response

_SIZE = struct.Struct(">i")
_I32 = struct.Struct(">i")
_API_PREFIX = struct.Struct(">hhi")
PRODUCE_KEY = 0


class ConnectionClosed(Exception):
    """The peer went away or sent something that forces us to hang up."""


@dataclass(slots=True)
class Outgoing:
    """An encoded response in wire order, plus what to release once it is sent."""

    parts: list[bytes | FileSlice]
    release: Callable[[], None] | None = None

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
    ) -> None:
        self.registry = registry
        self.observer = observer
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.quotas: QuotaManager = quotas or NoQuotas()
        #: Where admin requests are reported (None: not audited, e.g. bare pipeline tests).
        self.audit = audit
        #: Where denied actions are reported (rate-limited).
        self.denials = denials or DenialAudit()

    async def process(self, frame: bytes | memoryview, session: Session) -> Outgoing | None:
        started = time.perf_counter()
        api_key, api_version, correlation_id = _API_PREFIX.unpack_from(frame, 0)
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
        # -- authenticate: the session carries the principal its listener established.
        ctx = RequestContext(api_key, api_version, correlation_id, header.client_id, session)
        # -- authorize
        if self.authorizer.enabled:
            ctx = self._authorize(ctx, handler.actions, request)
        # -- quota
        throttle_ms = self.quotas.throttle_ms(ctx, len(frame))
        if throttle_ms:
            ctx = dataclasses.replace(ctx, throttle_ms=throttle_ms)
        # -- handle
        response = await handler.handle(request, ctx)
        # -- audit
        if self.audit is not None and response is not None and api_key in ADMIN_APIS:
            audit_kafka_request(self.audit, request, response, ctx)
        # -- observe
        if response is None:
            self.observer.on_request(
                api_key, api_version, time.perf_counter() - started, 0, len(frame), 0
            )
            return None
        if throttle_ms:
            response = with_throttle(response, throttle_ms)
        release = None
        parts: list[bytes | FileSlice]
        if isinstance(response, PreEncodedResponse):
            release = response.release
            header_bytes = response_header_bytes(correlation_id, api_key, response.flexible)
            total = len(header_bytes) + response.body_size()
            parts = [_SIZE.pack(total) + header_bytes, *response.body_parts]
            error_code = response.error_code
            response_size = total + 4
        else:
            encoded = encode_response(correlation_id, response)
            parts = [encoded]
            error_code = _error_code_of(response)
            response_size = len(encoded)
        self.observer.on_request(
            api_key, api_version, time.perf_counter() - started, error_code, len(frame),
            response_size,
        )
        return Outgoing(parts, release)

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
