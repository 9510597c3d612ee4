"""ApiVersions: advertise exactly the registered handlers' version ranges.

Clients negotiate every other API from this answer; an ApiVersions version we do not know gets
a v0-shaped UNSUPPORTED_VERSION answer that still lists our ranges, so the client can retry.
"""

from __future__ import annotations

import functools
from typing import Any

from kio.schema.api_versions.v0 import response as v0
from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, ApiRegistry, RequestContext
from headrace.core.responses import build, response_classes

API_KEY = 18


def _api_keys(module: Any, registry: ApiRegistry) -> tuple[Any, ...]:
    return tuple(
        module.ApiVersion(api_key=key, min_version=low, max_version=high)
        for key, low, high in registry.supported()
    )


def unsupported_version_response(registry: ApiRegistry) -> Any:
    return v0.ApiVersionsResponse(
        error_code=ErrorCode.unsupported_version, api_keys=_api_keys(v0, registry)
    )


async def handle_api_versions(registry: ApiRegistry, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(API_KEY, ctx.api_version)
    return build(
        module.ApiVersionsResponse, error_code=ErrorCode.none, api_keys=_api_keys(module, registry)
    )


def api_versions_handler(registry: ApiRegistry) -> ApiHandler:
    """ApiVersions answering from ``registry`` (which it is usually registered in)."""
    return ApiHandler(API_KEY, 0, 4, functools.partial(handle_api_versions, registry))
