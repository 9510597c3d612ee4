"""The asyncio coordinator over a real storage LogManager in tmp_path: offsets and groups survive
a restart because they are replayed from ``__consumer_offsets``."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import google_crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.groups import (
    OFFSETS_TOPIC,
    CoordinatorNode,
    GroupConfig,
    GroupCoordinator,
    GroupLimits,
    GroupState,
    OffsetCommit,
    offsets_partition_for,
    records,
)
from headrace.groups.model import JoinProtocol, JoinRequest
from headrace.groups.persistence import append_error_to_group_error
from headrace.storage import BatchTooLargeError, LogManager, StorageError
from tests.support.waiting import eventually_async

NODE = CoordinatorNode(7, "127.0.0.1", 9092)
CONFIG = GroupConfig(
    offsets_topic_partitions=3, limits=GroupLimits(min_session_timeout_ms=100)
)
PROTOCOLS = (JoinProtocol("range", b"\x00\x01\x00\x00\x00\x01\x00\x06orders\xff\xff\xff\xff"),)


def join_request(
    group: str, member_id: str = "", instance: str | None = None, session_ms: int = 10_000
) -> JoinRequest:
    """A JoinGroup v4+ call of a "consumer" member with the range protocol."""
    return JoinRequest(group, member_id, instance, "c", "h", session_ms, 10_000, "consumer",
                       PROTOCOLS, False)


class Broker:
    """A LogManager plus coordinator that can be stopped and reopened on the same directory."""

    def __init__(self, data_dir: Path, config: GroupConfig = CONFIG) -> None:
        self.data_dir = data_dir
        self.config = config
        self.logs: LogManager | None = None
        self.coordinator: GroupCoordinator | None = None

    async def start(self) -> GroupCoordinator:
        self.logs = LogManager(self.data_dir)
        self.coordinator = GroupCoordinator(self.logs, NODE, self.config)
        await self.coordinator.start()
        return self.coordinator

    async def stop(self) -> None:
        if self.coordinator is not None:
            await self.coordinator.stop()
        if self.logs is not None:
            self.logs.close()
        self.coordinator = self.logs = None


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    node = Broker(tmp_path / "data")
    await node.start()
    yield node
    await node.stop()


async def join_one(
    coordinator: GroupCoordinator,
    group: str,
    member_id: str = "",
    instance: str | None = None,
    session_ms: int = 10_000,
) -> tuple[str, int]:
    result = await coordinator.join_group(join_request(group, member_id, instance, session_ms))
    assert result.error is ErrorCode.none
    sync = await coordinator.sync_group(
        group, result.generation_id, result.member_id, instance, None, None,
        {result.member_id: b"assignment"},
    )
    assert sync.error is ErrorCode.none
    assert sync.assignment == b"assignment"
    return result.member_id, result.generation_id


async def test_commit_fetch_and_restart_restores_offsets_and_group(broker: Broker) -> None:
    coordinator = broker.coordinator
    assert coordinator is not None
    member, generation = await join_one(coordinator, "orders-app")
    commits = [
        OffsetCommit("orders", 0, 17, 2, "first"),
        OffsetCommit("orders", 1, 5, -1, None),
    ]
    results = await coordinator.commit_offsets("orders-app", generation, member, None, commits)
    assert results == {("orders", 0): ErrorCode.none, ("orders", 1): ErrorCode.none}
    # A later commit wins; a simple consumer (generation -1) may use its own empty group.
    await coordinator.commit_offsets(
        "orders-app", generation, member, None, [OffsetCommit("orders", 0, 20, 3, "second")]
    )
    simple = await coordinator.commit_offsets(
        "simple", -1, "", None, [OffsetCommit("audit", 4, 99, -1, "")]
    )
    assert simple == {("audit", 4): ErrorCode.none}

    error, fetched = coordinator.fetch_offsets("orders-app", [("orders", 0), ("orders", 9)])
    assert error is ErrorCode.none
    assert fetched[("orders", 9)] is None
    first = fetched[("orders", 0)]
    assert first is not None and (first.offset, first.leader_epoch, first.metadata) == (
        20, 3, "second"
    )

    await broker.stop()
    coordinator = await broker.start()
    error, everything = coordinator.fetch_offsets("orders-app", None)
    assert error is ErrorCode.none
    assert {tp: (c.offset, c.leader_epoch, c.metadata) for tp, c in everything.items() if c} == {
        ("orders", 0): (20, 3, "second"),
        ("orders", 1): (5, -1, ""),
    }
    assert coordinator.committed_offsets("simple")[("audit", 4)].offset == 99
    # The stable group came back with its member, generation and assignment: the member's
    # heartbeat succeeds without a rebalance.
    description = coordinator.describe_group("orders-app")
    assert (description.state, description.generation_id) == ("Stable", generation)
    assert [(m.member_id, m.assignment) for m in description.members] == [
        (member, b"assignment")
    ]
    assert coordinator.heartbeat("orders-app", generation, member, None) is ErrorCode.none


async def test_commits_are_records_in_the_groups_partition(broker: Broker) -> None:
    coordinator = broker.coordinator
    assert coordinator is not None and broker.logs is not None
    await coordinator.commit_offsets("g1", -1, "", None, [OffsetCommit("t", 0, 3, -1, "m")])
    partition = broker.logs.get_partition(
        OFFSETS_TOPIC, offsets_partition_for("g1", CONFIG.offsets_topic_partitions)
    )
    assert partition.log_end_offset == 1
    with partition.read(0, 1 << 20) as read:
        entries = list(records.parse_batches(read.to_bytes()))
    assert len(entries) == 1
    assert entries[0].key == records.OffsetKey("g1", "t", 0)
    value = entries[0].value
    assert isinstance(value, records.OffsetValue)
    assert (value.offset, value.metadata) == (3, "m")


async def test_two_members_join_concurrently(broker: Broker) -> None:
    coordinator = broker.coordinator
    assert coordinator is not None

    async def join() -> tuple[str, int, str, int]:
        result = await coordinator.join_group(join_request("pair"))
        return result.member_id, result.generation_id, result.leader_id, len(result.members)

    first = await join()  # a lone member completes generation 1 at once
    second_task = asyncio.create_task(join())
    await eventually_async(lambda: coordinator.describe_group("pair").state == "PreparingRebalance",
                           timeout=10, message="the pair's group preparing a rebalance")
    rejoin = await coordinator.join_group(join_request("pair", first[0]))
    second = await second_task
    assert rejoin.generation_id == second[1] == 2
    assert rejoin.leader_id == second[2] == first[0]
    assert len(rejoin.members) == 2 and second[3] == 0

    sync_follower = asyncio.create_task(
        coordinator.sync_group("pair", 2, second[0], None, None, None, {})
    )
    await asyncio.sleep(0)
    assert not sync_follower.done()
    leader_sync = await coordinator.sync_group(
        "pair", 2, first[0], None, None, None, {first[0]: b"L", second[0]: b"F"}
    )
    assert leader_sync.assignment == b"L"
    assert (await sync_follower).assignment == b"F"


async def test_session_timeout_expires_member_with_real_timer(broker: Broker) -> None:
    coordinator = broker.coordinator
    assert coordinator is not None
    rebalances: list[tuple[str, int]] = []
    coordinator.add_rebalance_listener(lambda group, gen: rebalances.append((group, gen)))
    await join_one(coordinator, "short", session_ms=200)
    assert rebalances == [("short", 1)]
    await eventually_async(lambda: coordinator.describe_group("short").state == "Empty",
                           timeout=10, message="the expired member gone")
    assert rebalances == [("short", 1), ("short", 2)]
    assert coordinator.list_groups(["empty"])[0].group_id == "short"
    assert coordinator.list_groups(["stable"]) == []


async def test_not_coordinator_until_partition_loaded(tmp_path: Path) -> None:
    config = GroupConfig(offsets_topic_partitions=3, own_all_partitions=False)
    node = Broker(tmp_path / "data", config)
    coordinator = await node.start()
    try:
        partition = offsets_partition_for("late", 3)
        result = await coordinator.join_group(join_request("late"))
        assert result.error is ErrorCode.not_coordinator
        assert coordinator.fetch_offsets("late", None)[0] is ErrorCode.not_coordinator
        await coordinator.load_partition(partition, leader_epoch=1)
        member, generation = await join_one(coordinator, "late")
        # A new epoch while we stay leader keeps the live group as it is.
        await coordinator.load_partition(partition, leader_epoch=2)
        assert coordinator.heartbeat("late", generation, member, None) is ErrorCode.none
        elsewhere = CoordinatorNode(9, "10.0.0.9", 9999)
        coordinator.set_partition_leader(lambda p: elsewhere)
        assert coordinator.coordinator_for("late") == elsewhere
        await coordinator.unload_partition(partition)
        assert coordinator.heartbeat("late", generation, member, None) is (
            ErrorCode.not_coordinator
        )
    finally:
        await node.stop()


async def test_delete_group_and_offsets_survive_restart(broker: Broker) -> None:
    coordinator = broker.coordinator
    assert coordinator is not None
    await coordinator.commit_offsets("gone", -1, "", None, [OffsetCommit("t", 0, 1, -1, "")])
    await coordinator.commit_offsets(
        "trimmed", -1, "", None, [OffsetCommit("t", 0, 1, -1, ""), OffsetCommit("u", 0, 2, -1, "")]
    )
    member, generation = await join_one(coordinator, "busy")
    assert await coordinator.delete_groups(["gone", "busy", "never"]) == {
        "gone": ErrorCode.none,
        "busy": ErrorCode.non_empty_group,
        "never": ErrorCode.group_id_not_found,
    }
    await coordinator.commit_offsets("reborn", -1, "", None, [OffsetCommit("t", 0, 1, -1, "")])
    assert await coordinator.delete_groups(["reborn"]) == {"reborn": ErrorCode.none}
    # Offsets committed after a deletion belong to a new incarnation and must survive replay.
    await coordinator.commit_offsets("reborn", -1, "", None, [OffsetCommit("t", 1, 7, -1, "")])
    error, per_partition = await coordinator.delete_offsets("trimmed", [("t", 0)])
    assert (error, per_partition) == (ErrorCode.none, {("t", 0): ErrorCode.none})
    # "busy" subscribes to "orders" (see PROTOCOLS): its offsets there cannot be deleted.
    error, per_partition = await coordinator.delete_offsets("busy", [("orders", 0)])
    assert per_partition == {("orders", 0): ErrorCode.group_subscribed_to_topic}

    await broker.stop()
    coordinator = await broker.start()
    assert coordinator.describe_group("gone").state == GroupState.DEAD.value
    assert "gone" not in {g.group_id for g in coordinator.list_groups()}
    assert set(coordinator.committed_offsets("trimmed")) == {("u", 0)}
    assert {tp: c.offset for tp, c in coordinator.committed_offsets("reborn").items()} == {
        ("t", 1): 7
    }
    assert coordinator.heartbeat("busy", generation, member, None) is ErrorCode.none


async def test_coordinator_load_in_progress_while_replaying(tmp_path: Path) -> None:
    node = Broker(tmp_path / "data")
    coordinator = await node.start()
    for offset in range(50):
        await coordinator.commit_offsets(
            "loading", -1, "", None, [OffsetCommit("t", offset % 3, offset, -1, "")]
        )
    await node.stop()

    node.config = GroupConfig(offsets_topic_partitions=3, own_all_partitions=False)
    coordinator = await node.start()
    try:
        loading = asyncio.create_task(
            coordinator.load_partition(offsets_partition_for("loading", 3))
        )
        await asyncio.sleep(0)  # the load runs up to its first yield, mid-replay
        assert not loading.done()
        assert coordinator.ownership_error("loading") is ErrorCode.coordinator_load_in_progress
        result = await coordinator.join_group(join_request("loading"))
        assert result.error is ErrorCode.coordinator_load_in_progress
        await loading
        error, offsets = coordinator.fetch_offsets("loading", None)
        assert error is ErrorCode.none
        assert {tp: c.offset for tp, c in offsets.items() if c} == {
            ("t", 0): 48, ("t", 1): 49, ("t", 2): 47
        }
    finally:
        await node.stop()


def _wrapped(code: ErrorCode) -> StorageError:
    """What the broker's append hook raises: a StorageError wrapping the server's KafkaError."""
    try:
        raise StorageError("append failed") from KafkaError(code)
    except StorageError as error:
        return error


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (_wrapped(ErrorCode.not_leader_or_follower), ErrorCode.not_coordinator),
        (_wrapped(ErrorCode.not_enough_replicas), ErrorCode.coordinator_not_available),
        (_wrapped(ErrorCode.request_timed_out), ErrorCode.coordinator_not_available),
        (BatchTooLargeError("too big"), ErrorCode.unknown_server_error),
        (StorageError("disk"), ErrorCode.not_coordinator),
        (RuntimeError("bug"), ErrorCode.unknown_server_error),
    ],
)
async def test_failed_appends_map_to_group_errors_and_release_waiters(
    tmp_path: Path, failure: Exception, expected: ErrorCode
) -> None:
    assert append_error_to_group_error(failure) is expected
    failing = False

    async def append(partition: int, batch: bytes) -> None:
        if failing:
            raise failure

    logs = LogManager(tmp_path / "data")
    coordinator = GroupCoordinator(logs, NODE, CONFIG, append=append)
    await coordinator.start()
    try:
        joined = await coordinator.join_group(join_request("g"))
        failing = True
        # The leader's SyncGroup must still be answered although storing the group failed.
        synced = await asyncio.wait_for(
            coordinator.sync_group("g", joined.generation_id, joined.member_id, None, None,
                                   None, {joined.member_id: b"a"}),
            10,
        )
        assert synced.assignment == b"a"
        results = await coordinator.commit_offsets(
            "g", joined.generation_id, joined.member_id, None, [OffsetCommit("t", 0, 1, -1, "")]
        )
        assert results == {("t", 0): expected}
        assert coordinator.committed_offsets("g") == {}
    finally:
        await coordinator.stop()
        logs.close()


async def test_unreadable_record_in_the_log_does_not_block_loading(broker: Broker) -> None:
    coordinator = broker.coordinator
    assert coordinator is not None and broker.logs is not None
    await coordinator.commit_offsets("sturdy", -1, "", None, [OffsetCommit("t", 0, 3, -1, "")])
    partition = broker.logs.get_partition(
        OFFSETS_TOPIC, offsets_partition_for("sturdy", CONFIG.offsets_topic_partitions)
    )
    # A record this version cannot read (say, written by a newer one): key version 9.
    alien = records.build_batch([(records.GroupKey("sturdy"), None)], 0)
    alien = alien.replace(b"\x00\x02\x00\x06sturdy", b"\x00\x09\x00\x06sturdy")
    alien = alien[:17] + google_crc32c.value(alien[21:]).to_bytes(4, "big") + alien[21:]
    partition.append(alien, leader_epoch=0)
    await coordinator.commit_offsets("sturdy", -1, "", None, [OffsetCommit("t", 1, 4, -1, "")])

    await broker.stop()
    coordinator = await broker.start()
    assert {tp: c.offset for tp, c in coordinator.committed_offsets("sturdy").items()} == {
        ("t", 0): 3, ("t", 1): 4
    }


async def test_offset_retention_expires_empty_groups_durably(tmp_path: Path) -> None:
    wall = [1_000_000]
    retention = 60_000
    config = GroupConfig(
        offsets_topic_partitions=3, limits=GroupLimits(min_session_timeout_ms=100),
        offsets_retention_ms=retention,
    )

    async def start() -> tuple[LogManager, GroupCoordinator]:
        logs = LogManager(tmp_path / "data")
        coordinator = GroupCoordinator(logs, NODE, config, wall_clock_ms=lambda: wall[0])
        await coordinator.start()
        return logs, coordinator

    logs, coordinator = await start()
    try:
        member, generation = await join_one(coordinator, "app")
        await coordinator.commit_offsets(
            "app", generation, member, None, [OffsetCommit("t", 0, 5, -1, "")]
        )
        await coordinator.commit_offsets("tool", -1, "", None, [OffsetCommit("t", 0, 9, -1, "")])
        wall[0] += retention  # the member is still there: its offsets stay
        assert await coordinator.expire_offsets() == {"tool": [("t", 0)]}
        assert "tool" not in {g.group_id for g in coordinator.list_groups()}
        await coordinator.leave_group("app", [(member, None)])  # Empty from now on
        empty_at = wall[0]
        wall[0] = empty_at + retention - 1
        assert await coordinator.expire_offsets() == {}
    finally:
        await coordinator.stop()
        logs.close()

    # The time the group became Empty survives a restart.
    logs, coordinator = await start()
    try:
        assert coordinator.committed_offsets("app")[("t", 0)].offset == 5
        assert coordinator.committed_offsets("tool") == {}
        wall[0] = empty_at + retention
        assert await coordinator.expire_offsets() == {"app": [("t", 0)]}
        assert coordinator.describe_group("app").state == "Dead"
    finally:
        await coordinator.stop()
        logs.close()
    logs, coordinator = await start()
    try:
        assert coordinator.committed_offsets("app") == {}
        assert coordinator.list_groups() == []
    finally:
        await coordinator.stop()
        logs.close()


operations = st.lists(
    st.tuples(
        st.sampled_from(["commit", "commit", "delete_offsets", "delete_group"]),
        st.sampled_from(["g1", "g2", "g3"]),
        st.sampled_from([("a", 0), ("a", 1), ("b", 0)]),
        st.integers(0, 1000),
    ),
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_replay_restores_exactly_what_was_in_memory(
    ops: list[tuple[str, str, tuple[str, int], int]],
) -> None:
    """Whatever sequence of commits and deletions ran, a restart rebuilds the same offsets."""

    async def scenario(data_dir: Path) -> None:
        node = Broker(data_dir)
        coordinator = await node.start()
        for op, group, (topic, partition), offset in ops:
            if op == "commit":
                await coordinator.commit_offsets(
                    group, -1, "", None, [OffsetCommit(topic, partition, offset, -1, str(offset))]
                )
            elif op == "delete_offsets":
                await coordinator.delete_offsets(group, [(topic, partition)])
            else:
                await coordinator.delete_groups([group])
        before = {g: coordinator.committed_offsets(g) for g in ("g1", "g2", "g3")}
        listed = [g.group_id for g in coordinator.list_groups()]
        await node.stop()
        coordinator = await node.start()
        try:
            assert {g: coordinator.committed_offsets(g) for g in ("g1", "g2", "g3")} == before
            assert [g.group_id for g in coordinator.list_groups()] == listed
        finally:
            await node.stop()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory) / "data"))
