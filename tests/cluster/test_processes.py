"""SIGSTOP that returns only once the child has stopped; children that end with their parent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.cluster.processes import pause_process
from tests.support.waiting import eventually

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


# A parent that starts a long child the way dev clusters do, says its pid, and waits forever.
PARENT = (
    "import subprocess, sys, time\n"
    "from headrace.cluster.processes import ended_with_parent\n"
    "child = subprocess.Popen(['sleep', '120'], start_new_session=True,\n"
    "                         preexec_fn=ended_with_parent())\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_in_its_own_session_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    try:
        os.kill(child_pid, 0)  # running
        parent.kill()
        parent.wait(10)

        def child_gone() -> bool:
            try:
                os.kill(child_pid, 0)
            except ProcessLookupError:
                return True
            return False  # (a zombie until init reaps it counts as running: bounded wait)

        eventually(child_gone, timeout=10, message="the orphaned child to end")
    finally:
        parent.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child_pid, signal.SIGKILL)
