"""Kafka API handlers served by the broker itself (group and cluster APIs come from their
packages; :mod:`headrace.app` registers them all in one registry)."""

from __future__ import annotations

from typing import Any

from headrace.core.broker import Broker
from headrace.core.requests import ApiHandler
from headrace.server.handlers import (
    admin,
    describe_topic_partitions,
    fetch,
    list_offsets,
    metadata,
    produce,
    producers,
)
from headrace.server.handlers.binding import bind


def broker_api_handlers(broker: Broker) -> list[ApiHandler[Any, Any]]:
    """Every API this package implements over ``broker``, with the version ranges it serves
    (ApiVersions is :func:`~headrace.server.handlers.api_versions.api_versions_handler`)."""
    return bind(
        [
            *metadata.HANDLERS,
            *describe_topic_partitions.HANDLERS,
            *produce.HANDLERS,
            *fetch.HANDLERS,
            *list_offsets.HANDLERS,
            *admin.HANDLERS,
            *producers.HANDLERS,
        ],
        broker,
    )
