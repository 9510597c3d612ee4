"""Recovery from damaged files: torn tails, flipped bytes, lost or garbled indexes."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import google_crc32c
import pytest

from headrace.storage import LogConfig, LogManager, PartitionLog
from tests.storage.conftest import ManualClock, simulate_crash
from tests.support.batches import base_offset_of, batch_body, make_batch, split_batches

CONFIG = LogConfig(segment_bytes=1500, index_interval_bytes=100)


def _build(tmp_path: Path, batches: int = 46) -> tuple[LogManager, list[bytes]]:
    manager = LogManager(tmp_path, default_config=CONFIG)
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    sent = []
    for i in range(batches):
        batch = make_batch([b"rec-%03d-%d" % (i, j) for j in range(3)])
        log.append(batch, leader_epoch=0)
        sent.append(batch)
    return manager, sent


def _segments(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "t-0").glob("*.log"))


def _check_served(log: PartitionLog, sent: list[bytes]) -> list[bytes]:
    """Everything readable is valid, dense, and a prefix of what was sent."""
    with log.read(log.log_start_offset, 1 << 30) as read:
        got = split_batches(read.to_bytes())
    for i, batch in enumerate(got):
        assert struct.unpack_from(">I", batch, 17)[0] == google_crc32c.value(batch[21:])
        assert base_offset_of(batch) == 3 * i
        assert batch_body(batch) == batch_body(sent[i])
    assert log.log_end_offset == 3 * len(got)
    return got


def _reopen(tmp_path: Path, **kwargs: object) -> LogManager:
    return LogManager(tmp_path, default_config=CONFIG, **kwargs)  # type: ignore[arg-type]


def _flip(path: Path, position: int) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ 0x10]))


def _batch_start(path: Path, index: int) -> int:
    data = path.read_bytes()
    position = 0
    for _ in range(index):
        position += 12 + struct.unpack_from(">i", data, position + 8)[0]
    return position


@pytest.mark.parametrize("where", ["header", "records", "crc"])
def test_flipped_byte_in_tail_segment(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    manager, sent = _build(tmp_path)
    simulate_crash(manager)
    tail = _segments(tmp_path)[-1]
    start = _batch_start(tail, 2)
    flip = {"header": start + 30, "records": start + 70, "crc": start + 18}[where]
    _flip(tail, flip)
    size_before = tail.stat().st_size
    with caplog.at_level(logging.WARNING, logger="headrace.storage"):
        reopened = _reopen(tmp_path)
    log = reopened.get_partition("t", 0)
    got = _check_served(log, sent)
    tail_base = int(tail.name.split(".")[0])
    assert log.log_end_offset == tail_base + 6  # the two batches before the damage survive
    assert len(got) == tail_base // 3 + 2
    (event,) = [e for e in reopened.recovery_report.events if e.action == "truncated"]
    assert event.bytes_dropped == size_before - start
    assert "truncated" in caplog.text
    assert tail.stat().st_size == start
    assert log.append(make_batch([b"next"]), leader_epoch=1).base_offset == tail_base + 6
    reopened.close()


def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    manager, sent = _build(tmp_path)
    simulate_crash(manager)
    tail = _segments(tmp_path)[-1]
    start = _batch_start(tail, 3)
    os.truncate(tail, start + 25)  # half a header of the fourth batch
    reopened = _reopen(tmp_path)
    log = reopened.get_partition("t", 0)
    _check_served(log, sent)
    assert log.log_end_offset == int(tail.name.split(".")[0]) + 9
    assert reopened.recovery_report.bytes_dropped == 25
    reopened.close()


def test_zeroed_tail_from_preallocation_is_truncated(tmp_path: Path) -> None:
    manager, sent = _build(tmp_path)
    simulate_crash(manager)
    tail = _segments(tmp_path)[-1]
    with open(tail, "ab") as f:
        f.write(b"\x00" * 4096)
    reopened = _reopen(tmp_path)
    assert len(_check_served(reopened.get_partition("t", 0), sent)) == 46
    assert reopened.recovery_report.bytes_dropped == 4096
    reopened.close()


def test_flipped_byte_in_sealed_segment_drops_it_and_later(tmp_path: Path) -> None:
    manager, sent = _build(tmp_path)
    simulate_crash(manager)  # recovery point is still 0: every segment gets verified
    segments = _segments(tmp_path)
    assert len(segments) >= 4
    victim = segments[1]
    start = _batch_start(victim, 1)
    _flip(victim, start + 65)
    reopened = _reopen(tmp_path)
    log = reopened.get_partition("t", 0)
    got = _check_served(log, sent)
    assert log.log_end_offset == int(victim.name.split(".")[0]) + 3
    assert len(got) == log.log_end_offset // 3
    assert _segments(tmp_path) == segments[:2]
    (event,) = [e for e in reopened.recovery_report.events if e.action == "truncated"]
    assert "deleted" in event.detail and event.bytes_dropped > 0
    reopened.close()


def test_verify_all_finds_damage_even_after_clean_shutdown(tmp_path: Path) -> None:
    manager, sent = _build(tmp_path)
    manager.close()
    victim = _segments(tmp_path)[0]
    _flip(victim, _batch_start(victim, 4) + 63)
    reopened = _reopen(tmp_path, verify_all=True)
    log = reopened.get_partition("t", 0)
    assert log.log_end_offset == 12
    _check_served(log, sent)
    reopened.close()


@pytest.mark.parametrize("clean", [True, False])
def test_deleted_indexes_are_rebuilt(tmp_path: Path, clean: bool) -> None:
    manager, sent = _build(tmp_path)
    if clean:
        manager.close()
    else:
        manager.flush()  # recovery point at the end: sealed segments are trusted
        simulate_crash(manager)
    for path in (tmp_path / "t-0").glob("*index"):
        path.unlink()
    reopened = _reopen(tmp_path)
    log = reopened.get_partition("t", 0)
    assert len(_check_served(log, sent)) == 46
    rebuilt = [e for e in reopened.recovery_report.events if e.action == "rebuilt-index"]
    assert len(rebuilt) >= len(_segments(tmp_path)) - (0 if clean else 1)
    for offset in range(0, 138, 7):
        with log.read(offset, 1) as read:
            assert base_offset_of(read.to_bytes()) == offset - offset % 3
    assert log.offset_for_timestamp(1_700_000_000_001) == (0, 1_700_000_000_002)
    reopened.close()
    assert all(p.with_suffix(".index").stat().st_size > 0 for p in _segments(tmp_path)[:-1])


def test_garbled_indexes_never_misdirect_reads(tmp_path: Path) -> None:
    manager, sent = _build(tmp_path)
    manager.close()
    for path in sorted((tmp_path / "t-0").glob("*.index")):
        size = path.stat().st_size
        # Plausible-looking but wrong entries: small increasing offsets and positions.
        path.write_bytes(b"".join(struct.pack(">ii", i + 1, 7 * i + 5) for i in range(size // 8)))
    reopened = _reopen(tmp_path)
    log = reopened.get_partition("t", 0)
    for offset in range(138):
        with log.read(offset, 1) as read:
            batch = read.to_bytes()
            assert base_offset_of(batch) == offset - offset % 3
            assert batch_body(batch) == batch_body(sent[offset // 3])
    assert any(e.action == "rebuilt-index" for e in reopened.recovery_report.events)
    reopened.close()


def test_damaged_producer_snapshot_is_rebuilt_from_log(tmp_path: Path) -> None:
    clock = ManualClock()  # in the batches' era, so the rebuilt producer is not expired
    manager = LogManager(tmp_path, default_config=CONFIG, clock_ms=clock)
    manager.create_topic("t", 1)
    log = manager.get_partition("t", 0)
    for seq in range(0, 30, 3):
        batch = make_batch([b"a", b"b", b"c"], producer_id=7, producer_epoch=0, base_sequence=seq)
        log.append(batch, leader_epoch=0)
    manager.close()
    for snapshot in (tmp_path / "t-0").glob("*.snapshot"):
        snapshot.write_bytes(b"garbage")
    reopened = _reopen(tmp_path, clock_ms=clock)
    log = reopened.get_partition("t", 0)
    retry = make_batch([b"a", b"b", b"c"], producer_id=7, producer_epoch=0, base_sequence=27)
    assert log.append(retry, leader_epoch=0).duplicate
    reopened.close()


def test_damaged_checkpoints_fall_back_safely(tmp_path: Path) -> None:
    manager, _ = _build(tmp_path)
    log = manager.get_partition("t", 0)
    log.append(make_batch([b"epoch-5"]), leader_epoch=5)
    manager.close()
    (tmp_path / "t-0" / "leader-epoch-checkpoint").write_text("0\n7\nnonsense\n")
    (tmp_path / "t-0" / "partition-state.json").write_text("{not json")
    reopened = _reopen(tmp_path)
    log = reopened.get_partition("t", 0)
    assert log.log_end_offset == 139
    assert log.latest_leader_epoch == -1  # unreadable: cleared rather than guessed
    details = " ".join(e.detail for e in reopened.recovery_report.events)
    assert "leader-epoch-checkpoint" in details and "partition-state.json" in details
    with log.read(0, 1 << 30) as read:
        assert len(split_batches(read.to_bytes())) == 47
    log.append(make_batch([b"next"]), leader_epoch=6)
    assert log.end_offset_for_epoch(6) == (6, 140)
    reopened.close()


def test_bit_rot_after_clean_shutdown_ends_reads_instead_of_looping(tmp_path: Path) -> None:
    manager, sent = _build(tmp_path)
    manager.close()
    victim = _segments(tmp_path)[0]
    damaged = _batch_start(victim, 5)
    with open(victim, "r+b") as f:  # batchLength of the sixth batch becomes negative
        f.seek(damaged + 8)
        f.write(struct.pack(">i", -100))
    reopened = _reopen(tmp_path)  # clean start: the data is trusted, not scanned
    log = reopened.get_partition("t", 0)
    # Trusted data is served as stored (like Kafka, no CRC on reads), but header walks stop at
    # the damage instead of looping on a negative length.
    with log.read(0, 1 << 30) as read:
        data = read.to_bytes()
    assert batch_body(split_batches(data[:damaged])[-1]) == batch_body(sent[4])
    with log.read(15, 1) as read:  # a consumer resuming at the damage skips to the next segment
        assert base_offset_of(read.to_bytes()) == int(_segments(tmp_path)[1].name[:20])
    with log.read(16, 1 << 20) as read:
        assert read.size > 0
    reopened.close()
