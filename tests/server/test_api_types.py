"""The static request/response unions of ``headrace.core.api_types`` against what is served.

Handlers are typed with a ``KafkaApi[Requests, Responses]``; mypy checks each handler against
every class in the unions, and ``KafkaApi.response`` finds the response class through kio's
index at run time. This test is where the two meet: for every registered API, the unions hold
exactly the classes of the versions the handler is registered for.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map

from headrace.cluster.handlers import cluster_api_handlers
from headrace.core import api_types
from headrace.core.requests import ApiHandler
from headrace.groups.consumer.handlers import consumer_group_api_handlers
from headrace.groups.handlers import group_api_handlers
from headrace.security.acl_api import acl_api_handlers
from headrace.security.handlers import sasl_api_handlers
from headrace.security.quota_handlers import quota_api_handlers
from headrace.server.handlers import admin, list_offsets, metadata, producers
from headrace.server.handlers.api_versions import api_versions_handler
from headrace.server.handlers.fetch import FETCH
from headrace.server.handlers.produce import PRODUCE
from headrace.transactions.handlers import transaction_api_handlers

#: Hand-framed responses (Produce both ways), so not in the unions.
HAND_FRAMED = {PRODUCE.key, FETCH.key}


def _registered() -> list[tuple[int, int, int]]:
    """(api key, min, max) of every kio-coded handler the broker registers."""
    handlers: list[ApiHandler[Any, Any]] = [
        *group_api_handlers(types.SimpleNamespace(coordinator_for=None)),  # type: ignore[arg-type]
        *consumer_group_api_handlers(None),  # type: ignore[arg-type]
        *cluster_api_handlers(types.SimpleNamespace(replicas=None)),  # type: ignore[arg-type]
        api_versions_handler(None),  # type: ignore[arg-type]
        *transaction_api_handlers(None, None, None, None),  # type: ignore[arg-type]
        *acl_api_handlers(None),
        *sasl_api_handlers(None, None),  # type: ignore[arg-type]
        *quota_api_handlers(None),  # type: ignore[arg-type]
    ]
    ranges = [(h.api_key, h.min_version, h.max_version) for h in handlers]
    for module in (metadata, list_offsets, admin, producers):
        ranges += [(api.api.key, api.min_version, api.max_version) for api in module.HANDLERS]
    return sorted(ranges)


def _members(alias: object) -> set[object]:
    return set(typing.get_args(alias)) or {alias}


@pytest.mark.parametrize(("key", "low", "high"), _registered(),
                         ids=[api_key_map[k] for k, _, _ in _registered()])
def test_unions_hold_exactly_the_registered_versions(key: int, low: int, high: int) -> None:
    stem = "".join(part.title() for part in api_key_map[key].split("_"))
    versions = range(low, high + 1)
    assert _members(getattr(api_types, f"{stem}Requests")) == {
        load_request_schema(key, v) for v in versions
    }
    assert _members(getattr(api_types, f"{stem}Responses")) == {
        load_response_schema(key, v) for v in versions
    }


def test_every_kio_coded_api_is_checked() -> None:
    assert len({key for key, _, _ in _registered()}) == 46
    assert not {key for key, _, _ in _registered()} & HAND_FRAMED
