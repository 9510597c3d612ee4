"""Fixtures that run a real ``headrace broker`` subprocess on ephemeral ports.

``BrokerProcess`` starts ``python -m headrace broker`` with ``--kafka-listen 127.0.0.1:0``,
waits for its ``--ready-file`` and exposes ``bootstrap`` (``"127.0.0.1:PORT"``), ``data_dir``,
``http_port``, ``stop()`` (SIGTERM, graceful), ``kill()`` (SIGKILL) and ``restart()`` (same data
dir, new ports). Fixtures:

- ``broker`` (module scope): one shared broker for tests that only need some broker;
- ``fresh_broker`` (function scope): a broker of the test's own, safe to stop/kill/restart;
- ``start_broker`` (function scope): a factory ``start_broker(*extra_flags, data_dir=None)``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0


class BrokerProcess:
    """A ``headrace broker`` subprocess bound to ephemeral ports on 127.0.0.1."""

    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.kafka_port = 0
        self.http_port = 0
        self.log_path = data_dir.parent / f"{data_dir.name}.broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    def start(self) -> BrokerProcess:
        assert self.process is None or self.process.poll() is not None, "already running"
        ready_file = self.data_dir.parent / f"{self.data_dir.name}.ready.json"
        ready_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT / "broker"), str(ROOT / "operator"), env.get("PYTHONPATH", "")]
        )
        command = [
            sys.executable, "-m", "headrace", "broker",
            "--data-dir", str(self.data_dir),
            "--kafka-listen", "127.0.0.1:0",
            "--http-listen", "127.0.0.1:0",
            "--ready-file", str(ready_file),
            "--offsets-topic-partitions", "5",
            # Tests expect a lone consumer's first assignment at once; extra_args may override.
            "--group-initial-rebalance-delay-ms", "0",
            *self.extra_args,
        ]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        log_file.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not ready_file.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"broker not ready after {STARTUP_TIMEOUT}s:\n{self.log()}")
            time.sleep(0.02)
        ready = json.loads(ready_file.read_text())
        self.kafka_port = int(ready["kafka_port"])
        self.http_port = int(ready["http_port"])
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: a graceful shutdown (returns the exit code)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"broker ignored SIGTERM for {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL: a crash, no flush, no clean-shutdown marker."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, graceful: bool = True) -> BrokerProcess:
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("shared-broker") / "data").start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    started: list[BrokerProcess] = []

    def start(*extra_args: str, data_dir: Path | None = None) -> BrokerProcess:
        directory = data_dir or tmp_path / f"broker-{len(started)}"
        process = BrokerProcess(directory, tuple(extra_args)).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()


@pytest.fixture
def fresh_broker(start_broker: Callable[..., BrokerProcess]) -> BrokerProcess:
    return start_broker()
