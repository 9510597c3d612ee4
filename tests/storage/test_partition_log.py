"""PartitionLog behaviour: reads, rolls, retention, deletion, truncation, epochs, replicas."""

from __future__ import annotations

import os
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from headrace.storage import (
    InvalidBatchError,
    LogConfig,
    LogManager,
    OffsetOutOfRangeError,
    PartitionLog,
)
from tests.storage.conftest import ManualClock, OpenManager
from tests.support.batches import base_offset_of, batch_body, make_batch, split_batches

DAY_MS = 24 * 3600 * 1000


def _fill(log: PartitionLog, count: int, *, records: int = 2, ts: int | None = None) -> list[bytes]:
    batches = []
    for i in range(count):
        batch = make_batch(
            [f"r{i}-{j}".encode() * 3 for j in range(records)],
            timestamp_ms=ts if ts is not None else 1_700_000_000_000 + i * 10,
        )
        log.append(batch, leader_epoch=0)
        batches.append(batch)
    return batches


def _read_all(log: PartitionLog, start: int | None = None) -> list[bytes]:
    with log.read(log.log_start_offset if start is None else start, 1 << 30) as read:
        return split_batches(read.to_bytes())


@pytest.fixture
def small(open_manager: OpenManager) -> PartitionLog:
    manager = open_manager(LogConfig(segment_bytes=600, index_interval_bytes=100))
    manager.create_topic("t", 1)
    return manager.get_partition("t", 0)


def test_segment_files_named_by_base_offset(small: PartitionLog) -> None:
    _fill(small, 20)
    assert small.segment_count > 3
    names = sorted(p.name for p in small.directory.iterdir())
    bases = [int(n.split(".")[0]) for n in names if n.endswith(".log")]
    assert names[0] == "00000000000000000000.index"
    for base in bases:
        stem = f"{base:020d}"
        assert {stem + ".log", stem + ".index", stem + ".timeindex"} <= set(names)
    assert small.directory.name == "t-0"
    # Every segment but the last is at most segment.bytes.
    sizes = [os.path.getsize(small.directory / f"{b:020d}.log") for b in bases]
    assert all(size <= 600 for size in sizes[:-1])
    assert sum(sizes) == small.size_bytes


