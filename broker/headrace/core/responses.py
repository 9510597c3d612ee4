"""Helpers for building version-specific kio responses cheaply, and the one per-partition loop.

Handlers serve many versions of one API with one code path: they name the classes of the
negotiated version through :meth:`~headrace.core.requests.KafkaApi.classes` and construct them
with :func:`build`, which drops keyword arguments the version does not have (a cached set
lookup, not ``get_type_hints``). :func:`each` is the one loop that turns each item's
:class:`KafkaError` into that item's own error (one bad topic or partition never fails the
others); :func:`partition_results` runs it over a request's topics and partitions, answering
denied topics with TOPIC_AUTHORIZATION_FAILED, and :func:`by_topic` groups results a handler
computed per (topic, partition) key into per-topic entries.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.core.requests import RequestContext
from headrace.core.security import Operation, ResourceType

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

NO_THROTTLE = datetime.timedelta(0)
OK = ErrorCode.none

T = TypeVar("T")
Data = TypeVar("Data", bound="DataclassInstance")
P = TypeVar("P")
R = TypeVar("R")
TopicResult = TypeVar("TopicResult")
P_co = TypeVar("P_co", covariant=True)


class RequestTopic(Protocol[P_co]):
    """A request's topic as most APIs shape it: ``name`` and ``partitions``. Handlers type
    their request as a protocol of the fields they read (checked against every version's kio
    class where the handler is registered), so the partition type is one type, not a union
    the per-partition helpers could not infer."""

    @property
    def name(self) -> str: ...

    @property
    def partitions(self) -> Sequence[P_co]: ...


_field_names: dict[type[DataclassInstance], frozenset[str]] = {}


def build(cls: type[Data], **values: Any) -> Data:
    """Construct ``cls`` from the keyword arguments it has fields for.

    A response's ``throttle_time`` is never the handler's business: it starts at zero here and
    the request pipeline sets what the quota manager decided.
    """
    names = _field_names.get(cls)
    if names is None:
        names = _field_names[cls] = frozenset(f.name for f in fields(cls))
    kwargs = {key: value for key, value in values.items() if key in names}
    if "throttle_time" in names and "throttle_time" not in kwargs:
        kwargs["throttle_time"] = NO_THROTTLE
    return cls(**kwargs)


#: What a request is answered for a resource the authorizer denied, by resource type.
AUTHORIZATION_FAILED: dict[ResourceType, ErrorCode] = {
    ResourceType.TOPIC: ErrorCode.topic_authorization_failed,
    ResourceType.GROUP: ErrorCode.group_authorization_failed,
    ResourceType.CLUSTER: ErrorCode.cluster_authorization_failed,
    ResourceType.TRANSACTIONAL_ID: ErrorCode.transactional_id_authorization_failed,
    ResourceType.DELEGATION_TOKEN: ErrorCode.delegation_token_authorization_failed,
}


def authorization_error(resource_type: ResourceType, name: str) -> KafkaError:
    return KafkaError(AUTHORIZATION_FAILED[resource_type],
                      f"not authorized for {resource_type.name.lower()} {name}")


#: Kafka's ``AclEntry.supportedOperations``: what an ``authorized_operations`` field reports on.
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[Operation, ...]] = {
    ResourceType.TOPIC: (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE,
                         Operation.ALTER, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS,
                         Operation.ALTER_CONFIGS),
    ResourceType.GROUP: (Operation.READ, Operation.DESCRIBE, Operation.DELETE),
    ResourceType.CLUSTER: (Operation.CREATE, Operation.CLUSTER_ACTION,
                           Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS,
                           Operation.IDEMPOTENT_WRITE, Operation.ALTER, Operation.DESCRIBE),
    ResourceType.TRANSACTIONAL_ID: (Operation.DESCRIBE, Operation.WRITE),
}
#: ``authorized_operations`` when the client did not ask for them.
NOT_REQUESTED = -(2**31)


def authorized_operations(ctx: RequestContext, resource_type: ResourceType, name: str) -> int:
    """Kafka's bit field of the operations the principal may do on the resource (bit = the
    operation's code); without an authorizer, every operation the resource type has."""
    bits = 0
    for operation in SUPPORTED_OPERATIONS[resource_type]:
        if ctx.allows(operation, resource_type, name):
            bits |= 1 << int(operation)
    return bits


def require(ctx: RequestContext, resource_type: ResourceType, name: str) -> None:
    """Raise the resource type's ``*_AUTHORIZATION_FAILED`` if the authorizer denied an action
    the request declared on ``(resource_type, name)``."""
    if ctx.refused(resource_type, name):
        raise authorization_error(resource_type, name)


def error_code(error: BaseException) -> ErrorCode:
    if isinstance(error, KafkaError):
        return error.code
    return ErrorCode.unknown_server_error


def error_message(error: BaseException) -> str:
    if isinstance(error, KafkaError):
        return error.message or error.code.name
    return f"{type(error).__name__}: {error}"


async def each(
    items: Iterable[T],
    answer: Callable[[T], Awaitable[R]],
    failed: Callable[[T, KafkaError], R],
) -> tuple[R, ...]:
    """``await answer(item)`` for every item, or ``failed(item, error)`` where it raised
    :class:`KafkaError`: one result per item, in order."""
    results = []
    for item in items:
        try:
            results.append(await answer(item))
        except KafkaError as error:
            results.append(failed(item, error))
    return tuple(results)


async def partition_results(
    ctx: RequestContext,
    topics: Iterable[tuple[str, Iterable[P]]],
    *,
    answer: Callable[[str, P], Awaitable[R]],
    failed: Callable[[str, P, KafkaError], R],
    topic: Callable[[str, tuple[R, ...]], TopicResult],
    check: Callable[[str], Awaitable[None]] | None = None,
) -> tuple[TopicResult, ...]:
    """Answer every partition of every requested ``(topic name, partitions)``:
    ``answer(topic, partition)``, or ``failed(topic, partition, error)`` when it raised
    :class:`KafkaError`. A topic the authorizer denied, or one ``check(topic)`` refuses by
    raising, fails all its partitions without calling ``answer``. ``topic(name, results)``
    groups each topic's partition results."""
    # :func:`each`, inlined: this loop runs for every Produce and Fetch (no partials, no
    # coroutine per topic on the small-request path).
    results = []
    denied = ctx.denied
    for name, partitions in topics:
        try:
            if denied and (ResourceType.TOPIC, name) in denied:
                raise authorization_error(ResourceType.TOPIC, name)
            if check is not None:
                await check(name)
        except KafkaError as error:
            results.append(topic(name, tuple(failed(name, p, error) for p in partitions)))
            continue
        answered = []
        for partition in partitions:
            try:
                answered.append(await answer(name, partition))
            except KafkaError as error:
                answered.append(failed(name, partition, error))
        results.append(topic(name, tuple(answered)))
    return tuple(results)


def by_topic(
    results: Iterable[tuple[tuple[str, int], R]],
    topic: Callable[[str, tuple[R, ...]], TopicResult],
) -> tuple[TopicResult, ...]:
    """Per-topic entries ``topic(name, partition results)`` from results keyed by
    (topic, partition), topics in first-seen order."""
    grouped: dict[str, list[R]] = {}
    for (name, _), result in results:
        grouped.setdefault(name, []).append(result)
    return tuple(topic(name, tuple(parts)) for name, parts in grouped.items())
