"""Classic-protocol members of a consumer group: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

After an online upgrade (:mod:`.migration`) the classic members of a consumer group keep
speaking the classic protocol; Kafka's coordinator answers them from the consumer group, and
so does this module (Kafka's ``classicGroupJoinToConsumerGroup`` and friends):

- **JoinGroup** records the member's subscription (its ConsumerProtocolSubscription: topics and
  the partitions it owns) and moves it towards its target with the same incremental
  reconciliation as a consumer-protocol member. It is answered at once, as a follower: the
  generation is its member epoch, the leader nobody, so the client computes nothing;
- **SyncGroup** at that generation hands it its assignment (ConsumerProtocolAssignment): what
  it may read now, never a partition another member has yet to release;
- **Heartbeat** renews its session and answers REBALANCE_IN_PROGRESS while it is not at the
  group's assignment epoch or is not Stable, which makes the client join again: that is how it
  revokes, and how it picks up partitions as others release them;
- **LeaveGroup** removes it like any member.

Pure code over :class:`~headrace.groups.consumer.machine.ConsumerGroupMachine`'s groups.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

from headrace.groups.consumer.machine import ConsumerGroupMachine, new_member_id
from headrace.groups.consumer.migration import (
    NotMigratable,
    chosen_protocol,
    encode_assignment,
    read_subscription,
)
from headrace.groups.consumer.model import ClassicMembership, ConsumerGroup, ConsumerMember
from headrace.groups.consumer.reconciliation import reconcile
from headrace.groups.consumer.subscriptions import TopicCatalog, resolve
from headrace.groups.model import JoinRequest, JoinResult, SyncResult
from headrace.groups.views import CONSUMER_PROTOCOL_TYPE


def _others_protocols(group: ConsumerGroup, member_id: str) -> list[set[str]]:
    return [
        {p.name for p in m.classic.protocols}
        for m in group.members.values()
        if m.classic is not None and m.member_id != member_id
    ]


def join(
    machine: ConsumerGroupMachine,
    group: ConsumerGroup,
    request: JoinRequest,
    now_ms: int,
    catalog: TopicCatalog,
) -> JoinResult:
    if request.protocol_type != CONSUMER_PROTOCOL_TYPE or not request.protocols:
        return JoinResult(ErrorCode.inconsistent_group_protocol, request.member_id)
    try:
        topics, owned = read_subscription(request.protocols[0].metadata)
    except NotMigratable:
        return JoinResult(ErrorCode.inconsistent_group_protocol, request.member_id)
    member_id = request.member_id
    if not member_id:
        member_id = f"{request.client_id}-{new_member_id()}"
        if request.require_known_member_id:
            return JoinResult(ErrorCode.member_id_required, member_id)
    member = group.members.get(member_id)
    if member is not None and member.classic is None:
        return JoinResult(ErrorCode.inconsistent_group_protocol, member_id)
    instance_id = request.group_instance_id
    if instance_id is not None and group.static_members.get(instance_id, member_id) != member_id:
        return JoinResult(ErrorCode.fenced_instance_id, member_id)
    bump = False
    if member is None:
        member = ConsumerMember(member_id, instance_id=instance_id)
        group.members[member_id] = member
        if instance_id is not None:
            group.static_members[instance_id] = member_id
        bump = True
    member.classic = ClassicMembership(
        request.session_timeout_ms, request.protocol_type, request.protocols
    )
    member.client_id, member.client_host = request.client_id, request.client_host
    member.rebalance_timeout_ms = request.rebalance_timeout_ms
    if topics != member.subscribed_topic_names:
        member.subscribed_topic_names, bump = topics, True
    member.session_deadline_ms = now_ms + request.session_timeout_ms
    resolved = resolve({t for m in group.members.values() for t in m.subscribed_topic_names},
                       {m.subscribed_topic_regex or "" for m in group.members.values()}, catalog)
    if resolved != group.subscribed_topics:
        group.subscribed_topics, bump = resolved, True
    if bump:
        group.group_epoch += 1
    machine.dirty.add(group.group_id)
    if group.group_epoch > group.assignment_epoch:
        machine.assign(group)
    # One step: a member still holding what it must give up is handed the rest (SyncGroup),
    # revokes, and joins again saying so; only then does it move on to its target epoch.
    owners = group.owner_of()
    reconcile(
        member, group.assignment_epoch, group.target.get(member_id, frozenset()),
        frozenset(tp for tp in owned if tp[0] in group.subscribed_topics),
        lambda tp: owners.get(tp, member_id) != member_id, now_ms,
    )
    protocols = request.protocols
    return JoinResult(
        ErrorCode.none,
        member_id,
        generation_id=member.member_epoch,
        protocol_type=CONSUMER_PROTOCOL_TYPE,
        protocol_name=chosen_protocol(protocols, _others_protocols(group, member_id)),
        leader_id="",
    )


def _classic_member(
    group: ConsumerGroup, member_id: str, instance_id: str | None
) -> ConsumerMember | ErrorCode:
    if instance_id is not None and group.static_members.get(instance_id, member_id) != member_id:
        return ErrorCode.fenced_instance_id
    member = group.members.get(member_id)
    if member is None:
        return ErrorCode.unknown_member_id
    if member.classic is None:
        return ErrorCode.inconsistent_group_protocol
    return member


def sync(
    group: ConsumerGroup, generation_id: int, member_id: str, instance_id: str | None,
    protocol_type: str | None, protocol_name: str | None, now_ms: int,
) -> SyncResult:
    found = _classic_member(group, member_id, instance_id)
    if isinstance(found, ErrorCode):
        return SyncResult(found)
    if generation_id != found.member_epoch:
        return SyncResult(ErrorCode.illegal_generation)
    assert found.classic is not None
    if protocol_type is not None and protocol_type != found.classic.protocol_type:
        return SyncResult(ErrorCode.inconsistent_group_protocol)
    names = {p.name for p in found.classic.protocols}
    if protocol_name is not None and protocol_name not in names:
        return SyncResult(ErrorCode.inconsistent_group_protocol)
    found.session_deadline_ms = now_ms + found.classic.session_timeout_ms
    return SyncResult(
        ErrorCode.none,
        encode_assignment(found.assigned),
        protocol_type=found.classic.protocol_type,
        protocol_name=protocol_name
        or chosen_protocol(found.classic.protocols, _others_protocols(group, member_id)),
    )


def heartbeat(
    group: ConsumerGroup, generation_id: int, member_id: str, instance_id: str | None,
    now_ms: int,
) -> ErrorCode:
    found = _classic_member(group, member_id, instance_id)
    if isinstance(found, ErrorCode):
        return found
    if generation_id != found.member_epoch:
        return ErrorCode.illegal_generation
    assert found.classic is not None
    found.session_deadline_ms = now_ms + found.classic.session_timeout_ms
    if (group.group_epoch > group.assignment_epoch
            or found.member_epoch != group.assignment_epoch
            or found.pending_revocation
            or found.assigned != group.target.get(member_id, frozenset())):
        return ErrorCode.rebalance_in_progress
    return ErrorCode.none


def leave(
    machine: ConsumerGroupMachine, group: ConsumerGroup, member_id: str, instance_id: str | None
) -> ErrorCode:
    if not member_id and instance_id is not None:
        member_id = group.static_members.get(instance_id, "")
    found = _classic_member(group, member_id, instance_id)
    if isinstance(found, ErrorCode):
        return found
    machine.remove_member(group, member_id)
    return ErrorCode.none
