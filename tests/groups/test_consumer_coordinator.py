"""KIP-848 groups in the asyncio coordinator over real storage: they survive a restart (the
group record in ``__consumer_offsets``), share offsets with classic groups, and convert."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kio.schema.errors import ErrorCode

from headrace.groups import OffsetCommit
from headrace.groups.consumer.machine import ConsumerGroupSettings, HeartbeatRequest
from headrace.groups.consumer.model import ConsumerGroupState
from tests.groups.test_coordinator import CONFIG, Broker, join_one, join_request
from tests.support.waiting import eventually_async


def _join(group: str, member: str, topics: tuple[str, ...] = ("orders",)) -> HeartbeatRequest:
    return HeartbeatRequest(group, member, 0, rebalance_timeout_ms=10_000,
                            subscribed_topic_names=topics)


async def test_a_consumer_group_and_its_offsets_survive_a_restart(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "data")
    coordinator = await broker.start()
    assert broker.logs is not None
    broker.logs.create_topic("orders", 2)
    joined = await coordinator.consumer_groups.heartbeat(_join("g", "m1"))
    assert joined.error is ErrorCode.none and joined.member_epoch == 1
    commit = OffsetCommit("orders", 0, 5, -1, "")
    assert await coordinator.commit_offsets("g", 0, "m1", None, [commit]) == {
        ("orders", 0): ErrorCode.stale_member_epoch
    }
    assert await coordinator.commit_offsets("g", 1, "m1", None, [commit]) == {
        ("orders", 0): ErrorCode.none
    }
    await broker.stop()
    coordinator = await broker.start()
    group = coordinator.consumer_groups.groups["g"]
    assert group.members["m1"].member_epoch == 1
    assert group.members["m1"].assigned == {("orders", 0), ("orders", 1)}
    assert group.state is ConsumerGroupState.STABLE
    assert coordinator.fetch_offsets("g", [("orders", 0)])[1][("orders", 0)].offset == 5  # type: ignore[union-attr]
    listed = {o.group_id: o for o in coordinator.list_groups()}
    assert (listed["g"].protocol_type, listed["g"].state) == ("consumer", "Stable")
    assert coordinator.describe_group("g").state == "Dead"  # DescribeGroups: not classic
    await broker.stop()


async def test_classic_and_consumer_groups_take_over_each_other_only_when_empty(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path / "data")
    coordinator = await broker.start()
    assert broker.logs is not None
    broker.logs.create_topic("orders", 1)
    member_id, _generation = await join_one(coordinator, "g")
    refused = await coordinator.consumer_groups.heartbeat(_join("g", "m1"))
    assert refused.error is ErrorCode.group_id_not_found
    await coordinator.leave_group("g", [(member_id, None)])
    taken = await coordinator.consumer_groups.heartbeat(_join("g", "m1"))
    assert taken.error is ErrorCode.none
    blocked = await coordinator.join_group(join_request("g"))
    assert blocked.error is ErrorCode.inconsistent_group_protocol
    left = await coordinator.consumer_groups.heartbeat(
        HeartbeatRequest("g", "m1", -1)
    )
    assert left.error is ErrorCode.none
    assert (await coordinator.delete_groups(["g"]))["g"] is ErrorCode.none
    assert "g" not in coordinator.consumer_groups.groups
    await broker.stop()
    coordinator = await broker.start()
    assert "g" not in coordinator.consumer_groups.groups
    await broker.stop()


async def test_a_silent_member_is_removed_after_the_session_timeout(tmp_path: Path) -> None:
    config = replace(CONFIG, consumer=ConsumerGroupSettings(session_timeout_ms=300))
    broker = Broker(tmp_path / "data", config)
    coordinator = await broker.start()
    assert broker.logs is not None
    broker.logs.create_topic("orders", 1)
    assert (await coordinator.consumer_groups.heartbeat(_join("g", "m1"))).error is (
        ErrorCode.none
    )
    group = coordinator.consumer_groups.groups["g"]
    await eventually_async(lambda: not group.members, timeout=10,
                           message="the silent member expired")
    assert group.state is ConsumerGroupState.EMPTY
    await broker.stop()
