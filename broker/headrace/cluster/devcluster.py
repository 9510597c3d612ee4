"""A local cluster of processes: one etcd and N ``headrace broker`` children on loopback.

Used by ``headrace dev --brokers N`` and by the fault-injection tests, which need to kill,
pause, restart and wipe individual brokers. Brokers listen on ephemeral ports unless told
otherwise and report them through ``--ready-file``; a preferred port (``headrace dev``'s 9092,
9093, … and 8080, 8081, …) that is already taken is replaced by an ephemeral one, so a dev
cluster never collides with a broker that is already running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from headrace.cluster.etcd_launcher import EtcdProcess
from headrace.cluster.processes import ended_with_parent, pause_process, stop_process

STARTUP_TIMEOUT = 60.0


def port_if_free(port: int, host: str = "127.0.0.1") -> int:
    """``port`` if it can be bound on ``host`` now, else 0 (an ephemeral port); 0 stays 0.

    Bound with ``SO_REUSEADDR`` as the broker's listeners are, so a port only lingering in
    TIME_WAIT counts as free and one that something listens on does not."""
    if port == 0:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return 0
    return port


def zone_name(index: int) -> str:
    """Zones a, b, c, … for brokers 1, 2, 3, … (wrapping after z)."""
    return string.ascii_lowercase[index % 26]


class BrokerExitedError(RuntimeError):
    """A broker process ended while it was expected to start."""


class StartCancelledError(RuntimeError):
    """Start-up was interrupted (Ctrl-C) before every broker was ready."""


class BrokerProcess:
    """One ``headrace broker`` child process that can be crashed, paused and restarted."""

    def __init__(
        self,
        broker_id: int,
        data_dir: Path,
        metadata_url: str,
        *,
        zone: str | None = None,
        kafka_port: int = 0,
        http_port: int = 0,
        extra_args: tuple[str, ...] = (),
        host: str = "127.0.0.1",
        command_prefix: tuple[str, ...] = (),
    ) -> None:
        self.broker_id = broker_id
        self.host = host
        #: e.g. ``("ip", "netns", "exec", NAME)`` to run the broker in a network namespace.
        self.command_prefix = command_prefix
        self.data_dir = data_dir
        self.metadata_url = metadata_url
        self.zone = zone
        self.requested_kafka_port = kafka_port
        self.requested_http_port = http_port
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.kafka_port = 0
        self.http_port = 0
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.ready_path = data_dir.parent / f"{data_dir.name}.ready.json"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        # Keep the same ports across restarts so clients' bootstrap lists stay valid.
        kafka_port = self.kafka_port or self.requested_kafka_port
        http_port = self.http_port or self.requested_http_port
        command = [
            *self.command_prefix,
            sys.executable, "-m", "headrace", "broker",
            "--broker-id", str(self.broker_id),
            "--data-dir", str(self.data_dir),
            "--kafka-listen", f"{self.host}:{kafka_port}",
            "--http-listen", f"{self.host}:{http_port}",
            "--ready-file", str(self.ready_path),
            "--metadata", self.metadata_url,
        ]
        if self.zone:
            command += ["--zone", self.zone]
        return command + list(self.extra_args)

    def start(self, *, wait: bool = True) -> BrokerProcess:
        if self.running:
            return self
        self.ready_path.unlink(missing_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, preexec_fn=ended_with_parent(),
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT,
                   cancelled: Callable[[], bool] = lambda: False) -> None:
        """Block until the broker has written its ready file; ``cancelled`` ends the wait early
        (``headrace dev`` on Ctrl-C during start-up) with :class:`StartCancelledError`."""
        deadline = time.monotonic() + timeout
        while not self.poll_ready():
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise BrokerExitedError(
                    f"broker {self.broker_id} exited ({code}):\n{self.log_tail()}")
            if cancelled():
                raise StartCancelledError(f"broker {self.broker_id}: start cancelled")
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker {self.broker_id} not ready:\n{self.log_tail()}")
            time.sleep(0.02)

    def poll_ready(self) -> bool:
        """Whether the broker has reported ready (and, if so, take its ports); never blocks."""
        if not self.ready_path.exists():
            return False
        ready = json.loads(self.ready_path.read_text())
        self.kafka_port = int(ready["kafka_port"])
        self.http_port = int(ready["http_port"])
        return True

    def exit_code(self) -> int | None:
        """The exit code if the broker process has ended (negative: killed by that signal)."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except FileNotFoundError:
            return ""

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused process must die too
            self.process.kill()
            self.process.wait(10)

    def pause(self, timeout: float = 10.0) -> None:
        """SIGSTOP the broker and return once it has stopped (it runs on until then)."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"broker {self.broker_id} is not running")
        pause_process(self.process, timeout)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM: controlled shutdown, then exit."""
        if self.process is None:
            return None
        return stop_process(self.process, timeout)

    def wipe(self) -> None:
        """Delete the data directory (a replaced disk); the broker must be down."""
        assert not self.running, "stop the broker before wiping its disk"
        shutil.rmtree(self.data_dir, ignore_errors=True)


class DevCluster:
    """etcd plus ``brokers`` brokers in zones a, b, c, …, all under ``root``."""

    def __init__(
        self,
        root: Path,
        brokers: int,
        *,
        kafka_base_port: int = 0,
        http_base_port: int = 0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        """Broker N prefers ports ``kafka_base_port + N - 1`` and ``http_base_port + N - 1``
        (0: ephemeral); a preferred port that is busy is replaced by an ephemeral one."""
        self.root = root
        self.etcd = EtcdProcess(root / "etcd")
        # Small clusters: replicate internal and auto-created topics as widely as possible.
        factor = str(min(3, brokers))
        defaults: tuple[str, ...] = ()
        if "--offsets-topic-replication-factor" not in extra_args:
            defaults += ("--offsets-topic-replication-factor", factor)
        if "--default-replication-factor" not in extra_args:
            defaults += ("--default-replication-factor", factor)
        extra_args = defaults + tuple(extra_args)
        self.brokers = [
            BrokerProcess(
                broker_id=index + 1,
                data_dir=root / f"broker-{index + 1}",
                metadata_url=self.etcd.metadata_url,
                zone=zone_name(index),
                kafka_port=port_if_free(kafka_base_port + index if kafka_base_port else 0),
                http_port=port_if_free(http_base_port + index if http_base_port else 0),
                extra_args=extra_args,
            )
            for index in range(brokers)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.kafka_port)

    def broker(self, broker_id: int) -> BrokerProcess:
        return self.brokers[broker_id - 1]

    def start(self, cancelled: Callable[[], bool] = lambda: False) -> DevCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        self.etcd.start()
        for broker in self.brokers:
            broker.start(wait=False)
        for broker in self.brokers:
            broker.wait_ready(cancelled=cancelled)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every broker at once (each sees the others leaving, so none waits to hand
        leadership over), wait for them, then stop etcd."""
        for broker in self.brokers:
            broker.signal(signal.SIGCONT)
            broker.signal(signal.SIGTERM)
        for broker in self.brokers:
            broker.stop(timeout)
        self.etcd.stop()

    def kill(self) -> None:
        for broker in self.brokers:
            broker.kill()
        self.etcd.kill()
