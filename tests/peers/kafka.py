"""Apache Kafka's own Java artefacts as peers: its command-line tools and its KRaft broker.

``tests/tools/install.d/kafka.sh`` resolves the jars pinned by ``tests/peers/maven/pom.xml`` into
``${HEADRACE_PEER_CACHE:-$HOME/.cache/headrace-peers}/kafka-<version>/lib``. This module finds
them and runs them; nothing here downloads anything.

- :func:`kafka_missing_reason` says why the peer cannot run here (no java, not installed, stale
  install), ``None`` when it can; :func:`kafka_classpath` is the classpath or ``None``.
- :func:`run_kafka_tool` runs one tool's main class (``TopicCommand``, ``ConsoleProducer``, ...)
  in a small JVM and returns the finished process (text output); :func:`kafka_tool_command` is
  the same command line for a tool run in the background.
- :func:`start_kraft_broker` formats a storage directory and starts ``kafka.Kafka`` as a one-node
  KRaft cluster (combined broker and controller) on free 127.0.0.1 ports, polls until the broker
  answers a Metadata request listing itself (unfenced), and returns a :class:`KafkaPeer` to stop.

Usable from pytest fixtures (skip with ``kafka_missing_reason()``) and from ``bench/`` scripts.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.peers.cache import peer_cache

PEERS = Path(__file__).resolve().parent
POM = PEERS / "maven" / "pom.xml"
LOCK = PEERS / "maven" / "kafka.sha256"
INSTALLER = PEERS.parent / "tools" / "install.d" / "kafka.sh"
TOOLS_LOG4J = PEERS / "kafka-tools-log4j2.properties"
BROKER_LOG4J = PEERS / "kafka-broker-log4j2.properties"

# Main classes of the tools behind Kafka's bin/*.sh scripts (Kafka 4.x).
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
STORAGE_TOOL = "kafka.tools.StorageTool"
KAFKA_MAIN = "kafka.Kafka"

# Short-lived tool JVMs: a small heap, the serial collector and the C1 compiler only start fastest.
TOOL_JVM_OPTIONS = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
)
# The broker: kafka-run-class.sh's collector settings, a heap sized for a 2-core/24 GiB machine
# shared with Headrace and the load generator.
BROKER_JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
)
BROKER_HEAP = "1g"


class KafkaUnavailable(RuntimeError):
    """The Apache Kafka peer cannot run here; the message says why."""


def kafka_version() -> str:
    """The pinned Apache Kafka version (``kafka.version`` of the pom)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise KafkaUnavailable(f"{POM} names no kafka.version")
    return match.group(1).strip()


def kafka_home() -> Path:
    """``<cache>/kafka-<version>``: ``lib/`` holds the jars, ``.installed`` the install's stamp."""
    return peer_cache() / f"kafka-{kafka_version()}"


def java_executable() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    return shutil.which("java")


@functools.cache
def _java_major(java: str) -> int | None:
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)', done.stderr)
    return int(match.group(1)) if match else None


def _install_stamp() -> str:
    """What the installer writes to ``.installed``: sha256 of the pom followed by the lockfile."""
    return hashlib.sha256(POM.read_bytes() + LOCK.read_bytes()).hexdigest()


def kafka_missing_reason() -> str | None:
    """Why Apache Kafka's jars cannot run here, or ``None`` when they can."""
    java = java_executable()
    if java is None:
        return "Apache Kafka peer: no java on PATH (needs Java 17+)"
    major = _java_major(java)
    if major is None or major < 17:
        return f"Apache Kafka peer: {java} is Java {major or 'unknown'}, Kafka 4.x needs 17+"
    version = kafka_version()
    marker = kafka_home() / ".installed"
    if marker.exists() and marker.read_text().strip() == _install_stamp():
        return None
    unavailable = peer_cache() / f"kafka-{version}.unavailable"
    if unavailable.exists():  # the installer's last attempt failed, this says why
        return f"Apache Kafka {version} peer: {unavailable.read_text().strip()}"
    if not marker.exists():
        return f"Apache Kafka {version} peer not installed (run bash {INSTALLER})"
    return f"Apache Kafka {version} peer is stale: pom or lockfile changed (run bash {INSTALLER})"


def kafka_classpath() -> str | None:
    """The peer's runtime classpath (``lib/*``), ``None`` when :func:`kafka_missing_reason`."""
    if kafka_missing_reason() is not None:
        return None
    return str(kafka_home() / "lib" / "*")


def _java_command(main_class: str, jvm_options: tuple[str, ...], log4j: Path) -> list[str]:
    java = java_executable()
    classpath = kafka_classpath()
    if java is None or classpath is None:
        raise KafkaUnavailable(kafka_missing_reason() or "Apache Kafka peer unavailable")
    return [
        java, *jvm_options, f"-Dlog4j2.configurationFile={log4j}",
        "-cp", classpath, main_class,
    ]


