"""The handler contract and registry shared by every Kafka API implementation.

A handler is an async callable ``(request, ctx) -> response | None`` where ``request`` is the
kio request dataclass of the negotiated version and the response is the kio response dataclass
of the same version (or a :class:`~headrace.protocol.codec.PreEncodedResponse` for hand-framed
answers, or None for "send nothing", as for acks=0 Produce). A :class:`KafkaApi` names an API
key together with the union of its versions' request and response classes
(:mod:`headrace.core.api_types`), so the handlers it registers are checked against every version
they serve. The services a handler works on are bound when the composition root builds it; the
:class:`RequestContext` says only who asks, where and what. Packages plug in by returning
:class:`ApiHandler` records; ApiVersions advertises exactly the registered ranges. The
:class:`RequestObserver` hook is the single place metrics and tracing learn about requests.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, cast

from headrace.core.config import SecurityProtocol
from headrace.core.security import ANONYMOUS, Action, Operation, Principal, ResourceType
from headrace.protocol.codec import response_schema

Req = TypeVar("Req")
Resp = TypeVar("Resp")


#: Listeners whose clients must authenticate with SASL before anything but ApiVersions.
SASL_PROTOCOLS = frozenset({SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL})
#: Kafka's sasl.server.max.receive.size: the largest frame before SASL authentication completes.
SASL_SERVER_MAX_RECEIVE_SIZE = 524_288


@dataclass(slots=True)
class SaslState:
    """Where a SASL connection's authentication stands (the SaslHandshake and SaslAuthenticate
    handlers move it; the pipeline's authenticate step reads it)."""

    #: The mechanism the last SaslHandshake chose (None: no handshake yet).
    mechanism: str | None = None
    #: The mechanism's server side mid-exchange (an object of :mod:`headrace.security.sasl`).
    exchange: object | None = None
    #: SaslHandshake v0: the following frames are bare SASL tokens, not Kafka requests.
    raw_tokens: bool = False
    #: The mechanism and principal of the last completed authentication (None: not yet).
    authenticated_with: str | None = None
    #: KIP-368: monotonic time after which only re-authentication is served (None: never).
    expires_at: float | None = None
    #: Authentications completed on this connection (the first, then re-authentications).
    completions: int = 0
    #: The last outcome, for the pipeline to count and audit once: (result, attempted
    #: principal, reason); cleared when consumed.
    outcome: tuple[str, str, str] | None = None


