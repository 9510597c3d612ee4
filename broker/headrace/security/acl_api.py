"""CreateAcls (30), DescribeAcls (29) and DeleteAcls (31): the ACL bindings over Kafka's protocol.

What ``kafka-acls``, AdminClient ``create_acls``/``describe_acls``/``delete_acls`` and
``headrace acls`` speak. DescribeAcls needs DESCRIBE on the cluster, the other two ALTER
(CLUSTER_AUTHORIZATION_FAILED otherwise); without an authorizer there are no ACLs to manage
and every answer is SECURITY_DISABLED, as Kafka's. A binding or filter Kafka would refuse is
answered with INVALID_REQUEST and its reason, per creation or filter.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from headrace.core.requests import ApiHandler, KafkaApi, RequestContext
from headrace.core.responses import build
from headrace.core.security import Action, Operation, ResourceType
from headrace.security.acls import CLUSTER_NAME, AclBinding, AclFilter, InvalidAcl, validated
from headrace.security.authorizer import AclStore

if TYPE_CHECKING:
    from headrace.core.api_types import (
        CreateAclsRequests,
        CreateAclsResponses,
        DeleteAclsRequests,
        DeleteAclsResponses,
        DescribeAclsRequests,
        DescribeAclsResponses,
    )

DESCRIBE_ACLS: KafkaApi[DescribeAclsRequests, DescribeAclsResponses] = KafkaApi(29)
CREATE_ACLS: KafkaApi[CreateAclsRequests, CreateAclsResponses] = KafkaApi(30)
DELETE_ACLS: KafkaApi[DeleteAclsRequests, DeleteAclsResponses] = KafkaApi(31)
#: Kafka 4's ranges (v0 is gone from it and from kio); v2+ are flexible.
VERSIONS = (1, 3)

_DISABLED = "no authorizer is configured on the broker (--authorizer acl)"


def _on_cluster(operation: Operation) -> Any:
    def actions(request: object) -> Sequence[Action]:
        return [Action(operation, ResourceType.CLUSTER, CLUSTER_NAME)]

    return actions


def _refusal(store: AclStore | None, ctx: RequestContext) -> tuple[ErrorCode, str] | None:
    if ctx.refused(ResourceType.CLUSTER, CLUSTER_NAME):
        return ErrorCode.cluster_authorization_failed, "not authorized to manage ACLs"
    if store is None:
        return ErrorCode.security_disabled, _DISABLED
    return None


def _filter(entry: Any) -> AclFilter:
    return AclFilter(
        int(entry.resource_type_filter), entry.resource_name_filter,
        int(entry.pattern_type_filter), entry.principal_filter, entry.host_filter,
        int(entry.operation), int(entry.permission_type),
    ).check()


async def _describe(store: AclStore | None, request: DescribeAclsRequests,
                    ctx: RequestContext) -> DescribeAclsResponses:
    module = DESCRIBE_ACLS.classes(ctx.api_version)
    response = DESCRIBE_ACLS.response(ctx.api_version)
    refused = _refusal(store, ctx)
    if refused is not None:
        return build(response, error_code=refused[0], error_message=refused[1], resources=())
    assert store is not None
    try:
        wanted = _filter(request)
    except InvalidAcl as error:
        return build(response, error_code=ErrorCode.invalid_request, error_message=str(error),
                     resources=())
    by_pattern: dict[tuple[int, str, int], list[AclBinding]] = {}
    for binding in sorted(store.bindings(), key=_order):
        if wanted.matches(binding):
            key = (int(binding.resource_type), binding.name, int(binding.pattern_type))
            by_pattern.setdefault(key, []).append(binding)
    resources = tuple(
        build(module.DescribeAclsResource, resource_type=rtype, resource_name=name,
              pattern_type=pattern, acls=tuple(
                  build(module.AclDescription, principal=b.principal, host=b.host,
                        operation=int(b.operation), permission_type=int(b.permission))
                  for b in bindings))
        for (rtype, name, pattern), bindings in by_pattern.items()
    )
    return build(response, error_code=ErrorCode.none, error_message=None, resources=resources)


def _order(binding: AclBinding) -> tuple[int, str, int, str, str, int, int]:
    return (int(binding.resource_type), binding.name, int(binding.pattern_type),
            binding.principal, binding.host, int(binding.operation), int(binding.permission))


async def _create(store: AclStore | None, request: CreateAclsRequests,
                  ctx: RequestContext) -> CreateAclsResponses:
    module = CREATE_ACLS.classes(ctx.api_version)
    refused = _refusal(store, ctx)
    results: list[tuple[ErrorCode, str | None]] = []
    valid: list[AclBinding] = []
    for creation in request.creations:
        if refused is not None:
            results.append(refused)
            continue
        try:
            valid.append(validated(
                int(creation.resource_type), creation.resource_name,
                int(creation.resource_pattern_type), creation.principal, creation.host,
                int(creation.operation), int(creation.permission_type),
            ))
        except InvalidAcl as error:
            results.append((ErrorCode.invalid_request, str(error)))
        else:
            results.append((ErrorCode.none, None))
    if valid and store is not None:
        await store.create(valid)
    return build(CREATE_ACLS.response(ctx.api_version), results=tuple(
        build(module.AclCreationResult, error_code=code, error_message=message)
        for code, message in results
    ))


async def _delete(store: AclStore | None, request: DeleteAclsRequests,
                  ctx: RequestContext) -> DeleteAclsResponses:
    module = DELETE_ACLS.classes(ctx.api_version)
    refused = _refusal(store, ctx)
    filters: list[AclFilter | tuple[ErrorCode, str]] = []
    for entry in request.filters:
        if refused is not None:
            filters.append(refused)
            continue
        try:
            filters.append(_filter(entry))
        except InvalidAcl as error:
            filters.append((ErrorCode.invalid_request, str(error)))
    valid = [f for f in filters if isinstance(f, AclFilter)]
    matched = iter(await store.delete(valid) if store is not None and valid else [])
    results = []
    for outcome in filters:
        if not isinstance(outcome, AclFilter):
            results.append(build(module.DeleteAclsFilterResult, error_code=outcome[0],
                                 error_message=outcome[1], matching_acls=()))
            continue
        results.append(build(
            module.DeleteAclsFilterResult, error_code=ErrorCode.none, error_message=None,
            matching_acls=tuple(
                build(module.DeleteAclsMatchingAcl, error_code=ErrorCode.none,
                      error_message=None, resource_type=int(b.resource_type),
                      resource_name=b.name, pattern_type=int(b.pattern_type),
                      principal=b.principal, host=b.host, operation=int(b.operation),
                      permission_type=int(b.permission))
                for b in sorted(next(matched), key=_order)
            ),
        ))
    return build(DELETE_ACLS.response(ctx.api_version), filter_results=tuple(results))


def acl_api_handlers(store: AclStore | None) -> list[ApiHandler[Any, Any]]:
    """The three ACL APIs over ``store`` (None: no authorizer, SECURITY_DISABLED)."""
    return [
        DESCRIBE_ACLS.handler(*VERSIONS, functools.partial(_describe, store),
                              _on_cluster(Operation.DESCRIBE)),
        CREATE_ACLS.handler(*VERSIONS, functools.partial(_create, store),
                            _on_cluster(Operation.ALTER)),
        DELETE_ACLS.handler(*VERSIONS, functools.partial(_delete, store),
                            _on_cluster(Operation.ALTER)),
    ]


__all__ = ["CREATE_ACLS", "DELETE_ACLS", "DESCRIBE_ACLS", "acl_api_handlers"]
