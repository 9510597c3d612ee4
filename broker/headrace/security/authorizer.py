"""The ACL authorizer: Kafka's ``StandardAuthorizer`` behind the pipeline's ``Authorizer`` seam.

The request pipeline asks it about each action a request declares (and, through the request
context, about resources a handler lists). Super users may do everything; anyone else needs an
ALLOW binding and no DENY (:func:`~headrace.security.acls.decide`); a resource no binding names
is denied unless ``allow.everyone.if.no.acl.found``. Bindings live in
:class:`~headrace.security.records.SecurityRecords` (kind ``acl``, :class:`AclStore`), so every
broker of a cluster sees every change.

A check must cost about a microsecond with tens of thousands of bindings, so the bindings are
indexed by resource type and name (literal names in a dict, prefixes looked up by each prefix
of the name) and verdicts are cached per (principal, host, action); any change of the bindings
rebuilds the index and empties the cache.

Two of Kafka's request-level rules live here because they are the same wherever they apply:
CREATE on the CLUSTER allows creating any topic (CreateTopics, Metadata auto-creation), and
IDEMPOTENT_WRITE on the CLUSTER is also allowed to whoever may WRITE some topic (KIP-679).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from headrace.core.requests import RequestContext
from headrace.core.security import Action, Operation, ResourceType
from headrace.security.acls import (
    CLUSTER_NAME,
    WILDCARD,
    AclBinding,
    AclFilter,
    PatternType,
    Permission,
    decide,
    decode,
    encode,
    grants,
)
from headrace.security.records import SecurityRecords

KIND = "acl"
#: Cached verdicts kept before the cache starts over (bounds memory against many principals).
CACHE_ENTRIES = 100_000

#: A cached verdict's key: the action's operation, resource type and name, the principal's
#: type and name, the client's host.
_Key = tuple[Operation, ResourceType, str, str, str, str]

_CREATE_CLUSTER = Action(Operation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME)


class AclStore:
    """The ACL bindings in a :class:`SecurityRecords` (kind ``acl``)."""

    def __init__(self, records: SecurityRecords) -> None:
        self.records = records
        #: Stored value → its binding: a change decodes only the records it brought.
        self._decoded: dict[bytes, AclBinding] = {}

    def bindings(self) -> list[AclBinding]:
        decoded = self._decoded
        fresh = {value: decoded.get(value) or decode(value)
                 for value in self.records.snapshot(KIND).values()}
        self._decoded = fresh
        return list(fresh.values())

    async def create(self, bindings: Iterable[AclBinding]) -> None:
        """Store ``bindings`` (one already stored stays one)."""
        changes: dict[str, bytes | None] = dict(encode(b) for b in bindings)
        if changes:
            await self.records.write(KIND, changes)

    async def delete(self, filters: Sequence[AclFilter]) -> list[list[AclBinding]]:
        """Delete every binding a filter matches; per filter, the bindings it matched."""
        current = self.bindings()
        matched = [[b for b in current if f.matches(b)] for f in filters]
        changes: dict[str, bytes | None] = {
            encode(b)[0]: None for bindings in matched for b in bindings
        }
        if changes:
            await self.records.write(KIND, changes)
        return matched


class _Index:
    """The bindings of one snapshot, by resource type, then literal name or prefix."""

    def __init__(self, bindings: Iterable[AclBinding]) -> None:
        self.literal: dict[tuple[ResourceType, str], list[AclBinding]] = {}
        self.prefixed: dict[ResourceType, dict[str, list[AclBinding]]] = {}
        self.longest_prefix: dict[ResourceType, int] = {}
        for binding in bindings:
            if binding.pattern_type == PatternType.PREFIXED:
                by_prefix = self.prefixed.setdefault(binding.resource_type, {})
                by_prefix.setdefault(binding.name, []).append(binding)
                self.longest_prefix[binding.resource_type] = max(
                    self.longest_prefix.get(binding.resource_type, 0), len(binding.name))
            else:
                key = (binding.resource_type, binding.name)
                self.literal.setdefault(key, []).append(binding)

    def covering(self, resource_type: ResourceType, name: str) -> list[AclBinding]:
        """Every binding whose pattern names ``(resource_type, name)``."""
        found = list(self.literal.get((resource_type, WILDCARD), ()))
        if name != WILDCARD:
            found.extend(self.literal.get((resource_type, name), ()))
        by_prefix = self.prefixed.get(resource_type)
        if by_prefix:
            for end in range(1, min(len(name), self.longest_prefix[resource_type]) + 1):
                found.extend(by_prefix.get(name[:end], ()))
        return found

    def of_type(self, resource_type: ResourceType) -> Iterable[AclBinding]:
        for (rtype, _), bindings in self.literal.items():
            if rtype == resource_type:
                yield from bindings
        for bindings in self.prefixed.get(resource_type, {}).values():
            yield from bindings


class AclAuthorizer:
    """Decides actions from the ACL bindings, for the request pipeline."""

    enabled = True

    def __init__(self, store: AclStore, super_users: Iterable[str] = (), *,
                 allow_everyone_if_no_acl_found: bool = False) -> None:
        self.store = store
        self.super_users = frozenset(super_users)
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self._index: _Index | None = None
        self._verdicts: dict[_Key, bool] = {}
        store.records.subscribe(self._changed)

    def _changed(self, kind: str) -> None:
        if kind == KIND:
            self._index = None
            self._verdicts = {}

    def authorize(self, ctx: RequestContext, actions: Sequence[Action]) -> Sequence[bool]:
        session = ctx.session
        principal = session.principal
        host = session.client_host
        verdicts = self._verdicts
        answers = []
        for action in actions:
            # A flat tuple of ints and strings: hashed in C, unlike the dataclasses it is from.
            key = (action.operation, action.resource_type, action.name,
                   principal.principal_type, principal.name, host)
            verdict = verdicts.get(key)
            if verdict is None:
                verdict = self._remember(key, str(principal), host, action)
            answers.append(verdict)
        return answers

    def allows(self, principal: str, host: str, action: Action) -> bool:
        """The verdict for ``principal`` (``User:alice``) from ``host`` (cached)."""
        kind, _, name = principal.partition(":")
        key = (action.operation, action.resource_type, action.name, kind, name, host)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._remember(key, principal, host, action)
        return verdict

    def _remember(self, key: _Key, principal: str, host: str, action: Action) -> bool:
        if len(self._verdicts) >= CACHE_ENTRIES:
            self._verdicts = {}
        verdict = self._verdicts[key] = self._decide(principal, host, action)
        return verdict

    def _decide(self, principal: str, host: str, action: Action) -> bool:
        if principal in self.super_users:
            return True
        index = self._index
        if index is None:
            index = self._index = _Index(self.store.bindings())
        allowed = decide(index.covering(action.resource_type, action.name), principal, host,
                         action, allow_if_no_acl=self.allow_everyone_if_no_acl_found)
        if allowed:
            return True
        if action.operation == Operation.CREATE and action.resource_type == ResourceType.TOPIC:
            return self.allows(principal, host, _CREATE_CLUSTER)
        if (action.operation == Operation.IDEMPOTENT_WRITE
                and action.resource_type == ResourceType.CLUSTER):
            return self._may_write_some_topic(index, principal, host)
        return False

    def _may_write_some_topic(self, index: _Index, principal: str, host: str) -> bool:
        """Kafka's ``authorizeByResourceType(WRITE, TOPIC)``: some ALLOW binding of WRITE on
        topics applies, and no DENY of every topic (literal ``*`` or the empty prefix) does."""
        allowed = False
        for binding in index.of_type(ResourceType.TOPIC):
            if not binding.applies_to(principal, host):
                continue
            if binding.permission == Permission.DENY:
                if binding.operation in (Operation.WRITE, Operation.ALL) and (
                        binding.name == WILDCARD and binding.pattern_type == PatternType.LITERAL):
                    return False
            elif grants(binding, Operation.WRITE):
                allowed = True
        return allowed


__all__ = ["KIND", "AclAuthorizer", "AclStore"]
