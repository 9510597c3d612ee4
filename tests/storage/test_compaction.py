"""Log compaction: what survives a cleaning pass, when a pass is due, indexes and reads after
cleaning, producer state, keyless records, replicas, and the pure planning rules."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest
from aiokafka.record.default_records import DefaultRecordBatch

from headrace.record import iter_records
from headrace.record.compression import CODEC_NAMES, LZ4, SNAPPY, ZSTD, compress
from headrace.record.compression import GZIP as COMPRESSION_GZIP
from headrace.storage import (
    CleanerCheckpoint,
    InvalidBatchError,
    LogConfig,
    LogManager,
    PartitionLog,
)
from headrace.storage.cleaner import (
    SegmentStats,
    cleanable_count,
    cleaning_due,
    group_for_rewrite,
    record_survives,
)
from tests.storage.conftest import ManualClock, OpenManager
from tests.support.batches import make_keyed_batch, split_batches
from tests.support.log_reads import latest_by_key, read_batches, read_records

COMPACT = {"cleanup.policy": "compact", "segment.bytes": "400", "index.interval.bytes": "64"}
DAY_MS = 24 * 3600 * 1000


def _append(
    log: PartitionLog, clock: ManualClock, key: bytes, value: bytes | None, **kwargs: int
) -> int:
    batch = make_keyed_batch([(key, value)], timestamp_ms=clock.now_ms, **kwargs)
    return log.append(batch, leader_epoch=0).base_offset


def _compacted(open_manager: OpenManager, **configs: str) -> tuple[LogManager, PartitionLog]:
    manager = open_manager()
    manager.create_topic("c", 1, {**COMPACT, **configs})
    return manager, manager.get_partition("c", 0)


def _fill(log: PartitionLog, clock: ManualClock, count: int, keys: int = 5) -> dict[bytes, int]:
    """Append ``count`` single-record batches cycling over ``keys`` keys; key -> last offset."""
    last: dict[bytes, int] = {}
    for i in range(count):
        key = b"k%d" % (i % keys)
        last[key] = _append(log, clock, key, b"v%d" % i)
        clock.advance(1)
    return last


def _segment_bytes(log: PartitionLog) -> list[bytes]:
    return [Path(s.log_path).read_bytes() for s in log.segments]


def test_cleaning_keeps_the_latest_record_per_key_and_preserves_offsets(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    last = _fill(log, clock, 80)
    size_before, end, active_before = log.size_bytes, log.log_end_offset, _segment_bytes(log)[-1]
    active_base = log.segments[-1].base_offset

    tasks = manager.clean()

    assert len(tasks) == 1 and tasks[0].error is None
    assert log.size_bytes < size_before / 2
    assert (log.log_start_offset, log.log_end_offset) == (0, end)
    assert _segment_bytes(log)[-1] == active_before  # the active segment is never touched
    records = read_records(log)
    latest = latest_by_key(records)
    assert {k: r.offset for k, r in latest.items()} == last
    # In the cleaned part each key appears at most once; the active segment is as written.
    cleaned = [r for r in records if r.offset < active_base]
    assert len({r.key for r in cleaned}) == len(cleaned)
    assert [r.offset for r in records if r.offset >= active_base] == list(range(active_base, end))
    for record in records:  # every survivor is exactly what was written at its offset
        assert record.value == b"v%d" % record.offset
    # Appends continue at the same end offset.
    assert _append(log, clock, b"k0", b"after") == end


def test_a_second_pass_waits_for_the_dirty_ratio_then_merges_small_segments(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    _fill(log, clock, 80)
    manager.clean()
    segments_after_first = log.segment_count
    first_dirty = log.cleaner_checkpoint.first_dirty
    assert first_dirty == log.segments[-1].base_offset

    assert manager.clean() == []  # nothing dirty: no pass
    _append(log, clock, b"k1", b"one more")
    log.roll()
    assert manager.clean() == []  # 1 dirty batch among many clean bytes: below 0.5

    last = _fill(log, clock, 60)
    assert len(manager.clean()) == 1
    # The small segments cleaned by the first pass were merged by the second.
    assert len([s for s in log.segments if s.base_offset < first_dirty]) < segments_after_first - 1
    assert {k: r.offset for k, r in latest_by_key(read_records(log)).items()} == last
    for segment in log.segments[:-1]:
        assert segment.size <= 400


def test_min_compaction_lag_keeps_young_segments_dirty(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager, **{"min.compaction.lag.ms": "60000"})
    _fill(log, clock, 40)
    assert manager.clean() == []  # every sealed segment is younger than a minute
    clock.advance(60_000)
    young = _fill(log, clock, 40)
    tasks = manager.clean()
    assert len(tasks) == 1
    assert tasks[0].cleaned_end <= min(young.values())  # the young records were not cleaned
    records = read_records(log)
    assert [r.offset for r in records if r.offset >= tasks[0].cleaned_end] == list(
        range(tasks[0].cleaned_end, log.log_end_offset)
    )


def test_max_compaction_lag_forces_a_pass_and_rolls_the_active_segment(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(
        open_manager,
        **{"min.cleanable.dirty.ratio": "0.99", "max.compaction.lag.ms": "5000"},
    )
    _fill(log, clock, 40)
    manager.clean()
    _append(log, clock, b"k1", b"late")
    assert manager.enforce_retention().segments_rolled == 0
    assert manager.clean() == []
    clock.advance(5000)
    assert manager.enforce_retention().segments_rolled == 1  # KIP-354 roll of the active one
    tasks = manager.clean()  # far below the ratio, but the dirty record is too old
    assert len(tasks) == 1 and tasks[0].cleaned_end == log.log_end_offset


def test_tombstones_stay_for_delete_retention_after_their_first_cleaning(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager, **{"delete.retention.ms": "10000"})
    _fill(log, clock, 30)
    tombstone = _append(log, clock, b"k2", None)
    _fill(log, clock, 30, keys=2)  # k0, k1 only: the tombstone stays the latest for k2
    manager.clean()
    first_cleaned = clock.now_ms
    latest = latest_by_key(read_records(log))
    assert latest[b"k2"].offset == tombstone and latest[b"k2"].value is None
    assert not any(r.key == b"k2" and r.value is not None for r in read_records(log))

    _fill(log, clock, 30, keys=2)
    clock.now_ms = first_cleaned + 9_999
    assert len(manager.clean()) == 1  # the new dirty records are cleaned, the tombstone kept
    assert latest_by_key(read_records(log))[b"k2"].value is None

    clock.advance(1)
    tasks = manager.clean()  # due because a tombstone expired, even with nothing dirty
    assert len(tasks) == 1 and tasks[0].stats.tombstones_removed == 1
    assert b"k2" not in latest_by_key(read_records(log))
    assert log.cleaner_checkpoint.tombstone_expiry_ms is None


def test_reads_by_offset_and_timestamp_work_across_gaps(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    start_ms = clock.now_ms
    _fill(log, clock, 60)
    manager.clean()
    manager.close()
    manager = open_manager()  # indexes from disk (sealed), not from memory
    log = manager.get_partition("c", 0)
    batches = read_batches(log)
    survivors = [r for b in batches for r in b.records]
    for offset in range(log.log_end_offset):
        with log.read(offset, 1) as read:  # at least one whole batch, even past max_bytes
            first = split_batches(read.to_bytes())[0]
        base = int.from_bytes(first[:8], "big")
        containing = next(b for b in batches if b.last_offset >= offset)
        assert base == containing.base_offset
    for record in survivors:
        found = log.offset_for_timestamp(record.timestamp)
        assert found is not None
        # Not after the record, and (timestamps grow with offsets here) not so early that a
        # consumer starting there would first see an older record.
        assert found[0] <= record.offset
        later = [r for r in survivors if r.offset >= found[0]]
        assert later[0].timestamp >= record.timestamp
    assert log.offset_for_timestamp(start_ms - 1) is not None
    assert log.offset_for_timestamp(clock.now_ms + 1) is None


def test_reopen_after_cleaning_needs_no_repair(
    tmp_path: Path, open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    last = _fill(log, clock, 60)
    manager.clean()
    expected = read_records(log)
    manager.close()
    clean = open_manager()
    assert clean.recovery_report.events == []
    assert read_records(clean.get_partition("c", 0)) == expected
    clean.files.close_all()
    clean._closed = True  # unclean: every segment is CRC-scanned (gaps are legal)
    unclean = open_manager(verify_all=True)
    assert [e for e in unclean.recovery_report.events if e.action == "truncated"] == []
    log = unclean.get_partition("c", 0)
    assert read_records(log) == expected
    assert {k: r.offset for k, r in latest_by_key(expected).items()} == last


def test_compact_delete_still_applies_time_and_size_retention(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(
        open_manager, **{"cleanup.policy": "compact,delete", "retention.ms": "100000"}
    )
    _fill(log, clock, 60)
    manager.clean()
    clock.advance(100_000 - 30)  # the oldest batches are now past retention.ms
    report = manager.enforce_retention()
    assert report.segments_deleted >= 1
    assert log.log_start_offset == log.segments[0].base_offset > 0
    read_records(log)  # still readable from the new start
    manager.alter_topic_configs("c", {**COMPACT, "cleanup.policy": "compact,delete",
                                      "retention.bytes": "500"})
    manager.enforce_retention()
    assert log.size_bytes - log.segments[-1].size < 500


def test_keyless_records_are_refused_on_compacted_topics(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    with pytest.raises(InvalidBatchError, match="without a key") as raised:
        log.append(make_keyed_batch([(b"k", b"v"), (None, b"v")]), leader_epoch=0)
    assert raised.value.kafka_error_code == 87  # INVALID_RECORD, as Kafka answers
    assert log.log_end_offset == 0
    manager.create_topic("plain", 1)
    manager.get_partition("plain", 0).append(make_keyed_batch([(None, b"v")]), leader_epoch=0)


def test_keyless_records_written_before_the_policy_change_are_dropped(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager = open_manager()
    manager.create_topic("c", 1, {"segment.bytes": "400"})
    log = manager.get_partition("c", 0)
    for i in range(30):
        log.append(make_keyed_batch([(None, b"x%d" % i), (b"k", b"v%d" % i)]), leader_epoch=0)
    manager.alter_topic_configs("c", COMPACT)
    log.roll()
    clock.advance(1000)
    assert len(manager.clean()) == 1
    assert [(r.key, r.value) for r in read_records(log)] == [(b"k", b"v29")]


def test_compressed_batches_of_every_codec_are_compacted(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    for i in range(12):
        records = [(b"a", b"a%d" % i), (b"b", b"b%d" % i), (b"c%d" % i, b"once")]
        log.append(
            make_keyed_batch(records, attributes=COMPRESSION_GZIP, compress=gzip.compress),
            leader_epoch=0,
        )
    for codec in (SNAPPY, LZ4, ZSTD):  # one record superseded below, one kept
        name = CODEC_NAMES[codec].encode()
        log.append(make_keyed_batch([(b"a", name), (name, b"kept")], attributes=codec,
                                    compress=lambda raw, codec=codec: compress(codec, raw)),
                   leader_epoch=0)
    for i in range(12):
        log.append(make_keyed_batch([(b"a", b"plain%d" % i)]), leader_epoch=0)
    log.roll()
    clock.advance(1000)  # the batches' own timestamps run ahead of the clock
    assert len(manager.clean()) == 1
    with log.read(0, 1 << 20) as read:
        data = read.to_bytes()
    kept = [(r.key, r.value) for r in iter_records(data)]
    assert [v for k, v in kept if k == b"a"] == [b"plain11"]  # superseded in every codec
    assert [(k, v) for k, v in kept if k == b"b"] == [(b"b", b"b11")]
    assert sorted(k for k, _ in kept if k.startswith(b"c")) == sorted(b"c%d" % i for i in range(12))
    assert [k for k, v in kept if v == b"kept"] == [b"snappy", b"lz4", b"zstd"]
    # The rewritten batches keep their codec, and another client (aiokafka's) reads them.
    codecs, position = [], 0
    while position < len(data):
        end = position + 12 + int.from_bytes(data[position + 8 : position + 12], "big")
        batch = DefaultRecordBatch(data[position:end])
        assert batch.validate_crc()
        codecs.append(batch.compression_type)
        position = end
    assert {SNAPPY, LZ4, ZSTD} <= set(codecs)


def test_producer_state_survives_cleaning_and_a_restart_without_snapshots(
    open_manager: OpenManager, clock: ManualClock, tmp_path: Path
) -> None:
    manager, log = _compacted(open_manager)
    for sequence in range(40):
        batch = make_keyed_batch(
            [(b"k0", b"v%d" % sequence)],
            producer_id=9,
            producer_epoch=0,
            base_sequence=sequence,
            timestamp_ms=clock.now_ms,
        )
        log.append(batch, leader_epoch=0)
    _fill(log, clock, 40, keys=1)  # supersedes every record of producer 9
    manager.clean()
    batches = read_batches(log)
    producer_batches = [b for b in batches if b.producer_id == 9]
    # Its batches are empty; its last one is kept (to carry the producer's sequence state),
    # like the last batch of every cleaned segment (so the segment still ends where it did).
    assert all(b.records == () for b in producer_batches)
    assert 39 in [b.last_offset for b in producer_batches]
    segment_ends = {s.next_offset - 1 for s in log.segments}
    assert {b.last_offset for b in producer_batches} <= segment_ends | {39}
    manager.close()
    for snapshot in (tmp_path / "data" / "c-0").glob("*.snapshot"):
        snapshot.unlink()
    manager = open_manager()
    log = manager.get_partition("c", 0)
    retry = make_keyed_batch([(b"k0", b"v39")], producer_id=9, producer_epoch=0, base_sequence=39)
    result = log.append(retry, leader_epoch=0)
    assert result.duplicate and result.base_offset == 39
    following = make_keyed_batch([(b"k0", b"v40")], producer_id=9, producer_epoch=0,
                                 base_sequence=40)
    assert not log.append(following, leader_epoch=0).duplicate


def test_a_follower_copies_a_compacted_leader_with_its_gaps(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, leader = _compacted(open_manager)
    manager.create_topic("f", 1, COMPACT)
    follower = manager.get_partition("f", 0)
    _fill(leader, clock, 60)
    manager.clean()
    while follower.log_end_offset < leader.log_end_offset:
        with leader.read(follower.log_end_offset, 300) as read:
            follower.append_replica(read.to_bytes())
    assert read_records(follower) == read_records(leader)
    assert follower.log_end_offset == leader.log_end_offset
    manager.create_topic("strict", 1)  # a non-compacted follower still refuses gaps
    strict = manager.get_partition("strict", 0)
    with leader.read(0, 1 << 20) as read:
        data = read.to_bytes()
    first_gap = split_batches(data)[1]
    with pytest.raises(InvalidBatchError, match="expected 0"):
        strict.append_replica(first_gap)


def test_a_pass_prepared_before_a_truncation_or_deletion_is_discarded(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    _fill(log, clock, 60)
    task = log.prepare_cleaning(clock.now_ms)
    assert task is not None
    task.run()
    log.truncate_to(30)  # e.g. a new leader's log diverged
    assert task.finish() is False
    assert not list(log.directory.glob("*.cleaned"))
    assert log.cleaner_checkpoint.first_dirty == 0
    assert [r.offset for r in read_records(log)] == list(range(30))
    # The checkpoint follows truncations: what is appended after it is dirty again.
    manager.clean()
    first_dirty = log.cleaner_checkpoint.first_dirty
    log.truncate_to(first_dirty - 5)
    assert log.cleaner_checkpoint.first_dirty == first_dirty - 5


def test_an_unfinished_task_is_discarded_and_a_deleted_topic_is_left_alone(
    open_manager: OpenManager, clock: ManualClock
) -> None:
    manager, log = _compacted(open_manager)
    _fill(log, clock, 60)
    fds_before = len(os.listdir("/proc/self/fd"))
    for task in manager.cleaning_tasks():
        task.run()
        break  # abandoned without finish(): the generator discards it
    assert not list(log.directory.glob("*.cleaned"))
    assert len(os.listdir("/proc/self/fd")) <= fds_before
    task = log.prepare_cleaning(clock.now_ms)
    assert task is not None
    task.run()
    manager.delete_topic("c")
    assert task.finish() is False


# -- pure rules --------------------------------------------------------------------------------
def _stats(sizes: list[int], span: int = 10, newest: int = 0) -> list[SegmentStats]:
    return [
        SegmentStats(i * span, (i + 1) * span, size, newest + i) for i, size in enumerate(sizes)
    ]


def test_cleaning_due_follows_the_ratio_lag_and_tombstone_triggers() -> None:
    config = LogConfig(cleanup_policy="compact", min_cleanable_dirty_ratio=0.5,
                       max_compaction_lag_ms=1000)
    segments = _stats([100, 100, 100, 100])
    due = lambda first_dirty, **kw: cleaning_due(  # noqa: E731
        segments, first_dirty, config, 10_000,
        first_dirty_timestamp_ms=kw.get("ts", 9_500), tombstone_expiry_ms=kw.get("expiry"),
    )
    assert due(0) and due(20)  # all dirty, half dirty
    assert not due(30)  # a quarter dirty, young enough
    assert due(30, ts=9_000)  # max.compaction.lag.ms reached
    assert not due(40)  # nothing dirty
    assert due(40, expiry=10_000) and not due(40, expiry=10_001)
    assert not cleaning_due([], 0, config, 0, first_dirty_timestamp_ms=None,
                            tombstone_expiry_ms=0)


def test_cleanable_segments_stop_at_the_first_young_one() -> None:
    segments = _stats([1, 1, 1, 1], newest=100)  # newest timestamps 100, 101, 102, 103
    assert cleanable_count(segments, now_ms=1000, min_lag_ms=0) == 4
    assert cleanable_count(segments, now_ms=1000, min_lag_ms=898) == 3  # newest <= now - lag
    assert cleanable_count(segments, now_ms=1000, min_lag_ms=899) == 2
    assert cleanable_count(segments, now_ms=1000, min_lag_ms=901) == 0


def test_groups_fit_segment_bytes_and_int32_offsets() -> None:
    assert group_for_rewrite(_stats([50, 50, 50, 200, 10, 10]), 100) == [[0, 1], [2], [3], [4, 5]]
    wide = _stats([1, 1, 1], span=2**30)
    assert group_for_rewrite(wide, 100) == [[0, 1], [2]]


def test_record_rules() -> None:
    latest = {b"a": 5}
    assert not record_survives(None, 1, False, latest, False)
    assert not record_survives(b"a", 4, False, latest, False)
    assert record_survives(b"a", 5, False, latest, False)
    assert record_survives(b"b", 1, False, latest, False)  # only in the clean part
    assert record_survives(b"a", 5, True, latest, False)
    assert not record_survives(b"a", 5, True, latest, True)


def test_checkpoint_ranges_and_truncation(tmp_path: Path) -> None:
    checkpoint = CleanerCheckpoint()
    checkpoint.record_pass(100, 1_000, None)
    checkpoint.record_pass(250, 2_000, 7)
    lookup = checkpoint.first_cleaned_ms()
    assert [lookup(o) for o in (0, 99, 100, 249, 250)] == [1_000, 1_000, 2_000, 2_000, None]
    checkpoint.truncate(180)
    assert (checkpoint.first_dirty, checkpoint.cleaned) == (180, [(100, 1_000), (180, 2_000)])
    checkpoint.save(tmp_path)
    assert CleanerCheckpoint.load(tmp_path) == checkpoint
    (tmp_path / "cleaner-checkpoint.json").write_text("{garbage")
    assert CleanerCheckpoint.load(tmp_path) == CleanerCheckpoint()
    for i in range(200):  # bounded: old ranges merge under the later time
        checkpoint.record_pass(300 + i, 3_000 + i, None)
    assert len(checkpoint.cleaned) <= 64
    assert checkpoint.first_cleaned_ms()(0) >= 1_000
