"""Crash safety of compaction: a crash at every step of the swap (fault injection, then the
process's state dropped as a SIGKILL would) and a real writer process SIGKILLed while it
appends and cleans. Recovery must lose no surviving record, duplicate none, and leave no
temporary files."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from headrace.storage import LogManager, PartitionLog
from tests.storage.compaction_crash_writer import CONFIG, TOPIC, key_of, record_for
from tests.storage.conftest import ManualClock, simulate_crash
from tests.storage.test_compaction import COMPACT, _fill
from tests.support.log_reads import ReadRecord, latest_by_key, read_records

ROOT = Path(__file__).resolve().parents[2]


class InjectedCrash(BaseException):
    """The process dies here: a BaseException, so the log's error handling does not run."""


class InjectedIOError(OSError):
    pass


def _prepare(data_dir: Path, clock: ManualClock) -> tuple[LogManager, PartitionLog]:
    """A log whose next pass merges segments cleaned before and cleans new dirty ones."""
    manager = LogManager(data_dir, clock_ms=clock)
    manager.create_topic("c", 1, COMPACT)
    log = manager.get_partition("c", 0)
    _fill(log, clock, 80, keys=6)
    manager.clean()
    _fill(log, clock, 60, keys=4)
    return manager, log


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.suffix in (".cleaned", ".swap"))


def _check_recovered(data_dir: Path, clock: ManualClock, before: list[ReadRecord]) -> None:
    manager = LogManager(data_dir, clock_ms=clock)
    try:
        log = manager.get_partition("c", 0)
        assert not [e for e in manager.recovery_report.events if e.action == "truncated"]
        assert _leftovers(log.directory) == []
        after = read_records(log)  # CRCs valid, offsets strictly increasing
        assert set(after) <= set(before)  # nothing invented, nothing duplicated
        assert latest_by_key(after) == latest_by_key(before)
        assert log.log_end_offset == before[-1].offset + 1
        manager.clean()  # and the log can be cleaned again afterwards
        assert latest_by_key(read_records(log)) == latest_by_key(before)
    finally:
        manager.close()


def test_a_crash_at_any_step_of_the_swap_recovers_a_consistent_log(tmp_path: Path) -> None:
    clock = ManualClock()
    manager, log = _prepare(tmp_path / "dry", clock)
    steps: list[str] = []
    log.cleaner_fault = steps.append
    assert len(manager.clean()) == 1
    manager.close()
    assert steps.count("before-swap") >= 3
    # Every step of the first two swapped groups (both merge several segments; the second
    # crashes with the first one already swapped), and a crash after run() before finish().
    third_group = [i for i, step in enumerate(steps) if step == "before-swap"][2]
    assert steps[:third_group].count("deleted-source") >= 2
    for crash_at in [*range(third_group), len(steps)]:
        clock = ManualClock()
        data_dir = tmp_path / f"crash-{crash_at}"
        manager, log = _prepare(data_dir, clock)
        before = read_records(log)
        calls = 0

        def fault(step: str, crash_at: int = crash_at) -> None:
            nonlocal calls
            calls += 1
            if calls > crash_at:
                raise InjectedCrash(step)

        log.cleaner_fault = fault
        task = log.prepare_cleaning(clock.now_ms)
        assert task is not None
        task.run()
        if crash_at < len(steps):
            with pytest.raises(InjectedCrash):
                task.finish()
        else:
            assert list(log.directory.glob("*.cleaned"))
        simulate_crash(manager)
        _check_recovered(data_dir, clock, before)


def _spawn(data_dir: Path, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "broker"), str(ROOT)])
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage.compaction_crash_writer", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def test_sigkill_while_appending_and_cleaning_loses_no_latest_value(tmp_path: Path) -> None:
    rng = random.Random(os.getpid())
    data_dir = tmp_path / "data"
    acknowledged: dict[bytes, int] = {}  # key -> offset of its newest acknowledged record
    rounds = cleanings = 0
    deadline = time.monotonic() + 4.0
    while rounds < 30 and (time.monotonic() < deadline or rounds < 6):
        rounds += 1
        with open(tmp_path / "writer.log", "ab") as stderr:
            child = _spawn(data_dir, stderr)
        assert child.stdout is not None
        target = rng.choice([1, 20, 80, 200])
        try:
            header = child.stdout.readline().split()
            assert header[:1] == [b"ready"], (tmp_path / "writer.log").read_text()
            for _ in range(target):
                line = child.stdout.readline().split()
                assert line, "writer exited early"
                if line[0] == b"cleaned":
                    cleanings += 1
                    continue
                offset = int(line[0])
                acknowledged[key_of(offset)] = offset
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        manager = LogManager(data_dir, default_config=CONFIG)
        log = manager.get_partition(TOPIC, 0)
        assert _leftovers(log.directory) == []
        records = read_records(log)
        for record in records:  # only what the writer wrote at that offset
            assert (record.key, record.value) == record_for(record.offset)
        latest = latest_by_key(records)
        for key, offset in acknowledged.items():
            assert latest[key].offset >= offset, (key, offset, latest[key])
            acknowledged[key] = latest[key].offset  # survivors count as durable from now on
        manager.close()
    assert cleanings > 0, f"{rounds} rounds without a single cleaning"


def test_an_error_in_the_middle_of_a_swap_reloads_the_partition_from_disk(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    manager, log = _prepare(tmp_path / "dry", clock)
    steps: list[str] = []
    log.cleaner_fault = steps.append
    manager.clean()
    manager.close()
    third_group = [i for i, step in enumerate(steps) if step == "before-swap"][2]
    for fail_at in range(third_group):
        clock = ManualClock()
        data_dir = tmp_path / f"error-{fail_at}"
        manager, log = _prepare(data_dir, clock)
        before = read_records(log)
        calls = 0

        def fault(step: str, fail_at: int = fail_at) -> None:
            nonlocal calls
            calls += 1
            if calls > fail_at:
                raise InjectedIOError(step)

        log.cleaner_fault = fault
        task = log.prepare_cleaning(clock.now_ms)
        assert task is not None
        task.run()
        with pytest.raises(InjectedIOError):
            task.finish()
        log.cleaner_fault = None
        # The same, still open log is consistent: reads, appends and cleaning go on.
        assert _leftovers(log.directory) == []
        after = read_records(log)
        assert set(after) <= set(before)
        assert latest_by_key(after) == latest_by_key(before)
        end = log.log_end_offset
        assert end == before[-1].offset + 1
        _fill(log, clock, 5)
        manager.clean()
        manager.close()
        _check_recovered_end(data_dir, clock, end + 5)


def _check_recovered_end(data_dir: Path, clock: ManualClock, end: int) -> None:
    manager = LogManager(data_dir, clock_ms=clock)
    try:
        log = manager.get_partition("c", 0)
        assert log.log_end_offset == end
        assert not [e for e in manager.recovery_report.events if e.action == "truncated"]
        read_records(log)
    finally:
        manager.close()
