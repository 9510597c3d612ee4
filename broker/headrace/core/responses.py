"""Helpers for building version-specific kio responses cheaply.

Handlers serve many versions of one API with one code path: they name the classes of the
negotiated version through :func:`response_classes` and construct them with :func:`build`, which
drops keyword arguments the version does not have (a cached set lookup, not ``get_type_hints``).
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import fields
from functools import cache
from types import ModuleType
from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
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
    """Construct ``cls`` from the keyword arguments it has fields for."""
    names = _field_names.get(cls)
    if names is None:
        names = _field_names[cls] = frozenset(f.name for f in fields(cls))
    return cls(**{key: value for key, value in values.items() if key in names})


def error_code(error: BaseException) -> ErrorCode:
    if isinstance(error, KafkaError):
        return error.code
    return ErrorCode.unknown_server_error


def error_message(error: BaseException) -> str:
    if isinstance(error, KafkaError):
        return error.message or error.code.name
    return f"{type(error).__name__}: {error}"
