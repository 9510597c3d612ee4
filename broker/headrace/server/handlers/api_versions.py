"""ApiVersions: advertise exactly the registered handlers' version ranges.

Clients negotiate every other API from this answer; an ApiVersions version we do not know gets
a v0-shaped UNSUPPORTED_VERSION answer that still lists our ranges, so the client can retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kio.schema.api_versions.v0 import response as v0
from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, RequestContext
from headrace.core.responses import NO_THROTTLE, build, response_classes

if TYPE_CHECKING:
    from headrace.server.broker import Broker

API_KEY = 18


def _api_keys(module: Any, broker: Broker) -> tuple[Any, ...]:
    return tuple(
        module.ApiVersion(api_key=key, min_version=low, max_version=high)
        for key, low, high in broker.registry.supported()
    )


def unsupported_version_response(broker: Broker) -> Any:
    return v0.ApiVersionsResponse(
        error_code=ErrorCode.unsupported_version, api_keys=_api_keys(v0, broker)
    )


async def handle_api_versions(request: Any, ctx: RequestContext) -> Any:
    module = response_classes(API_KEY, ctx.api_version)
    return build(
        module.ApiVersionsResponse,
        error_code=ErrorCode.none,
        api_keys=_api_keys(module, ctx.broker),
        throttle_time=NO_THROTTLE,
    )


HANDLERS = [ApiHandler(API_KEY, 0, 4, handle_api_versions)]
