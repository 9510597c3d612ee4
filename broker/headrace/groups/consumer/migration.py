"""KIP-848's online migration between a classic group and a consumer group. Pure code.

- **Upgrade.** A consumer-protocol member joining a classic group that has members turns it into
  a consumer group (:func:`upgrade`): every classic member becomes a member of it as it is (its
  epoch the classic generation, its assignment what it holds, its subscription read from the
  ConsumerProtocolSubscription it joined with), the target assignment is what they hold, so
  nothing moves until the newcomer's arrival bumps the group epoch and the assignor runs.
  Classic members then go on with JoinGroup/SyncGroup/Heartbeat (:mod:`.classic_members`).
- **Downgrade.** When the last consumer-protocol member leaves and classic members remain, the
  group becomes classic again (:func:`downgrade`): its members, their protocols and current
  assignments, at a generation of their member epoch, which then rebalances as classic.

Kafka does both under ``group.consumer.migration.policy=bidirectional`` (its default since 4.0);
Headrace has no other policy. Committed offsets are untouched either way: both kinds share them.
"""

from __future__ import annotations

import io

from kio.schema.consumer_protocol_assignment.v0 import ConsumerProtocolAssignment
from kio.schema.consumer_protocol_assignment.v0.data import TopicPartition as AssignedTopic
from kio.schema.consumer_protocol_subscription import v0 as subscription_v0
from kio.schema.consumer_protocol_subscription import v1 as subscription_v1
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from headrace.groups.consumer import subscriptions
from headrace.groups.consumer.model import (
    ClassicMembership,
    ConsumerGroup,
    ConsumerMember,
    TopicPartition,
)
from headrace.groups.consumer.subscriptions import TopicCatalog
from headrace.groups.model import Group, GroupState, JoinProtocol, Member
from headrace.groups.views import CONSUMER_PROTOCOL_TYPE, decode_assignment

_read_v0 = entity_reader(subscription_v0.ConsumerProtocolSubscription)
_read_v1 = entity_reader(subscription_v1.ConsumerProtocolSubscription)
_write_assignment = entity_writer(ConsumerProtocolAssignment)


class NotMigratable(ValueError):
    """A group (or member) the other protocol cannot take over; the message says why."""


def read_subscription(metadata: bytes) -> tuple[tuple[str, ...], frozenset[TopicPartition]]:
    """(topics, owned partitions) of a ConsumerProtocolSubscription (any version); raises
    :class:`NotMigratable` for bytes that are not one (another protocol type's metadata)."""
    if len(metadata) < 2:
        raise NotMigratable("empty subscription")
    version = int.from_bytes(metadata[:2], "big", signed=True)
    body = memoryview(metadata)[2:]
    try:
        if version >= 1:
            current, _ = _read_v1(body, 0)
            topics = current.topics
            owned = frozenset((tp.topic, int(p)) for tp in current.owned_partitions
                              for p in tp.partitions)
        else:
            first, _ = _read_v0(body, 0)
            topics, owned = first.topics, frozenset()
    except Exception as error:  # kio raises several decode errors; all mean "not a subscription"
        raise NotMigratable(f"unreadable subscription: {error}") from error
    return tuple(sorted(set(topics))), owned


def encode_assignment(partitions: frozenset[TopicPartition]) -> bytes:
    """A ConsumerProtocolAssignment v0 (what SyncGroup hands a classic consumer)."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    assignment = ConsumerProtocolAssignment(
        assigned_partitions=tuple(
            AssignedTopic(topic=TopicName(topic), partitions=tuple(i32(p) for p in sorted(parts)))
            for topic, parts in sorted(by_topic.items())
        ),
        user_data=None,
    )
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00")
    _write_assignment(buffer, assignment)
    return buffer.getvalue()


def chosen_protocol(protocols: tuple[JoinProtocol, ...], others: list[set[str]]) -> str:
    """The member's most preferred protocol every other classic member also supports (its
    first one when there is none)."""
    for protocol in protocols:
        if all(protocol.name in names for names in others):
            return protocol.name
    return protocols[0].name


def upgrade(
    classic: Group, default_assignor: str, catalog: TopicCatalog, now_ms: int
) -> ConsumerGroup:
    """The consumer group a Stable classic consumer group with members becomes."""
    if classic.state is not GroupState.STABLE:
        raise NotMigratable(f"classic group {classic.group_id} is {classic.state.value}")
    if classic.protocol_type != CONSUMER_PROTOCOL_TYPE:
        raise NotMigratable(f"classic group {classic.group_id} has protocol type "
                            f"{classic.protocol_type!r}, not 'consumer'")
    epoch = classic.generation_id
    group = ConsumerGroup(
        classic.group_id, group_epoch=epoch, assignment_epoch=epoch, assignor_name=default_assignor
    )
    for old in classic.members.values():
        topics, _ = read_subscription(old.metadata_for(classic.protocol_name))
        assigned = frozenset(decode_assignment(old.assignment))
        group.members[old.member_id] = ConsumerMember(
            old.member_id,
            instance_id=old.group_instance_id,
            client_id=old.client_id,
            client_host=old.client_host,
            rebalance_timeout_ms=old.rebalance_timeout_ms,
            subscribed_topic_names=topics,
            member_epoch=epoch,
            previous_member_epoch=epoch - 1,
            assigned=assigned,
            session_deadline_ms=now_ms + old.session_timeout_ms,
            classic=ClassicMembership(old.session_timeout_ms, old.protocol_type, old.protocols),
        )
        group.target[old.member_id] = assigned
        if old.group_instance_id is not None:
            group.static_members[old.group_instance_id] = old.member_id
    group.subscribed_topics = subscriptions.resolve(
        {t for m in group.members.values() for t in m.subscribed_topic_names}, set(), catalog
    )
    return group


def downgradable(group: ConsumerGroup) -> bool:
    """Whether the group holds only classic members (and some): it becomes classic again."""
    return bool(group.members) and all(m.classic is not None for m in group.members.values())


def downgrade(group: ConsumerGroup, classic: Group, now_ms: int) -> Group:
    """``classic`` (the holder of the group's offsets) refilled with the group's members, at a
    generation of their epoch, Stable: the caller starts its rebalance."""
    members: dict[str, Member] = {}
    for member in group.members.values():
        membership = member.classic
        assert membership is not None, "downgrade of a group with consumer-protocol members"
        members[member.member_id] = Member(
            member.member_id,
            member.instance_id,
            member.client_id,
            member.client_host,
            membership.session_timeout_ms,
            member.rebalance_timeout_ms,
            membership.protocol_type,
            membership.protocols,
            assignment=encode_assignment(member.assigned),
            heartbeat_deadline_ms=now_ms + membership.session_timeout_ms,
        )
    classic.members = members
    classic.static_members = dict(group.static_members)
    classic.pending_members = {}
    classic.protocol_type = CONSUMER_PROTOCOL_TYPE
    classic.protocol_name = classic.select_protocol()
    classic.leader_id = next(iter(members))
    classic.generation_id = max(m.member_epoch for m in group.members.values())
    classic.state = GroupState.STABLE
    return classic
