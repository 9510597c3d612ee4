"""ApiVersions: advertise exactly the registered handlers' version ranges.

Clients negotiate every other API from this answer; an ApiVersions version we do not know gets
a v0-shaped UNSUPPORTED_VERSION answer that still lists our ranges, so the client can retry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from kio.schema.api_versions.v0 import response as v0
from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, ApiRegistry, KafkaApi, RequestContext
from headrace.core.responses import build

if TYPE_CHECKING:
    from headrace.core.api_types import ApiVersionsRequests, ApiVersionsResponses

T = TypeVar("T")

API_VERSIONS: KafkaApi[ApiVersionsRequests, ApiVersionsResponses] = KafkaApi(18)


def _api_keys(entry: Callable[..., T], registry: ApiRegistry) -> tuple[T, ...]:
    return tuple(
        entry(api_key=key, min_version=low, max_version=high)
        for key, low, high in registry.supported()
    )


def unsupported_version_response(registry: ApiRegistry) -> v0.ApiVersionsResponse:
    return v0.ApiVersionsResponse(
        error_code=ErrorCode.unsupported_version, api_keys=_api_keys(v0.ApiVersion, registry)
    )


async def handle_api_versions(
    registry: ApiRegistry, request: ApiVersionsRequests, ctx: RequestContext
) -> ApiVersionsResponses:
    return build(
        API_VERSIONS.response(ctx.api_version),
        error_code=ErrorCode.none,
        api_keys=_api_keys(API_VERSIONS.classes(ctx.api_version).ApiVersion, registry),
    )


def api_versions_handler(
    registry: ApiRegistry,
) -> ApiHandler[ApiVersionsRequests, ApiVersionsResponses]:
    """ApiVersions answering from ``registry`` (which it is usually registered in)."""
    return API_VERSIONS.handler(0, 4, functools.partial(handle_api_versions, registry))
