"""Crash test: a real child process is SIGKILLed while appending; acknowledged data survives."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import google_crc32c

from headrace.storage import LogManager
from tests.storage.conftest import ManualClock, simulate_crash
from tests.storage.crash_writer import CONFIG, RECORDS_PER_BATCH, TOPIC, batch_for
from tests.support.batches import base_offset_of, split_batches

ROOT = Path(__file__).resolve().parents[2]
TIME_BUDGET_S = 5.0
MIN_ROUNDS = 8  # even on a heavily loaded machine
MAX_ROUNDS = 40


def _spawn(data_dir: Path, stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "broker"), str(ROOT)])
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_writer", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,  # a file, so recovery warnings can never fill a pipe and block the child
    )


def _verify(data_dir: Path, acknowledged: int) -> int:
    """Reopen (recovering), check every batch, return the log end offset."""
    # The writer's clock (the batches' era), or the rebuilt producer would count as expired.
    manager = LogManager(data_dir, default_config=CONFIG, clock_ms=ManualClock())
    if TOPIC not in manager.topics():  # killed before the writer created its topic
        assert acknowledged == 0
        manager.close()
        return 0
    log = manager.get_partition(TOPIC, 0)
    end = log.log_end_offset
    assert end >= acknowledged, f"acknowledged up to {acknowledged} but log ends at {end}"
    assert end % RECORDS_PER_BATCH == 0
    with log.read(0, 1 << 30) as read:
        batches = split_batches(read.to_bytes())
    assert len(batches) * RECORDS_PER_BATCH == end
    for i, batch in enumerate(batches):
        offset = i * RECORDS_PER_BATCH
        assert base_offset_of(batch) == offset
        assert struct.unpack_from(">I", batch, 17)[0] == google_crc32c.value(batch[21:])
        sent = batch_for(offset)
        # Byte for byte what the writer sent, with the leader-assigned offset and epoch.
        assert batch == struct.pack(">qiib", offset, len(sent) - 12, 1, 2) + sent[17:], offset
    assert log.size_bytes == sum(len(b) for b in batches)  # no garbage left at the tail
    if end:  # the idempotent-producer state agrees with the log: the last batch is a retry
        assert log.append(batch_for(end - RECORDS_PER_BATCH), leader_epoch=1).duplicate
    if random.random() < 0.5:
        manager.close()
    else:
        simulate_crash(manager)  # the writer then starts uncleanly too
    return end


def test_sigkill_during_appends_loses_no_acknowledged_batch(tmp_path: Path) -> None:
    rng = random.Random(os.getpid())
    data_dir = tmp_path / "data"
    acknowledged = 0  # offset after the last acknowledged batch
    rounds = kills_mid_stream = 0
    deadline = time.monotonic() + TIME_BUDGET_S
    while rounds < MAX_ROUNDS and (time.monotonic() < deadline or rounds < MIN_ROUNDS):
        rounds += 1
        with open(tmp_path / "writer.log", "ab") as stderr:
            child = _spawn(data_dir, stderr)
        assert child.stdout is not None
        target = rng.choice([0, 1, 5, 20, 60, 150])
        acks = 0
        try:
            if target:
                header = child.stdout.readline().split()
                assert header[:1] == [b"ready"], (tmp_path / "writer.log").read_text()
                assert int(header[1]) >= acknowledged
                while acks < target:
                    line = child.stdout.readline()
                    assert line, "writer exited early"
                    acknowledged = max(acknowledged, int(line) + RECORDS_PER_BATCH)
                    acks += 1
        finally:
            child.send_signal(signal.SIGKILL)  # the writer is mid-append or mid-recovery
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        kills_mid_stream += bool(target)
        end = _verify(data_dir, acknowledged)
        acknowledged = max(acknowledged, end)  # survivors count as durable from now on
    assert kills_mid_stream >= 3, f"{rounds} rounds, {kills_mid_stream} killed mid-stream"
    print(f"{rounds} rounds, {kills_mid_stream} kills mid-stream, {acknowledged} offsets")
    assert acknowledged > 0
