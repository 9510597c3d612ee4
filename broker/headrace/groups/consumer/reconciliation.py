"""Incremental reconciliation: how one member moves from what it holds to its target.

KIP-848 never takes a partition from one member and gives it to another in the same step:

1. a member holding partitions its target no longer has keeps its epoch and is told to
   revoke them (``UNREVOKED_PARTITIONS``); until it reports it no longer owns them they stay
   its, and nobody else gets them;
2. once it holds nothing outside its target, it moves to the target epoch and receives every
   partition of its target that no other member owns; the rest it waits for
   (``UNRELEASED_PARTITIONS``), picking them up on later heartbeats as they are released;
3. with its whole target in hand it is ``STABLE``.

So at every moment each partition has at most one member that may read it, which the tests
check with hypothesis (tests/groups/test_consumer_reconciliation.py). Pure code.
"""

from __future__ import annotations

from collections.abc import Callable

from headrace.groups.consumer.model import ConsumerMember, MemberState, TopicPartition


def reconcile(
    member: ConsumerMember,
    target_epoch: int,
    target: frozenset[TopicPartition],
    reported_owned: frozenset[TopicPartition] | None,
    owned_by_other: Callable[[TopicPartition], bool],
    now_ms: int,
) -> bool:
    """Advance ``member`` one step towards ``target``; True when its assignment changed.

    ``reported_owned`` is what the member said it owns in this heartbeat (None: unchanged
    since the last one); ``owned_by_other(tp)`` whether another member still holds ``tp``.
    """
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if reported_owned is None or reported_owned & member.pending_revocation:
            return False  # still revoking
        member.pending_revocation = frozenset()
        member.revocation_deadline_ms = None
    elif member.state is MemberState.STABLE and member.member_epoch == target_epoch:
        return False
    before = member.assigned
    revoke = member.assigned - target
    if revoke:
        member.assigned = member.assigned & target
        member.pending_revocation = revoke
        member.state = MemberState.UNREVOKED_PARTITIONS
        member.revocation_deadline_ms = now_ms + member.rebalance_timeout_ms
        return True
    free = frozenset(tp for tp in target - member.assigned if not owned_by_other(tp))
    member.assigned = member.assigned | free
    if member.member_epoch != target_epoch:
        member.previous_member_epoch = member.member_epoch
        member.member_epoch = target_epoch
    member.state = (
        MemberState.STABLE if member.assigned == target else MemberState.UNRELEASED_PARTITIONS
    )
    return member.assigned != before