def test_read_whole_batches_from_any_offset(small: PartitionLog) -> None:
    batches = _fill(small, 20, records=3)
    assert small.log_end_offset == 60
    for offset in range(60):
        with small.read(offset, 1) as read:  # smaller than one batch: still one batch
            (got,) = split_batches(read.to_bytes())
            assert base_offset_of(got) == offset - offset % 3
            assert batch_body(got) == batch_body(batches[offset // 3])
            assert read.high_offset == offset - offset % 3 + 3
    with small.read(0, 1 << 20) as read:
        assert [batch_body(b) for b in split_batches(read.to_bytes())] == [
            batch_body(b) for b in batches
        ]
        assert read.high_offset == 60
        assert len(read.regions) == small.segment_count  # one region per segment crossed


def test_read_respects_byte_limit_and_max_offset(small: PartitionLog) -> None:
    batches = _fill(small, 10, records=1)
    size = len(batches[0])
    with small.read(0, size * 3 + size // 2) as read:
        assert read.size == size * 3
        assert read.high_offset == 3
    with small.read(2, 1 << 20, max_offset=5) as read:
        assert [base_offset_of(b) for b in split_batches(read.to_bytes())] == [2, 3, 4]
    with small.read(5, 1 << 20, max_offset=5) as read:
        assert read.regions == [] and read.high_offset == 5
    with small.read(10, 100) as read:  # at the log end: empty, not an error
        assert read.size == 0
    with pytest.raises(OffsetOutOfRangeError):
        small.read(11, 100)
    with pytest.raises(OffsetOutOfRangeError):
        small.read(-1, 100)


def test_read_regions_are_sendfile_ready_and_survive_deletion(
    small: PartitionLog, tmp_path: Path
) -> None:
    batches = _fill(small, 10, records=1)
    read = small.read(0, 1 << 20)
    small.truncate_fully_and_start_at(100)  # deletes every segment file
    out = tmp_path / "sent"
    with open(out, "wb") as sink:
        for region in read.regions:
            sent = 0
            while sent < region.size:
                sent += os.sendfile(
                    sink.fileno(), region.fd, region.position + sent, region.size - sent
                )
    read.close()
    got = split_batches(out.read_bytes())
    assert [batch_body(b) for b in got] == [batch_body(b) for b in batches]
    assert small.log_start_offset == small.log_end_offset == 100


def test_open_files_are_bounded(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, max_open_files=8)
    manager.create_topic("many", 30)
    for p in range(30):
        _fill(manager.get_partition("many", p), 3)
        assert manager.files.open_count <= 8
    for p in range(30):
        assert len(_read_all(manager.get_partition("many", p))) == 3
        assert manager.files.open_count <= 8
    manager.close()


def test_offset_for_timestamp(small: PartitionLog) -> None:
    for i in range(30):
        small.append(make_batch([b"a", b"b"], timestamp_ms=1000 + i * 100), leader_epoch=0)
    # batch i has timestamps 1000+100i and 1001+100i (max).
    assert small.offset_for_timestamp(0) == (0, 1001)
    assert small.offset_for_timestamp(1001) == (0, 1001)
    assert small.offset_for_timestamp(1002) == (2, 1101)
    assert small.offset_for_timestamp(2550) == (32, 2601)
    assert small.offset_for_timestamp(3901) == (58, 3901)
    assert small.offset_for_timestamp(3902) is None
    assert small.offset_for_timestamp(-2) == (0, -1)
    assert small.offset_for_timestamp(-1) == (60, -1)
    small.delete_records_before(13)
    assert small.offset_for_timestamp(0) == (13, 1601)


def test_roll_by_age(open_manager: OpenManager, clock: ManualClock) -> None:
    manager = open_manager(LogConfig(segment_ms=1000))
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    _fill(log, 3)
    assert log.segment_count == 1
    clock.advance(999)
    _fill(log, 1)
    assert log.segment_count == 1
    clock.advance(1)
    _fill(log, 1)  # the append itself rolls an aged segment first
    assert log.segment_count == 2
    clock.advance(1000)
    report = manager.enforce_retention()  # an idle aged segment rolls by retention pass
    assert report.segments_rolled == 1
    assert log.segment_count == 3
    assert manager.enforce_retention().segments_rolled == 0  # empty active never rolls


def test_retention_by_time_deletes_whole_old_segments(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = open_manager(LogConfig(segment_bytes=600, retention_ms=DAY_MS))
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    old = _fill(log, 12, ts=clock.now_ms - 2 * DAY_MS)
    boundary = log.log_end_offset
    log.roll()
    new = _fill(log, 3, ts=clock.now_ms)
    report = manager.enforce_retention()
    assert report.segments_deleted >= 2
    assert log.log_start_offset == boundary
    assert report.log_start_offsets == {("t", 0): boundary}
    assert [batch_body(b) for b in _read_all(log)] == [batch_body(b) for b in new]
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 100)
    assert len(old) == boundary // 2
    # When everything expires, the active segment is rolled and deleted too; offsets continue.
    clock.advance(3 * DAY_MS)
    manager.enforce_retention()
    end = boundary + 6
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (end, end, 0)
    assert log.append(make_batch([b"z"]), leader_epoch=0).base_offset == end


def test_retention_by_size(open_manager: OpenManager) -> None:
    manager = open_manager(LogConfig(segment_bytes=600, retention_bytes=1300))
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    batches = _fill(log, 30)
    manager.enforce_retention()
    assert log.size_bytes <= 1300 + 600  # never more than one segment over the limit
    assert log.size_bytes > 1300 - 600
    kept = _read_all(log)
    assert [batch_body(b) for b in kept] == [batch_body(b) for b in batches[-len(kept) :]]
    assert log.log_start_offset == base_offset_of(kept[0])


def test_delete_records_before(small: PartitionLog) -> None:
    _fill(small, 20, records=2)
    segments = small.segment_count
    assert small.delete_records_before(7) == 7
    assert small.log_start_offset == 7
    assert small.delete_records_before(3) == 7  # never moves backwards
    with pytest.raises(OffsetOutOfRangeError):
        small.read(5, 100)
    with small.read(7, 1) as read:  # the batch containing offset 7 starts at 6
        assert base_offset_of(read.to_bytes()) == 6
    small.delete_records_before(30)
    assert small.segment_count < segments
    assert small.delete_records_before(40) == 40  # up to the log end is allowed
    with pytest.raises(OffsetOutOfRangeError):
        small.delete_records_before(41)
    assert small.log_end_offset == 40


def test_truncate_to(small: PartitionLog) -> None:
    batches = _fill(small, 20, records=2)
    small.truncate_to(40)  # at the end: nothing happens
    assert small.log_end_offset == 40
    small.truncate_to(17)  # inside batch 8 (offsets 16, 17): the whole batch goes
    assert small.log_end_offset == 16
    assert [batch_body(b) for b in _read_all(small)] == [batch_body(b) for b in batches[:8]]
    more = make_batch([b"after"])
    assert small.append(more, leader_epoch=1).base_offset == 16
    assert batch_body(_read_all(small)[-1]) == batch_body(more)
    small.truncate_to(0)
    assert (small.log_start_offset, small.log_end_offset, small.segment_count) == (0, 0, 1)


def test_truncate_fully_and_start_at(small: PartitionLog) -> None:
    _fill(small, 10)
    small.append(make_batch([b"x"]), leader_epoch=3)
    small.truncate_fully_and_start_at(500)
    assert (small.log_start_offset, small.log_end_offset) == (500, 500)
    assert small.latest_leader_epoch == -1
    assert small.append(make_batch([b"x"]), leader_epoch=4).base_offset == 500
    assert small.end_offset_for_epoch(4) == (4, 501)


def test_leader_epoch_cache(small: PartitionLog) -> None:
    _fill(small, 2)  # epoch 0: offsets 0-3
    small.append(make_batch([b"a", b"b"]), leader_epoch=2)  # epoch 2 from 4
    small.append(make_batch([b"c"]), leader_epoch=5)  # epoch 5 from 6
    assert small.latest_leader_epoch == 5
    assert small.end_offset_for_epoch(5) == (5, 7)
    assert small.end_offset_for_epoch(0) == (0, 4)
    assert small.end_offset_for_epoch(1) == (0, 4)
    assert small.end_offset_for_epoch(3) == (2, 6)
    assert small.end_offset_for_epoch(9) == (-1, -1)
    assert small.end_offset_for_epoch(-1) == (-1, -1)
    small.truncate_to(5)  # epoch 5's first offset is gone; epoch 2's batch is cut too
    assert small.log_end_offset == 4
    assert small.latest_leader_epoch == 0
    text = (small.directory / "leader-epoch-checkpoint").read_text().split("\n")
    assert text[:3] == ["0", "1", "0 0"]


def test_replica_append_keeps_leader_offsets(open_manager: OpenManager) -> None:
    manager = open_manager()
    manager.create_topic("leader", 1)
    manager.create_topic("follower", 1)
    leader = manager.get_partition("leader", 0)
    follower = manager.get_partition("follower", 0)
    _fill(leader, 3)
    leader.append(make_batch([b"e7"]), leader_epoch=7)
    with leader.read(0, 1 << 20) as read:
        data = read.to_bytes()
    result = follower.append_replica(data)
    assert (result.base_offset, result.last_offset) == (0, 6)
    with follower.read(0, 1 << 20) as read:
        assert read.to_bytes() == data  # byte for byte, offsets and epochs included
    assert follower.end_offset_for_epoch(0) == (0, 6)
    assert follower.latest_leader_epoch == 7
    with pytest.raises(InvalidBatchError, match="expected 7"):
        follower.append_replica(data)  # not contiguous with the log end
    assert follower.log_end_offset == 7


def test_flush_policy_every_n_messages_fsyncs(open_manager: OpenManager) -> None:
    manager = open_manager(LogConfig(flush_messages=3))
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    _fill(log, 1, records=2)
    assert log._unflushed_records == 2
    _fill(log, 1, records=2)  # 4 >= 3: fsynced
    assert log._unflushed_records == 0


def test_flush_ms_policy(open_manager: OpenManager, clock: ManualClock) -> None:
    manager = open_manager(LogConfig(flush_ms=1000))
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    _fill(log, 1)
    assert manager.maybe_flush() == 0
    clock.advance(1000)
    assert manager.maybe_flush() == 1
    assert log._unflushed_records == 0


def test_read_in_flight_survives_descriptor_eviction(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, max_open_files=2)
    manager.create_topic("lru", 4)
    written = [_fill(manager.get_partition("lru", p), 2) for p in range(4)]
    in_flight = manager.get_partition("lru", 0).read(0, 1 << 20)
    for p in range(1, 4):  # evicts partition 0's descriptors from the cache
        assert len(_read_all(manager.get_partition("lru", p))) == 2
    assert manager.files.open_count <= 2
    got = split_batches(in_flight.to_bytes())
    in_flight.close()
    assert [batch_body(b) for b in got] == [batch_body(b) for b in written[0]]
    manager.close()


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    appends=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3)), min_size=1, max_size=25),
    fetch_bytes=st.integers(1, 900),
)
def test_follower_replicating_by_fetch_is_byte_identical(
    tmp_path_factory: pytest.TempPathFactory, appends: list[tuple[int, int]], fetch_bytes: int
) -> None:
    manager = LogManager(
        tmp_path_factory.mktemp("replica"), default_config=LogConfig(segment_bytes=500)
    )
    manager.create_topic("leader", 1)
    manager.create_topic("follower", 1)
    leader, follower = manager.get_partition("leader", 0), manager.get_partition("follower", 0)
    epoch = 0
    for records, bump in appends:
        epoch += bump
        leader.append(make_batch([b"v" * 20] * records), leader_epoch=epoch)
    while follower.log_end_offset < leader.log_end_offset:  # the follower's fetch loop
        with leader.read(follower.log_end_offset, fetch_bytes) as read:
            follower.append_replica(read.to_bytes())
    with leader.read(0, 1 << 20) as a, follower.read(0, 1 << 20) as b:
        assert a.to_bytes() == b.to_bytes()
    for asked in range(-1, epoch + 2):
        assert follower.end_offset_for_epoch(asked) == leader.end_offset_for_epoch(asked)
    manager.close()
