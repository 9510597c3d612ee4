"""ApiVersions: advertise exactly the registered handlers' version ranges.

Clients negotiate every other API from this answer; an ApiVersions version we do not know gets
a v0-shaped UNSUPPORTED_VERSION answer that still lists our ranges, so the client can retry.
From v3 the answer also carries the cluster's feature levels (KIP-584): ``transaction.version``
2 tells a Kafka 4.x client to use KIP-890 part 2 transactions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from kio.schema.api_versions.v0 import response as v0
from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, ApiRegistry, KafkaApi, RequestContext
from headrace.core.responses import build

if TYPE_CHECKING:
    from headrace.core.api_types import ApiVersionsRequests, ApiVersionsResponses

T = TypeVar("T")

API_VERSIONS: KafkaApi[ApiVersionsRequests, ApiVersionsResponses] = KafkaApi(18)
#: The features this broker implements and their highest level (Kafka's supported features).
SUPPORTED_FEATURES = {"transaction.version": 2}
#: The features' epoch: levels are fixed for a broker's life, so one constant (>= 0: valid).
FEATURES_EPOCH = 1
FEATURES_FROM = 3


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
    registry: ApiRegistry, features: Mapping[str, int], request: ApiVersionsRequests,
    ctx: RequestContext,
) -> ApiVersionsResponses:
    module = API_VERSIONS.classes(ctx.api_version)
    response = API_VERSIONS.response(ctx.api_version)
    api_keys = _api_keys(module.ApiVersion, registry)
    if ctx.api_version < FEATURES_FROM:
        return build(response, error_code=ErrorCode.none, api_keys=api_keys)
    return build(
        response, error_code=ErrorCode.none, api_keys=api_keys,
        supported_features=tuple(
            build(module.SupportedFeatureKey, name=name, min_version=0, max_version=level)
            for name, level in SUPPORTED_FEATURES.items()
        ),
        finalized_features_epoch=FEATURES_EPOCH,
        finalized_features=tuple(
            build(module.FinalizedFeatureKey, name=name, min_version_level=level,
                  max_version_level=level)
            for name, level in features.items() if level > 0
        ),
    )


def api_versions_handler(
    registry: ApiRegistry, features: Mapping[str, int] | None = None,
) -> ApiHandler[ApiVersionsRequests, ApiVersionsResponses]:
    """ApiVersions answering from ``registry`` (which it is usually registered in), with the
    finalized level of each of ``features`` (0: not enabled, left out)."""
    return API_VERSIONS.handler(
        0, 4, functools.partial(handle_api_versions, registry, dict(features or {}))
    )
