"""KIP-848's online migration, pure: a live classic group upgraded to a consumer group, its
classic members served JoinGroup/SyncGroup/Heartbeat from it, and the downgrade back."""

from __future__ import annotations

import io

import pytest
from kio.schema.consumer_protocol_subscription import v1
from kio.schema.consumer_protocol_subscription.v1.data import TopicPartition as OwnedTopic
from kio.schema.errors import ErrorCode
from kio.serial import entity_writer

from headrace.groups.consumer import classic_members, migration, snapshot
from headrace.groups.consumer.machine import ConsumerGroupMachine
from headrace.groups.model import Group, GroupState, JoinProtocol, JoinRequest, Member
from headrace.groups.views import decode_assignment
from tests.groups.kip848_support import FakeCatalog, ModelClient

_write = entity_writer(v1.ConsumerProtocolSubscription)


def subscription(topics: list[str], owned: dict[str, list[int]]) -> bytes:
    buffer = io.BytesIO(b"\x00\x01")
    buffer.seek(2)
    _write(buffer, v1.ConsumerProtocolSubscription(
        topics=tuple(topics), user_data=None,
        owned_partitions=tuple(OwnedTopic(topic=t, partitions=tuple(ps))  # type: ignore[arg-type]
                               for t, ps in owned.items())))
    return buffer.getvalue()


def classic_group(owned: dict[str, list[int]]) -> Group:
    protocol = JoinProtocol("cooperative-sticky", subscription(["t"], owned))
    member = Member("classic-1", None, "rdkafka", "/127.0.0.1", 10_000, 60_000, "consumer",
                    (protocol,), assignment=migration.encode_assignment(
                        frozenset(("t", p) for ps in owned.values() for p in ps)))
    return Group("g", GroupState.STABLE, generation_id=5, protocol_type="consumer",
                 protocol_name="cooperative-sticky", leader_id="classic-1",
                 members={"classic-1": member})


def join(owned: dict[str, list[int]]) -> JoinRequest:
    return JoinRequest("g", "classic-1", None, "rdkafka", "/127.0.0.1", 10_000, 60_000,
                       "consumer", (JoinProtocol("cooperative-sticky",
                                                 subscription(["t"], owned)),), True)


def test_upgrade_keeps_every_classic_member_as_it_is() -> None:
    catalog = FakeCatalog(t=4)
    group = migration.upgrade(classic_group({"t": [0, 1, 2, 3]}), "uniform", catalog, 0)
    (member,) = group.members.values()
    assert (group.group_epoch, group.assignment_epoch, member.member_epoch) == (5, 5, 5)
    assert member.assigned == group.target["classic-1"] == {("t", p) for p in range(4)}
    assert member.subscribed_topic_names == ("t",)
    assert member.classic is not None and member.classic.session_timeout_ms == 10_000
    assert set(group.subscribed_topics) == {"t"}
    # What restarts read back: the classic membership survives the group's record.
    restored = snapshot.decode("g", snapshot.encode(group)).members["classic-1"]
    assert restored.classic == member.classic  # sessions are not stored; the rest is
    assert (restored.assigned, restored.member_epoch) == (member.assigned, member.member_epoch)


@pytest.mark.parametrize("change", ["rebalancing", "connect"])
def test_upgrade_refuses_a_rebalancing_or_non_consumer_group(change: str) -> None:
    group = classic_group({"t": [0]})
    if change == "rebalancing":
        group.state = GroupState.PREPARING_REBALANCE
    else:
        group.protocol_type = "connect"
    with pytest.raises(migration.NotMigratable):
        migration.upgrade(group, "uniform", FakeCatalog(t=1), 0)


def test_the_classic_member_hands_over_incrementally_then_the_group_downgrades() -> None:
    catalog = FakeCatalog(t=4)
    machine = ConsumerGroupMachine()
    group = machine.groups["g"] = migration.upgrade(
        classic_group({"t": [0, 1, 2, 3]}), "uniform", catalog, 0)
    modern = ModelClient("modern", topics=("t",))
    modern.heartbeat(machine, catalog, 0)
    moving = group.target["modern"]
    assert len(moving) == 2 and not modern.owned  # still the classic member's
    assert classic_members.heartbeat(group, 5, "classic-1", None, 0) \
        is ErrorCode.rebalance_in_progress

    first = classic_members.join(machine, group, join({"t": [0, 1, 2, 3]}), 0, catalog)
    assert (first.error, first.generation_id, first.leader_id) == (ErrorCode.none, 5, "")
    synced = classic_members.sync(group, 5, "classic-1", None, "consumer", None, 0)
    kept = frozenset(decode_assignment(synced.assignment))
    assert kept == {("t", p) for p in range(4)} - moving  # revoke what moves, keep the rest
    modern.heartbeat(machine, catalog, 0)
    assert not modern.owned  # not before the classic member says it let go

    second = classic_members.join(
        machine, group, join({"t": sorted(p for _, p in kept)}), 0, catalog)
    assert second.generation_id == group.assignment_epoch
    assert classic_members.sync(group, second.generation_id, "classic-1", None, None, None,
                                0).error is ErrorCode.none
    assert classic_members.heartbeat(group, second.generation_id, "classic-1", None, 0) \
        is ErrorCode.none
    modern.heartbeat(machine, catalog, 0)
    assert modern.owned == moving
    assert classic_members.heartbeat(group, 5, "classic-1", None, 0) \
        is ErrorCode.illegal_generation

    machine.remove_member(group, "modern")
    assert migration.downgradable(group)
    back = migration.downgrade(group, Group("g"), 0)
    assert back.state is GroupState.STABLE and back.protocol_type == "consumer"
    assert back.generation_id == second.generation_id
    assert frozenset(decode_assignment(back.members["classic-1"].assignment)) == kept


def test_a_consumer_member_is_not_a_classic_one() -> None:
    catalog = FakeCatalog(t=2)
    machine = ConsumerGroupMachine()
    modern = ModelClient("modern", topics=("t",))
    modern.heartbeat(machine, catalog, 0)
    group = machine.groups["g"]
    assert not migration.downgradable(group)
    assert classic_members.heartbeat(group, 1, "modern", None, 0) \
        is ErrorCode.inconsistent_group_protocol
    bad = JoinRequest("g", "x", None, "c", "h", 10_000, 60_000, "connect",
                      (JoinProtocol("p", b""),), True)
    assert classic_members.join(machine, group, bad, 0, catalog).error \
        is ErrorCode.inconsistent_group_protocol
