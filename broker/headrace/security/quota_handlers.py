"""DescribeClientQuotas (48) and AlterClientQuotas (49), KIP-546, over the client-quota manager.

What ``kafka-configs --entity-type users|clients|ips`` and admin clients' ``describeClientQuotas``
/ ``alterClientQuotas`` send. Describing needs DESCRIBE_CONFIGS on the cluster, altering
ALTER_CONFIGS (both answer CLUSTER_AUTHORIZATION_FAILED otherwise, as Kafka). Filters and
validation are Kafka's (:mod:`.quotas`); an alteration is answered once it is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import f64

from headrace.core.requests import ApiHandler, KafkaApi, RequestContext
from headrace.core.responses import build
from headrace.core.security import Action, Operation, ResourceType
from headrace.security.quota_manager import ClientQuotaManager
from headrace.security.quotas import QuotaRequestError, quota_filter

if TYPE_CHECKING:
    from headrace.core.api_types import (
        AlterClientQuotasRequests,
        AlterClientQuotasResponses,
        DescribeClientQuotasRequests,
        DescribeClientQuotasResponses,
    )

DESCRIBE_CLIENT_QUOTAS: KafkaApi[DescribeClientQuotasRequests, DescribeClientQuotasResponses] = (
    KafkaApi(48))
ALTER_CLIENT_QUOTAS: KafkaApi[AlterClientQuotasRequests, AlterClientQuotasResponses] = (
    KafkaApi(49))
_CLUSTER = (int(ResourceType.CLUSTER), "kafka-cluster")


def _on_cluster(operation: Operation) -> Callable[[Any], Sequence[Action]]:
    def actions(request: Any) -> Sequence[Action]:
        return [Action(operation, ResourceType.CLUSTER, "kafka-cluster")]

    return actions


def quota_api_handlers(manager: ClientQuotaManager) -> list[ApiHandler[Any, Any]]:
    """DescribeClientQuotas v0-1 and AlterClientQuotas v0-1 over ``manager``."""

    async def describe(
        request: DescribeClientQuotasRequests, ctx: RequestContext
    ) -> DescribeClientQuotasResponses:
        response = DESCRIBE_CLIENT_QUOTAS.response(ctx.api_version)
        module = DESCRIBE_CLIENT_QUOTAS.classes(ctx.api_version)
        if _CLUSTER in ctx.denied:
            return build(response, error_code=ErrorCode.cluster_authorization_failed,
                         error_message=None, entries=None)
        try:
            matching = quota_filter(
                ((c.entity_type, int(c.match_type), c.match) for c in request.components),
                bool(request.strict))
        except QuotaRequestError as error:
            code = (ErrorCode.unsupported_version if error.unsupported
                    else ErrorCode.invalid_request)
            return build(response, error_code=code, error_message=str(error), entries=None)
        entries = tuple(
            build(module.EntryData,
                  entity=tuple(build(module.EntityData, entity_type=kind, entity_name=name)
                               for kind, name in entity.parts),
                  values=tuple(build(module.ValueData, key=key, value=f64(value))
                               for key, value in sorted(values.items())))
            for entity, values in manager.describe(matching)
        )
        return build(response, error_code=ErrorCode.none, error_message=None, entries=entries)

    async def alter(
        request: AlterClientQuotasRequests, ctx: RequestContext
    ) -> AlterClientQuotasResponses:
        response = ALTER_CLIENT_QUOTAS.response(ctx.api_version)
        module = ALTER_CLIENT_QUOTAS.classes(ctx.api_version)

        def entity_of(entry: Any) -> tuple[Any, ...]:
            return tuple(build(module.EntityData, entity_type=e.entity_type,
                               entity_name=e.entity_name) for e in entry.entity)

        if _CLUSTER in ctx.denied:
            return build(response, entries=tuple(
                build(module.EntryData, error_code=ErrorCode.cluster_authorization_failed,
                      error_message=None, entity=entity_of(entry))
                for entry in request.entries))
        errors = await manager.alter(
            [([(e.entity_type, e.entity_name) for e in entry.entity],
              [(op.key, None if op.remove else float(op.value)) for op in entry.ops])
             for entry in request.entries],
            bool(request.validate_only))
        return build(response, entries=tuple(
            build(module.EntryData,
                  error_code=ErrorCode.none if error is None else ErrorCode.invalid_request,
                  error_message=error, entity=entity_of(entry))
            for entry, error in zip(request.entries, errors, strict=True)))

    return [
        DESCRIBE_CLIENT_QUOTAS.handler(0, 1, describe, _on_cluster(Operation.DESCRIBE_CONFIGS)),
        ALTER_CLIENT_QUOTAS.handler(0, 1, alter, _on_cluster(Operation.ALTER_CONFIGS)),
    ]


__all__ = ["ALTER_CLIENT_QUOTAS", "DESCRIBE_CLIENT_QUOTAS", "quota_api_handlers"]
