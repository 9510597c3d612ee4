"""SIGSTOP that returns only once the child has stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.cluster.processes import pause_process

# A child with several threads, all busy: each must be stopped before pause_process returns.
BUSY_THREADS = "import threading\n" \
    "def spin():\n    while True: pass\n" \
    "for _ in range(3): threading.Thread(target=spin, daemon=True).start()\n" \
    "spin()\n"


def _thread_states(pid: int) -> set[str]:
    states = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        states.add((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
    return states


def test_returns_with_every_thread_stopped() -> None:
    process = subprocess.Popen([sys.executable, "-c", BUSY_THREADS])
    try:
        pause_process(process, timeout=10)
        assert _thread_states(process.pid) == {"T"}
        process.send_signal(signal.SIGCONT)
        assert process.poll() is None  # the stop report was left for Popen, no exit taken
    finally:
        process.kill()
        process.wait(10)


def test_a_child_that_exited_is_an_error() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet collected
    with pytest.raises(ChildProcessError, match="exited instead of stopping"):
        pause_process(process, timeout=10)
    assert process.wait(10) == 0