def kafka_tool_command(main_class: str, *args: str) -> list[str]:
    """The command line of one of Kafka's tools, for a caller that runs it in the background."""
    return [*_java_command(main_class, TOOL_JVM_OPTIONS, TOOLS_LOG4J), *args]


def run_kafka_tool(
    main_class: str,
    *args: str,
    timeout: float = 60.0,
    input: str | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run one of Kafka's tools (e.g. :data:`TOPIC_COMMAND`) to completion; text stdout/stderr.

    Raises :class:`KafkaUnavailable` when the peer is missing and ``subprocess.TimeoutExpired``
    (the JVM killed) after ``timeout`` seconds; ``check`` raises on a non-zero exit as
    ``subprocess.run`` does.
    """
    return subprocess.run(
        kafka_tool_command(main_class, *args),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 just now (held together, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def random_cluster_id() -> str:
    """A cluster id as ``kafka-storage random-uuid`` prints it (22 URL-safe base64 characters).

    One in 64 begins with ``-``, which argparse reads as an option: pass it as ``--cluster-id=ID``.
    """
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaPeer:
    """A running Apache Kafka KRaft node (broker and controller in one JVM)."""

    process: subprocess.Popen[bytes]
    directory: Path
    broker_port: int
    controller_port: int
    cluster_id: str
    node_id: int = 1
    ready_seconds: float = 0.0  # from the storage format to the first Metadata answer
    format_seconds: float = 0.0  # of which the storage format (a JVM of its own)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.directory / "kafka.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def log(self, limit: int = 5000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a controlled shutdown), then SIGKILL after ``timeout``; the exit code.

        A JVM that ran its shutdown hooks after SIGTERM exits with 143 (128 + 15).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> KafkaPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux), so no
    JVM outlives a crashed test run (strictly: the death of the thread that started it, so
    start the peer from a thread that lives as long as it). libc is looked up here, in the
    parent, so the forked child only makes one system call (no imports, no locks)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    kill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(1, kill)  # PR_SET_PDEATHSIG

    return hook


def _broker_config(
    directory: Path, broker_port: int, controller_port: int, extra: Mapping[str, str]
) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(directory / "data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        # One node: every internal topic has one replica; as small as the Headrace test broker's.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        **extra,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _answers_metadata(bootstrap: str, node_id: int) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})
    try:
        metadata = admin.list_topics(timeout=2)
    except Exception:  # KafkaException while the broker is still starting
        return False
    return node_id in metadata.brokers


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_kraft_broker(
    tmp_path: Path,
    *,
    heap: str = BROKER_HEAP,
    timeout: float = 90.0,
    extra_config: Mapping[str, str] | None = None,
    attempts: int = 3,
) -> KafkaPeer:
    """Format ``tmp_path/kafka`` and start a one-node KRaft Kafka there; ready when it returns.

    Ready means the broker answered a Metadata request listing itself (registered, unfenced).
    ``ready_seconds`` counts from the format command to that answer. Ports are picked free just
    before the start; if another process takes one first, the start is retried on new ports.
    Raises :class:`KafkaUnavailable` when the peer is missing, ``RuntimeError`` when it fails.
    """
    directory = tmp_path / "kafka"
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "server.properties"
    cluster_id = random_cluster_id()
    started = time.monotonic()
    format_seconds = 0.0
    for attempt in range(1, attempts + 1):
        broker_port, controller_port = free_ports(2)
        config_path.write_text(
            _broker_config(directory, broker_port, controller_port, extra_config or {})
        )
        if attempt == 1:
            format_started = time.monotonic()
            formatted = run_kafka_tool(
                STORAGE_TOOL, "format", f"--cluster-id={cluster_id}",
                "--config", str(config_path), "--ignore-formatted", timeout=timeout,
            )
            if formatted.returncode != 0:
                raise RuntimeError(
                    f"kafka-storage format failed ({formatted.returncode}):\n"
                    f"{formatted.stdout}{formatted.stderr}"
                )
            format_seconds = time.monotonic() - format_started
        command = [
            *_java_command(KAFKA_MAIN, (f"-Xms{heap}", f"-Xmx{heap}", *BROKER_JVM_OPTIONS),
                           BROKER_LOG4J),
            str(config_path),
        ]
        with open(directory / "kafka.log", "ab") as log_file:
            process = subprocess.Popen(
                command, cwd=directory, stdin=subprocess.DEVNULL,
                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent_hook(),
            )
        peer = KafkaPeer(process, directory, broker_port, controller_port, cluster_id)
        peer.format_seconds = format_seconds
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                break
            if _accepts(broker_port) and _answers_metadata(peer.bootstrap, peer.node_id):
                peer.ready_seconds = time.monotonic() - started
                return peer
            if time.monotonic() > deadline:
                peer.kill()
                raise RuntimeError(f"Apache Kafka not ready after {timeout}s:\n{peer.log()}")
            time.sleep(0.1)
        if "Address already in use" not in peer.log() or attempt == attempts:
            raise RuntimeError(f"Apache Kafka exited with {process.returncode}:\n{peer.log()}")
    raise AssertionError("unreachable")
