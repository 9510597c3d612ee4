"""The ACL model and the authorizer's index and cache against a brute-force reading of Kafka's
rules: for random bindings and requests, the indexed, cached verdict is the reference's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.core.security import CLUSTER_NAME, Action, Operation, ResourceType
from headrace.security.acls import (
    AclBinding,
    AclFilter,
    InvalidAcl,
    PatternType,
    Permission,
    decode,
    encode,
    validated,
)
from headrace.security.authorizer import AclAuthorizer, AclStore
from headrace.security.records import MemorySecurityRecords

NAMES = ["a", "ab", "abc", "b", "*"]
PRINCIPALS = ["User:alice", "User:bob", "User:*"]
HOSTS = ["10.0.0.1", "10.0.0.2", "*"]
OPERATIONS = [o for o in Operation]

bindings = st.builds(
    AclBinding,
    st.sampled_from([ResourceType.TOPIC, ResourceType.GROUP]),
    st.sampled_from(NAMES),
    st.sampled_from([PatternType.LITERAL, PatternType.PREFIXED]),
    st.sampled_from(PRINCIPALS),
    st.sampled_from(HOSTS),
    st.sampled_from(OPERATIONS),
    st.sampled_from([Permission.ALLOW, Permission.DENY]),
)
actions = st.builds(
    Action, st.sampled_from(OPERATIONS), st.sampled_from([ResourceType.TOPIC, ResourceType.GROUP]),
    st.sampled_from(["a", "ab", "abc", "abd", "b", "c"]),
)

IMPLIED = {Operation.DESCRIBE: {Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER},
           Operation.DESCRIBE_CONFIGS: {Operation.ALTER_CONFIGS}}


def reference(acls: list[AclBinding], principal: str, host: str, action: Action,
              allow_if_none: bool, super_users: frozenset[str] = frozenset()) -> bool:
    """Kafka's rules read literally, one binding at a time."""
    if principal in super_users:
        return True

    def names(b: AclBinding) -> bool:
        if b.resource_type != action.resource_type:
            return False
        if b.pattern_type == PatternType.PREFIXED:
            return action.name.startswith(b.name)
        return b.name == action.name or b.name == "*"

    covering = [b for b in acls if names(b)]
    mine = [b for b in covering if b.principal in (principal, "User:*")
            and b.host in (host, "*")]
    if any(b.permission == Permission.DENY and b.operation in (action.operation, Operation.ALL)
           for b in mine):
        return False
    if any(b.permission == Permission.ALLOW and (
            b.operation in (action.operation, Operation.ALL)
            or b.operation in IMPLIED.get(action.operation, ())) for b in mine):
        return True
    return allow_if_none and not covering


def _authorizer(acls: list[AclBinding], **kwargs: object) -> AclAuthorizer:
    store = AclStore(MemorySecurityRecords())
    asyncio.run(store.create(acls))
    return AclAuthorizer(store, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(bindings, max_size=12), st.lists(actions, min_size=1, max_size=6),
       st.sampled_from(["User:alice", "User:bob", "User:carol"]),
       st.sampled_from(["10.0.0.1", "10.0.0.2"]), st.booleans())
def test_the_indexed_cached_verdict_is_the_brute_force_one(
        acls: list[AclBinding], asked: list[Action], principal: str, host: str,
        allow_if_none: bool) -> None:
    authorizer = _authorizer(acls, allow_everyone_if_no_acl_found=allow_if_none)
    for action in asked * 2:  # the second round is answered from the cache
        if action.operation == Operation.CREATE and action.resource_type == ResourceType.TOPIC:
            continue  # CREATE on the cluster also allows it: below
        assert authorizer.allows(principal, host, action) == reference(
            acls, principal, host, action, allow_if_none), action


