"""Helpers for building version-specific kio responses cheaply.

Handlers serve many versions of one API with one code path: they name the classes of the
negotiated version through :func:`response_classes` and construct them with :func:`build`, which
drops keyword arguments the version does not have (a cached set lookup, not ``get_type_hints``).
:func:`partition_results` is the one loop over a request's topics and partitions that turns
each partition's :class:`KafkaError` into that partition's error code.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable, Iterable
from dataclasses import fields
from functools import cache
from types import ModuleType
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.core.requests import RequestContext
from headrace.core.security import ResourceType
from headrace.protocol.codec import response_schema

NO_THROTTLE = datetime.timedelta(0)
OK = ErrorCode.none


@cache
def response_module(api_key: int, api_version: int) -> ModuleType:
    """The kio module holding every response class of (api key, version)."""
    return sys.modules[response_schema(api_key, api_version).__module__]


def response_classes(api_key: int, api_version: int) -> ModuleType:
    return response_module(api_key, api_version)


_field_names: dict[type[Any], frozenset[str]] = {}


def build(cls: type[Any], **values: Any) -> Any:
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


def error_code(error: BaseException) -> ErrorCode:
    if isinstance(error, KafkaError):
        return error.code
    return ErrorCode.unknown_server_error


def error_message(error: BaseException) -> str:
    if isinstance(error, KafkaError):
        return error.message or error.code.name
    return f"{type(error).__name__}: {error}"


def _name(topic: Any) -> str:
    return str(topic.name)


def _partitions(topic: Any) -> Iterable[Any]:
    return topic.partitions  # type: ignore[no-any-return]


def partition_results(
    ctx: RequestContext,
    topics: Iterable[Any],
    *,
    answer: Callable[[str, Any], Any],
    failed: Callable[[str, Any, ErrorCode], Any],
    topic: Callable[[str, tuple[Any, ...]], Any],
    name_of: Callable[[Any], str] = _name,
    partitions_of: Callable[[Any], Iterable[Any]] = _partitions,
) -> tuple[Any, ...]:
    """Answer every partition of every requested topic: ``answer(topic, partition)``, or
    ``failed(topic, partition, code)`` when it raised :class:`KafkaError` or the authorizer
    denied the topic; ``topic(name, partition_results)`` groups them per topic."""
    results = []
    for requested in topics:
        name = name_of(requested)
        denied = (ResourceType.TOPIC, name) in ctx.denied
        partitions = []
        for partition in partitions_of(requested):
            if denied:
                partitions.append(failed(name, partition, ErrorCode.topic_authorization_failed))
                continue
            try:
                partitions.append(answer(name, partition))
            except KafkaError as error:
                partitions.append(failed(name, partition, error.code))
        results.append(topic(name, tuple(partitions)))
    return tuple(results)
