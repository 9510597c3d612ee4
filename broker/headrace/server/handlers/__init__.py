"""Kafka API handlers served by the broker itself (the group APIs come from headrace.groups)."""

from __future__ import annotations

from headrace.core.requests import ApiHandler


def default_api_handlers() -> list[ApiHandler]:
    """Every API this package implements, with the exact version ranges it serves."""
    from headrace.server.handlers import (
        admin,
        api_versions,
        fetch,
        init_producer_id,
        list_offsets,
        metadata,
        produce,
    )

    return [
        *api_versions.HANDLERS,
        *metadata.HANDLERS,
        *produce.HANDLERS,
        *fetch.HANDLERS,
        *list_offsets.HANDLERS,
        *init_producer_id.HANDLERS,
        *admin.HANDLERS,
    ]