@settings(max_examples=100, deadline=None)
@given(st.lists(bindings, max_size=8), actions, st.lists(bindings, max_size=4))
def test_a_change_of_the_bindings_empties_the_cache(
        before: list[AclBinding], action: Action, added: list[AclBinding]) -> None:
    authorizer = _authorizer(before)
    authorizer.allows("User:alice", "10.0.0.1", action)
    asyncio.run(authorizer.store.create(added))
    every = list({*before, *added})
    if action.operation == Operation.CREATE and action.resource_type == ResourceType.TOPIC:
        return
    assert authorizer.allows("User:alice", "10.0.0.1", action) == reference(
        every, "User:alice", "10.0.0.1", action, False)


def test_super_users_may_do_everything_and_nobody_else_without_an_acl() -> None:
    authorizer = _authorizer([], super_users=["User:admin"])
    action = Action(Operation.DELETE, ResourceType.TOPIC, "t")
    assert authorizer.allows("User:admin", "h", action)
    assert not authorizer.allows("User:alice", "h", action)


def test_create_on_the_cluster_allows_creating_any_topic() -> None:
    cluster = AclBinding(ResourceType.CLUSTER, CLUSTER_NAME, PatternType.LITERAL, "User:alice",
                         "*", Operation.CREATE, Permission.ALLOW)
    authorizer = _authorizer([cluster])
    assert authorizer.allows("User:alice", "h", Action(Operation.CREATE, ResourceType.TOPIC, "x"))
    assert not authorizer.allows("User:bob", "h", Action(Operation.CREATE, ResourceType.TOPIC, "x"))


def test_writing_some_topic_grants_idempotent_write() -> None:
    write = AclBinding(ResourceType.TOPIC, "orders", PatternType.LITERAL, "User:alice", "*",
                       Operation.WRITE, Permission.ALLOW)
    authorizer = _authorizer([write])
    idempotent = Action(Operation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, CLUSTER_NAME)
    assert authorizer.allows("User:alice", "h", idempotent)
    assert not authorizer.allows("User:bob", "h", idempotent)


@given(bindings)
def test_a_binding_survives_its_stored_form_and_its_own_filter_matches_it(
        binding: AclBinding) -> None:
    key, value = encode(binding)
    assert decode(value) == binding and encode(decode(value))[0] == key
    exact = AclFilter(int(binding.resource_type), binding.name, int(binding.pattern_type),
                      binding.principal, binding.host, int(binding.operation),
                      int(binding.permission))
    assert exact.matches(binding) and AclFilter().matches(binding)


@given(bindings, st.sampled_from(["a", "ab", "abc", "b", "zz"]))
def test_a_match_filter_finds_the_patterns_that_name_a_resource(
        binding: AclBinding, name: str) -> None:
    found = AclFilter(int(binding.resource_type), name, PatternType.MATCH).matches(binding)
    assert found == binding.covers(binding.resource_type, name)


@pytest.mark.parametrize(("fields", "reason"), [
    ((4, "other", 3, "User:a", "*", 3, 3), "kafka-cluster"),
    ((2, "t", 1, "User:a", "*", 3, 3), "LITERAL or PREFIXED"),
    ((2, "t", 3, "alice", "*", 3, 3), "TYPE:NAME"),
    ((2, "t", 3, "User:a", "*", 3, 1), "ALLOW or DENY"),
    ((2, "", 3, "User:a", "*", 3, 3), "empty"),
    ((99, "t", 3, "User:a", "*", 3, 3), "unknown"),
])
def test_bindings_kafka_refuses_are_refused_with_a_reason(
        fields: tuple[int, str, int, str, str, int, int], reason: str) -> None:
    with pytest.raises(InvalidAcl, match=reason):
        validated(*fields)


async def test_concurrent_acl_writes_all_reach_the_file(tmp_path: Path) -> None:
    from headrace.security.records import FileSecurityRecords

    store = AclStore(FileSecurityRecords(tmp_path))
    bindings = [AclBinding(ResourceType.TOPIC, f"t{i}", PatternType.LITERAL, "User:a", "*",
                           Operation.READ, Permission.ALLOW) for i in range(20)]
    await asyncio.gather(*(store.create([b]) for b in bindings))
    reopened = AclStore(FileSecurityRecords(tmp_path))
    assert sorted(b.name for b in reopened.bindings()) == sorted(b.name for b in bindings)
