"""Kafka's ACL model as plain values: bindings, filters, and the one rule that decides an action.

An :class:`AclBinding` says that a principal from a host is allowed (or denied) an operation on
a resource pattern: a LITERAL name (``*`` is every name) or a PREFIXED one. A request's
:class:`~headrace.core.security.Action` is decided by :func:`decide` over the bindings that
match its resource, as Kafka's ``StandardAuthorizer`` does: a matching DENY wins; otherwise a
matching ALLOW of the operation, of ALL, or of an operation that implies it (READ, WRITE,
DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows; no binding at
all for the resource falls to ``allow.everyone.if.no.acl.found``. :class:`AclFilter` is the
DescribeAcls/DeleteAcls filter (ANY and MATCH patterns, null fields match all). Pure: no I/O;
:mod:`headrace.security.authorizer` indexes and caches, the stored form is :func:`encode`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass

from headrace.core.security import CLUSTER_NAME, Action, Operation, Principal, ResourceType

#: Kafka's wildcard resource name (LITERAL patterns) and host, and its wildcard principal.
WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"

#: Wire codes of the filter-only values (not in core.security's enums, which a request needs).
ANY_CODE = 1


class PatternType(enum.IntEnum):
    """Kafka's ``PatternType``: LITERAL and PREFIXED bind; ANY and MATCH only filter."""

    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Permission(enum.IntEnum):
    """Kafka's ``AclPermissionType`` (ANY only filters)."""

    ANY = 1
    DENY = 2
    ALLOW = 3


#: Operation → the operations whose ALLOW also allows it (Kafka's implied operations).
IMPLIED_BY: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset({Operation.READ, Operation.WRITE, Operation.DELETE,
                                   Operation.ALTER}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.ALTER_CONFIGS}),
}


class InvalidAcl(ValueError):
    """A binding or filter Kafka would refuse with INVALID_REQUEST (the message says why)."""


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: ``permission`` of ``operation`` on a resource pattern for ``principal``@``host``."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def covers(self, resource_type: ResourceType, name: str) -> bool:
        """Whether this binding's pattern names the resource ``(resource_type, name)``."""
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.PREFIXED:
            return name.startswith(self.name)
        return self.name in (name, WILDCARD)

    def applies_to(self, principal: str, host: str) -> bool:
        return self.principal in (principal, WILDCARD_PRINCIPAL) and self.host in (host, WILDCARD)


def parse_principal(text: str) -> Principal:
    """``User:alice`` → Principal; anything without a type is an operator's or client's error."""
    principal_type, sep, name = text.partition(":")
    if not sep or not principal_type or not name:
        raise InvalidAcl(f"principal {text!r} is not TYPE:NAME (e.g. User:alice)")
    return Principal(principal_type, name)


def validated(resource_type: int, name: str, pattern_type: int, principal: str, host: str,
              operation: int, permission: int) -> AclBinding:
    """A binding from wire values, refused as Kafka's CreateAcls refuses one."""
    try:
        rtype = ResourceType(resource_type)
        op = Operation(operation)
        pattern = PatternType(pattern_type)
        perm = Permission(permission)
    except ValueError as error:
        raise InvalidAcl(f"unknown value in ACL: {error}") from None
    if pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise InvalidAcl(f"pattern type {pattern.name} cannot be stored (LITERAL or PREFIXED)")
    if perm == Permission.ANY:
        raise InvalidAcl("permission ANY cannot be stored (ALLOW or DENY)")
    if not name:
        raise InvalidAcl("resource name must not be empty")
    if rtype == ResourceType.CLUSTER and name != CLUSTER_NAME:
        raise InvalidAcl(f"the only valid name for the CLUSTER resource is {CLUSTER_NAME}")
    parse_principal(principal)
    if not host:
        raise InvalidAcl("host must not be empty (* for every host)")
    return AclBinding(rtype, name, pattern, principal, host, op, perm)


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Kafka's ``AclBindingFilter``: None fields and ANY values match everything; pattern type
    MATCH matches every pattern that names ``name`` (literal, ``*`` or a prefix of it)."""

    resource_type: int = ANY_CODE
    name: str | None = None
    pattern_type: int = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: int = ANY_CODE
    permission: int = Permission.ANY

    def matches(self, binding: AclBinding) -> bool:
        if self.resource_type != ANY_CODE and self.resource_type != binding.resource_type:
            return False
        if self.pattern_type not in (PatternType.ANY, PatternType.MATCH,
                                     binding.pattern_type):
            return False
        if self.name is not None:
            if self.pattern_type in (PatternType.ANY, binding.pattern_type):
                if self.name != binding.name:
                    return False
            elif binding.pattern_type == PatternType.LITERAL:
                if binding.name not in (self.name, WILDCARD):
                    return False
            elif not self.name.startswith(binding.name):
                return False
        if self.principal is not None and self.principal != binding.principal:
            return False
        if self.host is not None and self.host != binding.host:
            return False
        if self.operation != ANY_CODE and self.operation != binding.operation:
            return False
        return self.permission in (Permission.ANY, binding.permission)

    def check(self) -> AclFilter:
        """This filter, or :class:`InvalidAcl` for values Kafka does not know."""
        known_types = {ANY_CODE, *ResourceType}
        known_ops = {ANY_CODE, *Operation}
        if self.resource_type not in known_types:
            raise InvalidAcl(f"unknown resource type {self.resource_type}")
        if self.pattern_type not in set(PatternType):
            raise InvalidAcl(f"unknown pattern type {self.pattern_type}")
        if self.operation not in known_ops:
            raise InvalidAcl(f"unknown operation {self.operation}")
        if self.permission not in set(Permission):
            raise InvalidAcl(f"unknown permission type {self.permission}")
        return self


def grants(binding: AclBinding, operation: Operation) -> bool:
    """Whether an ALLOW binding of its operation allows ``operation``."""
    return binding.operation in (operation, Operation.ALL) or (
        binding.operation in IMPLIED_BY.get(operation, ())
    )


def decide(bindings: Iterable[AclBinding], principal: str, host: str, action: Action,
           *, allow_if_no_acl: bool = False) -> bool:
    """Kafka's verdict for ``action`` given every binding that covers its resource."""
    found = False
    allowed = False
    for binding in bindings:
        found = True
        if not binding.applies_to(principal, host):
            continue
        if binding.permission == Permission.DENY:
            if binding.operation in (action.operation, Operation.ALL):
                return False
        elif grants(binding, action.operation):
            allowed = True
    return allowed or (allow_if_no_acl and not found)


def encode(binding: AclBinding) -> tuple[str, bytes]:
    """The binding's SecurityRecords key (kind ``acl``) and value: one JSON array of its
    fields, so two equal bindings are one record."""
    fields = [int(binding.resource_type), binding.name, int(binding.pattern_type),
              binding.principal, binding.host, int(binding.operation), int(binding.permission)]
    text = json.dumps(fields, separators=(",", ":"))
    return text, text.encode("utf-8")


def decode(value: bytes) -> AclBinding:
    rtype, name, pattern, principal, host, operation, permission = json.loads(value)
    return AclBinding(ResourceType(rtype), name, PatternType(pattern), principal, host,
                      Operation(operation), Permission(permission))


__all__ = [
    "CLUSTER_NAME", "IMPLIED_BY", "WILDCARD", "WILDCARD_PRINCIPAL", "AclBinding", "AclFilter",
    "InvalidAcl", "PatternType", "Permission", "decide", "decode", "encode", "grants",
    "parse_principal", "validated",
]
