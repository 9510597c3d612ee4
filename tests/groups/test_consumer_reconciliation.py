"""KIP-848 reconciliation through the pure machine, with model clients (hypothesis).

Whatever order members join, heartbeat and leave in, no partition is ever owned by two
clients at once (a partition moves only after its old owner revoked it), and once everyone
keeps heartbeating the group settles: Stable, every partition owned, loads within one.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.groups.consumer.machine import ConsumerGroupMachine
from headrace.groups.consumer.model import ConsumerGroupState
from tests.groups.kip848_support import FakeCatalog, ModelClient

PARTITIONS = 6

operations = st.lists(
    st.tuples(st.sampled_from(["join", "heartbeat", "heartbeat", "heartbeat", "leave"]),
              st.integers(0, 4)),
    max_size=60,
)


def _assert_disjoint(clients: dict[int, ModelClient]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for client in clients.values():
        for tp in client.owned:
            assert tp not in seen, f"{tp} owned by {seen[tp]} and {client.member_id}"
            seen[tp] = client.member_id


@settings(max_examples=150, deadline=None)
@given(operations, st.sampled_from(["uniform", "range"]))
def test_no_partition_is_owned_twice_and_the_group_converges(
    ops: list[tuple[str, int]], assignor: str
) -> None:
    catalog = FakeCatalog(t=PARTITIONS)
    machine = ConsumerGroupMachine()
    clients: dict[int, ModelClient] = {}
    now = 0
    for op, index in ops:
        now += 10
        client = clients.get(index)
        if op == "join" and client is None:
            clients[index] = ModelClient(f"member-{index}", ("t",), assignor=assignor)
            clients[index].heartbeat(machine, catalog, now)
        elif op == "heartbeat" and client is not None:
            client.heartbeat(machine, catalog, now)
        elif op == "leave" and client is not None:
            client.heartbeat(machine, catalog, now, epoch=-1)
            del clients[index]
        _assert_disjoint(clients)
    for _round in range(10):
        for client in clients.values():
            now += 10
            client.heartbeat(machine, catalog, now)
            _assert_disjoint(clients)
    group = machine.groups.get("g")
    if not clients:
        return
    assert group is not None and group.state is ConsumerGroupState.STABLE
    owned = sorted(tp for c in clients.values() for tp in c.owned)
    assert owned == [("t", p) for p in range(PARTITIONS)]
    loads = [len(c.owned) for c in clients.values()]
    assert max(loads) - min(loads) <= 1
    assert {c.epoch for c in clients.values()} == {group.assignment_epoch}
