"""Handlers of the broker's own APIs, written against the broker's services and bound to them.

A handler module declares ``HANDLERS``: :class:`BrokerApi` records whose functions take the
services (:class:`~headrace.core.broker.Broker`) first. The composition root binds them once with
:func:`bind`, so the request context a handler receives carries the request's facts (principal,
listener, session), never the broker.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from headrace.core.broker import Broker
from headrace.core.requests import ApiHandler, RequestContext
from headrace.core.security import Action, Operation, ResourceType

#: ``async def handle(broker, request, ctx) -> response | None``
BrokerHandler = Callable[[Broker, Any, RequestContext], Awaitable[Any | None]]


@dataclass(frozen=True, slots=True)
class BrokerApi:
    """One API's version range and its handler over the broker's services."""

    api_key: int
    min_version: int
    max_version: int
    handle: BrokerHandler
    #: What a request needs authorized (see :class:`~headrace.core.requests.ApiHandler`).
    actions: Callable[[Any], Sequence[Action]] | None = None


def bind(apis: Iterable[BrokerApi], broker: Broker) -> list[ApiHandler]:
    return [
        ApiHandler(api.api_key, api.min_version, api.max_version,
                   functools.partial(api.handle, broker), api.actions)
        for api in apis
    ]


def on_topics(operation: Operation) -> Callable[[Any], Sequence[Action]]:
    """``operation`` on every topic a request names in ``topics[].name``."""

    def actions(request: Any) -> Sequence[Action]:
        return [Action(operation, ResourceType.TOPIC, topic.name) for topic in request.topics]

    return actions
