"""The ACL matrix: for each API family, a principal with an ACL that allows (literal, prefixed,
wildcard), denies (a DENY beside the ALLOW, an ALLOW for another host), or none at all, and a
super user, through the real pipeline of a broker run with ``--authorizer acl``: the answer is
the family's ``*_AUTHORIZATION_FAILED`` code exactly when Kafka's rules deny."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from headrace.core.security import CLUSTER_NAME, Operation, ResourceType
from headrace.core.topics import TopicSpec
from headrace.security.acls import AclBinding, AclFilter, PatternType, Permission
from tests.security.pipe import call, session
from tests.server.test_wire import fetch_fields, produce_fields, request_module
from tests.server.wire import build_batch
from tests.support.brokers import in_process_broker

SECONDS = datetime.timedelta(seconds=5)
ALICE = "User:alice"
HOST = "10.0.0.1"


@dataclass(frozen=True)
class Family:
    """One API family: the ACL it needs, a request naming ``name``, and where its code is."""

    api_key: int
    version: int
    resource_type: ResourceType
    operation: Operation
    fields: Callable[[str], dict[str, Any]]
    code: Callable[[Any], int]
    denied: ErrorCode
    #: Resource names are made from it per scenario; topics of that name exist beforehand.
    base: str
    topic_exists: bool = False
    #: ACLs the request also needs (on other resources), always granted.
    also: Callable[[str], list[tuple[ResourceType, str, Operation]]] = field(
        default=lambda name: [])


def _offset_commit(name: str) -> dict[str, Any]:
    module = request_module(8, 8)
    return dict(group_id=name, generation_id_or_member_epoch=-1, member_id="",
                group_instance_id=None, topics=(module.OffsetCommitRequestTopic(
                    name="committed", partitions=(module.OffsetCommitRequestPartition(
                        partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                        committed_metadata=""),)),))


def _join(name: str) -> dict[str, Any]:
    module = request_module(11, 5)
    return dict(group_id=name, session_timeout=datetime.timedelta(seconds=10),
                rebalance_timeout=datetime.timedelta(seconds=10), member_id="",
                group_instance_id=None, protocol_type="consumer",
                protocols=(module.JoinGroupRequestProtocol(name="range", metadata=b""),))


def _list_offsets(name: str) -> dict[str, Any]:
    module = request_module(2, 7)
    return dict(replica_id=-1, isolation_level=0, topics=(module.ListOffsetsTopic(
        name=name, partitions=(module.ListOffsetsPartition(
            partition_index=0, current_leader_epoch=-1, timestamp=-1),)),))


FAMILIES = {
    "produce": Family(0, 9, ResourceType.TOPIC, Operation.WRITE,
                      lambda n: produce_fields(n, 0, build_batch([b"x"])),
                      lambda r: r.responses[0].partition_responses[0].error_code,
                      ErrorCode.topic_authorization_failed, "orders", topic_exists=True),
    "fetch": Family(1, 12, ResourceType.TOPIC, Operation.READ, lambda n: fetch_fields(n, 0, 0),
                    lambda r: r.responses[0].partitions[0].error_code,
                    ErrorCode.topic_authorization_failed, "orders", topic_exists=True),
    "list-offsets": Family(2, 7, ResourceType.TOPIC, Operation.DESCRIBE, _list_offsets,
                           lambda r: r.topics[0].partitions[0].error_code,
                           ErrorCode.topic_authorization_failed, "orders", topic_exists=True),
    "metadata": Family(3, 12, ResourceType.TOPIC, Operation.DESCRIBE,
                       lambda n: dict(topics=(request_module(3, 12).MetadataRequestTopic(
                           topic_id=uuid.UUID(int=0), name=n),),
                           allow_auto_topic_creation=False,
                           include_topic_authorized_operations=False),
                       lambda r: r.topics[0].error_code,
                       ErrorCode.topic_authorization_failed, "orders", topic_exists=True),
    "offset-commit": Family(8, 8, ResourceType.GROUP, Operation.READ, _offset_commit,
                            lambda r: r.topics[0].partitions[0].error_code,
                            ErrorCode.group_authorization_failed, "payments",
                            also=lambda n: [(ResourceType.TOPIC, "committed", Operation.READ)]),
    "join-group": Family(11, 5, ResourceType.GROUP, Operation.READ, _join,
                         lambda r: r.error_code, ErrorCode.group_authorization_failed,
                         "payments"),
    "describe-groups": Family(15, 5, ResourceType.GROUP, Operation.DESCRIBE,
                              lambda n: dict(groups=(n,), include_authorized_operations=False),
                              lambda r: r.groups[0].error_code,
                              ErrorCode.group_authorization_failed, "payments"),
    "delete-groups": Family(42, 2, ResourceType.GROUP, Operation.DELETE,
                            lambda n: dict(groups_names=(n,)),
                            lambda r: r.results[0].error_code,
                            ErrorCode.group_authorization_failed, "payments"),
    "create-topics": Family(19, 7, ResourceType.TOPIC, Operation.CREATE,
                            lambda n: dict(topics=(request_module(19, 7).CreatableTopic(
                                name=n, num_partitions=1, replication_factor=1,
                                assignments=(), configs=()),), timeout=SECONDS,
                                validate_only=True),
                            lambda r: r.topics[0].error_code,
                            ErrorCode.topic_authorization_failed, "fresh"),
    "delete-topics": Family(20, 5, ResourceType.TOPIC, Operation.DELETE,
                            lambda n: dict(topic_names=(n,), timeout=SECONDS),
                            lambda r: r.responses[0].error_code,
                            ErrorCode.topic_authorization_failed, "doomed", topic_exists=True),
    "describe-configs": Family(32, 4, ResourceType.TOPIC, Operation.DESCRIBE_CONFIGS,
                               lambda n: dict(resources=(
                                   request_module(32, 4).DescribeConfigsResource(
                                       resource_type=2, resource_name=n,
                                       configuration_keys=None),),
                                   include_synonyms=False, include_documentation=False),
                               lambda r: r.results[0].error_code,
                               ErrorCode.topic_authorization_failed, "orders",
                               topic_exists=True),
    "init-producer-id": Family(22, 4, ResourceType.TRANSACTIONAL_ID, Operation.WRITE,
                               lambda n: dict(transactional_id=n, transaction_timeout=SECONDS,
                                              producer_id=-1, producer_epoch=-1),
                               lambda r: r.error_code,
                               ErrorCode.transactional_id_authorization_failed, "tx"),
    "describe-acls": Family(29, 3, ResourceType.CLUSTER, Operation.DESCRIBE,
                            lambda n: dict(resource_type_filter=1, resource_name_filter=None,
                                           pattern_type_filter=1, principal_filter=None,
                                           host_filter=None, operation=1, permission_type=1),
                            lambda r: r.error_code, ErrorCode.cluster_authorization_failed,
                            CLUSTER_NAME),
}

#: scenario → (ACLs as (principal, pattern, host, permission, operation or None for the
#: family's), the principal asking, whether it is allowed).
Grant = tuple[str, PatternType, str, Permission, Operation | None]
SCENARIOS: dict[str, tuple[list[Grant], str, bool]] = {
    "allow": ([(ALICE, PatternType.LITERAL, "*", Permission.ALLOW, None)], ALICE, True),
    "deny-wins": ([(ALICE, PatternType.LITERAL, "*", Permission.ALLOW, None),
                   (ALICE, PatternType.LITERAL, HOST, Permission.DENY, Operation.ALL)],
                  ALICE, False),
    "no-acl": ([], ALICE, False),
    "super-user": ([], "User:admin", True),
    "prefixed": ([(ALICE, PatternType.PREFIXED, "*", Permission.ALLOW, None)], ALICE, True),
    "wildcard": ([("User:*", PatternType.LITERAL, "*", Permission.ALLOW, Operation.ALL)],
                 ALICE, True),
    "other-host": ([(ALICE, PatternType.LITERAL, "10.9.9.9", Permission.ALLOW, None)],
                   ALICE, False),
}


def _resource(family: Family, scenario: str) -> str:
    return family.base if family.resource_type == ResourceType.CLUSTER else (
        f"{family.base}-{scenario}")


def _bindings(family: Family, scenario: str) -> list[AclBinding]:
    name = _resource(family, scenario)
    grants, _, _ = SCENARIOS[scenario]
    bindings = []
    for principal, pattern, host, permission, operation in grants:
        bound = name
        if pattern == PatternType.PREFIXED:
            bound = name[: len(family.base) + 3]  # "orders-pr" names "orders-prefixed"
        if principal == "User:*":
            bound = "*" if family.resource_type != ResourceType.CLUSTER else CLUSTER_NAME
        bindings.append(AclBinding(family.resource_type, bound, pattern, principal, host,
                                   operation or family.operation, permission))
    for rtype, other, operation in family.also(name):
        bindings.append(AclBinding(rtype, other, PatternType.LITERAL, "User:*", "*",
                                   operation, Permission.ALLOW))
    return bindings


@pytest.mark.parametrize("family_name", FAMILIES)
async def test_each_family_is_denied_exactly_when_kafkas_rules_deny(
        family_name: str, tmp_path: Path) -> None:
    family = FAMILIES[family_name]
    async with in_process_broker(tmp_path / "data", authorizer_kind="acl",
                                 super_users=("User:admin",)) as running:
        app = running.app
        assert app.acls is not None
        running.broker.create_topic(TopicSpec("committed", 1))
        for scenario in SCENARIOS:
            if family.topic_exists:
                running.broker.create_topic(TopicSpec(_resource(family, scenario), 1))
        outcomes = {}
        for scenario, (_, principal, allowed) in SCENARIOS.items():
            if family.resource_type == ResourceType.CLUSTER and scenario == "prefixed":
                continue  # the cluster has one name: a prefix of it is not a binding
            await app.acls.delete([AclFilter()])
            await app.acls.create(_bindings(family, scenario))
            response = await call(app, session(principal, HOST), family.api_key,
                                  family.version, **family.fields(_resource(family, scenario)))
            code = int(family.code(response))
            outcomes[scenario] = (code != family.denied) == allowed
            assert code != family.denied if allowed else code == family.denied, (
                f"{family_name} / {scenario}: error code {code}")
        assert all(outcomes.values())


async def test_with_acls_off_the_pipeline_works_out_no_actions(tmp_path: Path) -> None:
    async with in_process_broker(tmp_path / "data") as running:
        app = running.app
        assert app.authorizer is None and app.acls is None
        assert not app.pipeline.authorizer.enabled
        running.broker.create_topic(TopicSpec("orders", 1))
        family = FAMILIES["produce"]
        response = await call(app, session("User:nobody"), 0, 9, **family.fields("orders"))
        assert family.code(response) == ErrorCode.none
        answer = await call(app, session(ALICE), 29, 3, **FAMILIES["describe-acls"].fields(""))
        assert answer.error_code == ErrorCode.security_disabled


async def test_metadata_and_list_groups_leave_out_what_one_may_not_describe(
        tmp_path: Path) -> None:
    async with in_process_broker(tmp_path / "data", authorizer_kind="acl") as running:
        app = running.app
        assert app.acls is not None
        for name in ("visible", "hidden"):
            running.broker.create_topic(TopicSpec(name, 1))
        await app.acls.create([
            AclBinding(ResourceType.TOPIC, "visible", PatternType.LITERAL, ALICE, "*",
                       Operation.READ, Permission.ALLOW),
            AclBinding(ResourceType.GROUP, "mine", PatternType.LITERAL, ALICE, "*",
                       Operation.READ, Permission.ALLOW),
        ])
        everything = await call(app, session(ALICE), 3, 12, topics=None,
                                allow_auto_topic_creation=False,
                                include_topic_authorized_operations=False)
        assert [t.name for t in everything.topics] == ["visible"]  # READ implies DESCRIBE
        for group in ("mine", "theirs"):  # two groups with committed offsets
            await app.acls.create([AclBinding(
                ResourceType.GROUP, group, PatternType.LITERAL, "User:admin", "*",
                Operation.ALL, Permission.ALLOW)])
            await app.acls.create([AclBinding(
                ResourceType.TOPIC, "visible", PatternType.LITERAL, "User:admin", "*",
                Operation.ALL, Permission.ALLOW)])
            committed = await call(app, session("User:admin"), 8, 8, **{
                **_offset_commit(group), "topics": _offset_commit_topics("visible")})
            assert committed.topics[0].partitions[0].error_code == ErrorCode.none
        listed = await call(app, session(ALICE), 16, 4, states_filter=())
        assert [g.group_id for g in listed.groups] == ["mine"]
        nothing = await call(app, session("User:bob"), 16, 4, states_filter=())
        assert list(nothing.groups) == []


def _offset_commit_topics(topic: str) -> Any:
    module = request_module(8, 8)
    return (module.OffsetCommitRequestTopic(name=topic, partitions=(
        module.OffsetCommitRequestPartition(partition_index=0, committed_offset=1,
                                            committed_leader_epoch=-1,
                                            committed_metadata=""),)),)


async def test_denials_are_audited_and_a_flood_is_rate_limited(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with in_process_broker(tmp_path / "data", authorizer_kind="acl") as running:
        app = running.app
        running.broker.create_topic(TopicSpec("orders", 1))
        family = FAMILIES["produce"]
        with caplog.at_level(logging.INFO, logger="headrace.audit"):
            for _ in range(500):
                await call(app, session("User:mallory", "10.6.6.6"), 0, 9,
                           **family.fields("orders"))
        records = [r for r in caplog.records if r.name == "headrace.audit"]
        assert records[0].getMessage() == (
            "denied WRITE on topic:orders by User:mallory from 10.6.6.6 via PLAINTEXT (API 0 v9)")
        assert 1 <= len(records) < 200  # a burst of 50, then about ten a second
        # Every denial is a line or counted in a later line (or still pending).
        reported = sum(getattr(r, "suppressed", 0) for r in records)
        assert len(records) + reported + app.pipeline.denials.suppressed == 500


async def test_authorized_operations_are_the_principals(tmp_path: Path) -> None:
    async with in_process_broker(tmp_path / "data", authorizer_kind="acl") as running:
        app = running.app
        assert app.acls is not None
        running.broker.create_topic(TopicSpec("orders", 1))
        await app.acls.create([AclBinding(ResourceType.TOPIC, "orders", PatternType.LITERAL,
                                          ALICE, "*", Operation.READ, Permission.ALLOW)])
        answer = await call(app, session(ALICE), 3, 10, topics=(
            request_module(3, 10).MetadataRequestTopic(topic_id=uuid.UUID(int=0),
                                                       name="orders"),),
            allow_auto_topic_creation=False, include_cluster_authorized_operations=True,
            include_topic_authorized_operations=True)
        # READ, and DESCRIBE which it implies; nothing on the cluster.
        assert answer.topics[0].topic_authorized_operations == (
            1 << Operation.READ | 1 << Operation.DESCRIBE)
        assert answer.cluster_authorized_operations == 0
