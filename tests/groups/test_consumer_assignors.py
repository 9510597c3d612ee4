"""KIP-848's server-side assignors: balance, coverage, stickiness (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from headrace.groups.consumer.assignors import AssignmentSpec, MemberSpec, range_, uniform


def _spec(members: dict[str, set[str]], partitions: dict[str, int],
          current: dict[str, set[tuple[str, int]]] | None = None) -> AssignmentSpec:
    current = current or {}
    return AssignmentSpec(
        {m: MemberSpec(frozenset(t), frozenset(current.get(m, set()))) for m, t in members.items()},
        partitions,
    )


def _all(assignment: dict[str, frozenset[tuple[str, int]]]) -> list[tuple[str, int]]:
    return [tp for owned in assignment.values() for tp in owned]


def test_range_gives_contiguous_ranges_in_member_order() -> None:
    result = range_(_spec({"b": {"t"}, "a": {"t"}, "c": {"t"}}, {"t": 7}))
    assert result == {
        "a": frozenset({("t", 0), ("t", 1), ("t", 2)}),
        "b": frozenset({("t", 3), ("t", 4)}),
        "c": frozenset({("t", 5), ("t", 6)}),
    }


def test_range_co_partitions_topics() -> None:
    result = range_(_spec({"a": {"x", "y"}, "b": {"x", "y"}}, {"x": 4, "y": 4}))
    for member in result:
        assert {p for t, p in result[member] if t == "x"} == {p for t, p in result[member]
                                                              if t == "y"}


def test_uniform_is_sticky_when_a_member_joins() -> None:
    before = uniform(_spec({"a": {"t"}, "b": {"t"}}, {"t": 6}))
    after = uniform(_spec({"a": {"t"}, "b": {"t"}, "c": {"t"}}, {"t": 6}, before))  # type: ignore[arg-type]
    assert sorted(len(v) for v in after.values()) == [2, 2, 2]
    # Only the partitions the newcomer needs moved: a and b each kept two of theirs.
    assert len(after["a"] & before["a"]) == 2 and len(after["b"] & before["b"]) == 2


def test_uniform_respects_subscriptions() -> None:
    result = uniform(_spec({"a": {"x"}, "b": {"x", "y"}}, {"x": 2, "y": 2}))
    assert all(t == "x" for t, _ in result["a"])
    assert sorted(_all(result)) == [("x", 0), ("x", 1), ("y", 0), ("y", 1)]


members_st = st.dictionaries(
    st.sampled_from(["m1", "m2", "m3", "m4", "m5"]),
    st.sets(st.sampled_from(["t1", "t2", "t3"]), min_size=1),
    min_size=1,
)
partitions_st = st.fixed_dictionaries(
    {"t1": st.integers(0, 8), "t2": st.integers(0, 8), "t3": st.integers(0, 8)}
)


@given(members_st, partitions_st)
def test_every_subscribed_partition_goes_to_exactly_one_subscriber(
    members: dict[str, set[str]], partitions: dict[str, int]
) -> None:
    for assignor in (uniform, range_):
        result = assignor(_spec(members, partitions))
        owned = _all(result)
        assert len(owned) == len(set(owned))
        subscribed = {t for topics in members.values() for t in topics}
        assert set(owned) == {(t, p) for t in subscribed for p in range(partitions[t])}
        for member, tps in result.items():
            assert all(t in members[member] for t, _ in tps)


@given(st.integers(1, 6), st.integers(0, 30), st.data())
def test_uniform_balances_identical_subscriptions_even_from_skewed_owners(
    member_count: int, partition_count: int, data: st.DataObject
) -> None:
    members = {f"m{i}": {"t"} for i in range(member_count)}
    owners = data.draw(st.lists(st.sampled_from(sorted(members)), min_size=partition_count,
                                max_size=partition_count))
    current: dict[str, set[tuple[str, int]]] = {}
    for partition, owner in enumerate(owners):
        current.setdefault(owner, set()).add(("t", partition))
    result = uniform(_spec(members, {"t": partition_count}, current))
    loads = [len(v) for v in result.values()]
    assert max(loads) - min(loads) <= 1
