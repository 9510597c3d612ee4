"""Child processes of dev clusters and tests: pausing one with SIGSTOP and knowing it has
stopped, ending it with SIGTERM then SIGKILL, and not outliving the parent.

Children run in sessions of their own (Ctrl-C reaches only the parent, which stops them in
order), so when the parent itself is killed nothing would stop them: on Linux they ask the
kernel for a SIGTERM when it dies (``PR_SET_PDEATHSIG``).

Sending SIGSTOP only starts a stop: the kernel wakes one thread, which then stops the others,
and until they have (on a busy machine, milliseconds or more) the process still runs and
answers requests sent after the signal. The kernel reports the stop to the parent
(``waitid(WSTOPPED)``) once every thread has stopped; ``WNOWAIT`` leaves the report, and an
exit, for ``Popen`` to collect.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def ended_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent SIGTERM when this process dies (Linux; None
    elsewhere, and off the main thread: the kernel watches the *thread* that forks, and a
    worker thread ending would take the child with it)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def ask_for_sigterm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return ask_for_sigterm


def pause_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGSTOP ``process`` and return once all its threads have stopped.

    Raises TimeoutError if it has not stopped within ``timeout`` seconds and ChildProcessError
    if it exited instead.
    """
    exited = ChildProcessError(f"process {process.pid} exited instead of stopping")
    process.send_signal(signal.SIGSTOP)  # (Popen collects an exit first, and then sends none)
    deadline = time.monotonic() + timeout
    flags = os.WSTOPPED | os.WEXITED | os.WNOWAIT | os.WNOHANG
    try:
        while (info := os.waitid(os.P_PID, process.pid, flags)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"process {process.pid} did not stop within {timeout} s")
            time.sleep(0.001)
    except ChildProcessError:  # already collected
        raise exited from None
    if info.si_code != os.CLD_STOPPED:
        raise exited


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM ``process`` (SIGCONT first, in case it is paused), SIGKILL it if it has not
    exited within ``timeout`` seconds; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return int(process.returncode)
