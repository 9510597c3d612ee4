"""Handlers of the broker's own APIs, written against the broker's services and bound to them.

A handler module declares ``HANDLERS``: a tuple of :class:`BrokerApi` records whose functions
take the services (:class:`~headrace.core.broker.Broker`) first, each checked against its
:class:`~headrace.core.requests.KafkaApi`'s request and response types. The composition root
binds them once with :func:`bind`, so the request context a handler receives carries the
request's facts (principal, listener, session), never the broker.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias

from headrace.core.broker import Broker
from headrace.core.requests import ApiHandler, KafkaApi, Req, RequestContext, Resp
from headrace.core.security import Action, Operation, ResourceType

#: ``async def handle(broker, request, ctx) -> response | None``
BrokerHandler: TypeAlias = Callable[[Broker, Req, RequestContext], Awaitable[Resp | None]]


@dataclass(frozen=True, slots=True)
class BrokerApi(Generic[Req, Resp]):
    """One API's version range and its handler over the broker's services."""

    api: KafkaApi[Req, Resp]
    min_version: int
    max_version: int
    handle: BrokerHandler[Req, Resp]
    #: What a request needs authorized (see :class:`~headrace.core.requests.ApiHandler`).
    actions: Callable[[Req], Sequence[Action]] | None = None


def bind(apis: Iterable[BrokerApi[Any, Any]], broker: Broker) -> list[ApiHandler[Any, Any]]:
    return [
        api.api.handler(api.min_version, api.max_version,
                        functools.partial(api.handle, broker), api.actions)
        for api in apis
    ]


class _NamedTopic(Protocol):
    @property
    def name(self) -> str: ...


class TopicsRequest(Protocol):
    """A request naming its topics in ``topics[].name``."""

    @property
    def topics(self) -> Iterable[_NamedTopic]: ...


def on_topics(operation: Operation) -> Callable[[TopicsRequest], Sequence[Action]]:
    """``operation`` on every topic a request names in ``topics[].name``."""

    def actions(request: TopicsRequest) -> Sequence[Action]:
        return [Action(operation, ResourceType.TOPIC, topic.name) for topic in request.topics]

    return actions
