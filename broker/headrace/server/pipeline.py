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
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kio.static.primitive import i32

from headrace.core.policies import AllowAll, Authorizer, NoQuotas, QuotaManager, RequestUsage
from headrace.core.requests import ApiRegistry, RequestContext, RequestObserver, Session
from headrace.observability.audit import AdminAudit
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
from headrace.server.busy_time import run_timed
from headrace.server.handlers.api_versions import unsupported_version_response

_SIZE = struct.Struct(">i")
_I32 = struct.Struct(">i")
_API_PREFIX = struct.Struct(">hhi")
PRODUCE_KEY = 0
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
    ) -> None:
        self.registry = registry
        self.observer = observer
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.quotas: QuotaManager = quotas or NoQuotas()
        #: Where admin requests are reported (None: not audited, e.g. bare pipeline tests).
        self.audit = audit

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
        if self.authorizer.enabled and handler.actions is not None:
            actions = handler.actions(request)
            verdicts = self.authorizer.authorize(ctx, actions)
            denied = frozenset(
                (int(action.resource_type), action.name)
                for action, allowed in zip(actions, verdicts, strict=True)
                if not allowed
            )
            if denied:
                ctx = dataclasses.replace(ctx, denied=denied)
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
        return outgoing


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
