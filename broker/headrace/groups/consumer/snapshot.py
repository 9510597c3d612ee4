"""How a consumer group is stored in ``__consumer_offsets``: one record per group.

Kafka writes a KIP-848 group as many small records (ConsumerGroupMetadata, -MemberMetadata,
-TargetAssignmentMember, -CurrentMemberAssignment...). Headrace keeps Kafka's key for the
group record (key version 3, ``ConsumerGroupMetadataKey``: the group id), but its value is
Headrace's own: a version (int16, currently 0) followed by the whole group as JSON: epochs,
assignor, subscribed topics, target assignment and every member's subscription, epochs,
reconciliation state and assignment (and, for a classic member of the group, its session
timeout and JoinGroup protocols). The latest record per key is the group, so compaction
keeps exactly one; a null value (tombstone) deletes the group. Offsets stay Kafka's offset
records, shared with classic groups. Session deadlines are not stored: a loaded group gives
every member a full session. Pure code.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from typing import Any

from headrace.groups.consumer.model import (
    ClassicMembership,
    ConsumerGroup,
    ConsumerMember,
    MemberState,
)
from headrace.groups.model import JoinProtocol

SNAPSHOT_VERSION = 0
_VERSION = struct.Struct(">h")


class SnapshotError(ValueError):
    pass


def _partitions(value: frozenset[tuple[str, int]]) -> list[list[Any]]:
    return [[topic, partition] for topic, partition in sorted(value)]


def _from_partitions(value: list[list[Any]]) -> frozenset[tuple[str, int]]:
    return frozenset((str(topic), int(partition)) for topic, partition in value)


def _classic(classic: ClassicMembership) -> dict[str, Any]:
    return {
        "session_timeout_ms": classic.session_timeout_ms,
        "protocol_type": classic.protocol_type,
        "protocols": [[p.name, base64.b64encode(p.metadata).decode()] for p in classic.protocols],
    }


def _from_classic(stored: dict[str, Any]) -> ClassicMembership:
    return ClassicMembership(
        int(stored["session_timeout_ms"]),
        str(stored["protocol_type"]),
        tuple(JoinProtocol(str(name), base64.b64decode(metadata))
              for name, metadata in stored["protocols"]),
    )


def encode(group: ConsumerGroup) -> bytes:
    document = {
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "assignor": group.assignor_name,
        "topics": {name: [tid, n] for name, (tid, n) in sorted(group.subscribed_topics.items())},
        "target": {m: _partitions(tps) for m, tps in sorted(group.target.items())},
        "members": [
            {
                "id": m.member_id,
                "instance_id": m.instance_id,
                "rack_id": m.rack_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "rebalance_timeout_ms": m.rebalance_timeout_ms,
                "topic_names": list(m.subscribed_topic_names),
                "topic_regex": m.subscribed_topic_regex,
                "server_assignor": m.server_assignor,
                "epoch": m.member_epoch,
                "previous_epoch": m.previous_member_epoch,
                "state": m.state.value,
                "assigned": _partitions(m.assigned),
                "pending_revocation": _partitions(m.pending_revocation),
                "revoking": m.revocation_deadline_ms is not None,
                **({} if m.classic is None else {"classic": _classic(m.classic)}),
            }
            for m in group.members.values()
        ],
    }
    return _VERSION.pack(SNAPSHOT_VERSION) + json.dumps(document, separators=(",", ":")).encode()


def decode(group_id: str, data: bytes) -> ConsumerGroup:
    if len(data) < 2 or _VERSION.unpack_from(data)[0] != SNAPSHOT_VERSION:
        raise SnapshotError("unknown consumer group record version")
    try:
        document = json.loads(data[2:])
        group = ConsumerGroup(
            group_id,
            group_epoch=int(document["group_epoch"]),
            assignment_epoch=int(document["assignment_epoch"]),
            assignor_name=str(document["assignor"]),
            subscribed_topics={
                str(name): (str(tid), int(n)) for name, (tid, n) in document["topics"].items()
            },
            target={str(m): _from_partitions(tps) for m, tps in document["target"].items()},
        )
        for stored in document["members"]:
            member = ConsumerMember(
                str(stored["id"]),
                instance_id=stored["instance_id"],
                rack_id=stored["rack_id"],
                client_id=str(stored["client_id"]),
                client_host=str(stored["client_host"]),
                rebalance_timeout_ms=int(stored["rebalance_timeout_ms"]),
                subscribed_topic_names=tuple(stored["topic_names"]),
                subscribed_topic_regex=stored["topic_regex"],
                server_assignor=stored["server_assignor"],
                member_epoch=int(stored["epoch"]),
                previous_member_epoch=int(stored["previous_epoch"]),
                state=MemberState(stored["state"]),
                assigned=_from_partitions(stored["assigned"]),
                pending_revocation=_from_partitions(stored["pending_revocation"]),
                revocation_deadline_ms=0 if stored["revoking"] else None,
                classic=_from_classic(stored["classic"]) if "classic" in stored else None,
            )
            group.members[member.member_id] = member
            if member.instance_id is not None:
                group.static_members[member.instance_id] = member.member_id
    except (KeyError, TypeError, ValueError, binascii.Error) as error:
        raise SnapshotError(f"malformed consumer group record: {error}") from error
    return group