@dataclass(slots=True)
class Session:
    """One client connection, as the pipeline and handlers see it."""

    listener: str
    client_host: str
    principal: Principal = ANONYMOUS
    #: The listener's protocol: SASL_* sessions must authenticate before other requests.
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    #: SASL listeners only (None elsewhere).
    sasl: SaslState | None = None

    def __post_init__(self) -> None:
        if self.sasl is None and self.security_protocol in SASL_PROTOCOLS:
            self.sasl = SaslState()

    @property
    def max_frame_bytes(self) -> int | None:
        """A tighter frame bound than the listener's while SASL authentication is pending."""
        if self.sasl is not None and self.sasl.authenticated_with is None:
            return SASL_SERVER_MAX_RECEIVE_SIZE
        return None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a handler knows about the request besides its body."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    session: Session
    #: Resources ((resource type, name)) the authorizer denied this request: the per-partition
    #: helper answers them with their ``*_AUTHORIZATION_FAILED`` code.
    denied: frozenset[tuple[int, str]] = field(default_factory=frozenset)
    #: The authorizer's verdict on actions a handler works out itself (the topics of an
    #: "every topic" Metadata, the groups ListGroups lists): set by the pipeline when an
    #: authorizer is on; None: everything is allowed.
    verdicts: Callable[[Sequence[Action]], Sequence[bool]] | None = None

    def refused(self, resource_type: ResourceType, name: str) -> bool:
        """Whether the authorizer denied an action this request declared on the resource."""
        return bool(self.denied) and (int(resource_type), name) in self.denied

    def allows(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        """Whether the principal may do ``operation`` on the resource (not audited: for
        answers that leave out what the client may not see)."""
        if self.verdicts is None:
            return True
        return bool(self.verdicts([Action(operation, resource_type, name)])[0])

    def visible(self, resource_type: ResourceType, names: Iterable[str],
                operation: Operation = Operation.DESCRIBE) -> list[str]:
        """The ``names`` whose resources the principal may ``operation`` (DESCRIBE)."""
        listed = list(names)
        if self.verdicts is None or not listed:
            return listed
        verdicts = self.verdicts([Action(operation, resource_type, n) for n in listed])
        return [name for name, allowed in zip(listed, verdicts, strict=True) if allowed]

    @property
    def principal(self) -> Principal:
        return self.session.principal

    @property
    def listener(self) -> str:
        return self.session.listener

    @property
    def client_host(self) -> str:
        return self.session.client_host


#: ``async def handle(request, ctx) -> response | None``
Handler: TypeAlias = Callable[[Req, RequestContext], Awaitable[Resp | None]]


@dataclass(frozen=True, slots=True)
class ApiHandler(Generic[Req, Resp]):
    """One API's supported version range and its handler."""

    api_key: int
    min_version: int
    max_version: int
    handle: Handler[Req, Resp]
    #: What a request of this API needs authorized (consulted only with an authorizer on).
    actions: Callable[[Req], Sequence[Action]] | None = None


@cache
def _response_type(api_key: int, api_version: int) -> type[Any]:
    return response_schema(api_key, api_version)


@cache
def _response_module(api_key: int, api_version: int) -> ModuleType:
    return sys.modules[_response_type(api_key, api_version).__module__]


class KafkaApi(Generic[Req, Resp]):
    """An API key typed by the request and response classes of the versions it is served in:
    ``KafkaApi[ListOffsetsRequests, ListOffsetsResponses](2)``."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key

    def response(self, api_version: int) -> type[Resp]:
        """The response class of ``api_version``. kio's index finds it at run time; that it is
        a member of ``Resp`` for every registered version is what tests/server/test_api_types.py
        checks, the one place the static union and the dynamic lookup meet."""
        return cast("type[Resp]", _response_type(self.key, api_version))

    def classes(self, api_version: int) -> ModuleType:
        """The kio module of ``api_version``'s response, for its nested classes."""
        return _response_module(self.key, api_version)

    def handler(
        self,
        min_version: int,
        max_version: int,
        handle: Handler[Req, Resp],
        actions: Callable[[Req], Sequence[Action]] | None = None,
    ) -> ApiHandler[Req, Resp]:
        """This API served by ``handle`` for versions ``min_version``..``max_version``."""
        return ApiHandler(self.key, min_version, max_version, handle, actions)


class RequestObserver(Protocol):
    """Hook for metrics/tracing; every method must be cheap and must not raise.

    The bodies do nothing, so an observer that subclasses this explicitly implements only the
    hooks it cares about (``BrokerMetrics`` implements them all, structurally).
    """

    def on_request(
        self,
        api_key: int,
        api_version: int,
        seconds: float,
        error_code: int,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        """One request answered (or, for acks=0 Produce, handled)."""
        return None

    def on_connection_opened(self) -> None:
        """A client connected."""
        return None

    def on_connection_closed(self) -> None:
        """A client connection ended."""
        return None

    def on_authentication(self, mechanism: str, result: str) -> None:
        """A SASL authentication ended in ``result`` (``success`` or ``failure``)."""
        return None

    def on_connection_refused(self, limit: str) -> None:
        """A client connection was closed at accept: ``limit`` (``max.connections`` or
        ``max.connections.per.ip``) was reached."""
        return None

    def on_produced(self, topic: str, partition: int, records: int, size: int) -> None:
        """``records`` (``size`` bytes) were appended to a partition."""
        return None

    def on_fetched(self, topic: str, partition: int, size: int) -> None:
        """``size`` bytes of a partition were sent to a consumer or follower."""
        return None

    def on_fetch_waiting(self, delta: int) -> None:
        """``delta`` is +1 when a fetch starts long-polling and -1 when it is answered."""
        return None


class NullObserver(RequestObserver):
    """The default observer: records nothing."""


class ApiRegistry:
    """API key → handler; the source of truth for what ApiVersions advertises."""

    def __init__(self, handlers: Iterable[ApiHandler[Any, Any]] = ()) -> None:
        self._handlers: dict[int, ApiHandler[Any, Any]] = {}
        self.register_all(handlers)

    def register(self, handler: ApiHandler[Any, Any]) -> None:
        """Add (or replace) the handler for ``handler.api_key``."""
        if handler.min_version > handler.max_version:
            raise ValueError(f"empty version range for API {handler.api_key}")
        self._handlers[handler.api_key] = handler

    def register_all(self, handlers: Iterable[ApiHandler[Any, Any]]) -> None:
        for handler in handlers:
            self.register(handler)

    def lookup(self, api_key: int, api_version: int) -> ApiHandler[Any, Any] | None:
        """The handler if it supports this exact version, else None. The registry holds every
        API, so its handlers are ``ApiHandler[Any, Any]``: the pipeline's decoder picks the
        request class by (key, version), as the handler's ``KafkaApi`` types it."""
        handler = self._handlers.get(api_key)
        if handler is None or not handler.min_version <= api_version <= handler.max_version:
            return None
        return handler

    def supported(self) -> list[tuple[int, int, int]]:
        """(api key, min version, max version), sorted by key."""
        return sorted((h.api_key, h.min_version, h.max_version) for h in self._handlers.values())
