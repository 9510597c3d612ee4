"""An operator's mistake at startup is one line on stderr and a non-zero exit, never a traceback;
a data dir belongs to one broker (its lock and meta.properties)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headrace.core.data_dir import META_FILE, MetaProperties, read_meta, write_meta
from tests.support.brokers import ROOT, BrokerProcess, subprocess_env
from tests.support.clients import confluent_producer, consume_all, create_topic
from tests.support.clusters import EtcdProcess

EPHEMERAL = ("--kafka-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")


def headrace(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m headrace ARGS`` as a shell runs it (stdin closed)."""
    return subprocess.run([*prefix, sys.executable, "-m", "headrace", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**subprocess_env(), **(env or {})}, stdin=subprocess.DEVNULL)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 1, stderr exactly one ``headrace: error:`` line containing ``words``."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("headrace: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def assert_usage_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """argparse's usage lines, then one ``error:`` line containing ``words``; exit 2."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("usage:"), result.stderr
    errors = [line for line in lines if ": error: " in line]
    assert errors == [lines[-1]], result.stderr
    for word in words:
        assert word in lines[-1], lines[-1]


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port some other program is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(("flags", "env", "words"), [
    (("--log-level", "bogus"), {}, ("--log-level", "bogus")),
    (("--broker-id", "-1"), {}, ("--broker-id", "-1")),
    (("--default-partitions", "0"), {}, ("--default-partitions",)),
    ((), {"HEADRACE_BROKER_ID": "one"}, ("--broker-id", "one")),
    ((), {"HEADRACE_LOG_LEVEL": "loud"}, ("--log-level", "loud")),
    (("--kafka-listen", "localhost"), {}, ("--kafka-listen", "HOST:PORT")),
])
def test_bad_broker_flags_are_usage_errors(tmp_path: Path, flags: tuple[str, ...],
                                           env: dict[str, str], words: tuple[str, ...]) -> None:
    result = headrace("broker", "--data-dir", str(tmp_path / "data"), *EPHEMERAL, *flags, env=env)
    assert_usage_error(result, *words)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("listener", ["--kafka-listen", "--http-listen"])
def test_busy_listen_port_names_the_address(tmp_path: Path, listening_port: int,
                                            listener: str) -> None:
    flags = dict(zip(EPHEMERAL[::2], EPHEMERAL[1::2], strict=True))
    flags[listener] = f"127.0.0.1:{listening_port}"
    result = headrace("broker", "--data-dir", str(tmp_path / "data"),
                      *(item for pair in flags.items() for item in pair))
    kind = "Kafka" if listener == "--kafka-listen" else "HTTP"
    assert_one_line_error(result, f"127.0.0.1:{listening_port}", kind, "address already in use")
    # The lock went with the process: the next start on the same dir works.
    broker = BrokerProcess(tmp_path / "data").start()
    assert broker.stop() == 0


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    assert_one_line_error(headrace("broker", "--data-dir", str(path), *EPHEMERAL),
                          str(path), "not a directory")


def test_ready_file_that_cannot_be_written(tmp_path: Path) -> None:
    ready = tmp_path / "missing-dir" / "ready.json"
    result = headrace("broker", "--data-dir", str(tmp_path / "data"), *EPHEMERAL,
                      "--ready-file", str(ready))
    assert_one_line_error(result, "--ready-file", str(ready))


def _read_only_runner(tmp_path: Path) -> Callable[[Path], subprocess.CompletedProcess[str]]:
    """Runs a broker on a data dir the broker cannot write: chmod for a normal user; for root
    (which ignores permissions) a read-only tmpfs in a private mount namespace."""
    if os.geteuid() != 0:
        def run_as_user(data_dir: Path) -> subprocess.CompletedProcess[str]:
            tmp_path.chmod(0o555)
            try:
                return headrace("broker", "--data-dir", str(data_dir), *EPHEMERAL)
            finally:
                tmp_path.chmod(0o755)
        return run_as_user
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-m", "true"], capture_output=True) \
        if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("root without a mount namespace cannot make a read-only directory")

    def run_as_root(data_dir: Path) -> subprocess.CompletedProcess[str]:
        script = (f"mount -t tmpfs -o ro tmpfs {tmp_path} && exec \"$@\"")
        return headrace("broker", "--data-dir", str(data_dir), *EPHEMERAL,
                        prefix=("unshare", "-m", "sh", "-c", script, "sh"))
    return run_as_root


def test_read_only_data_dir(tmp_path: Path) -> None:
    run = _read_only_runner(tmp_path)
    existing = run(tmp_path)
    assert_one_line_error(existing, f"cannot write to data dir {tmp_path}")
    missing = run(tmp_path / "new")
    assert_one_line_error(missing, f"cannot create data dir {tmp_path / 'new'}")


def test_second_broker_on_a_data_dir_is_refused_and_the_first_keeps_serving(
        start_broker: Callable[..., BrokerProcess], tmp_path: Path) -> None:
    first = start_broker()
    assert first.process is not None
    create_topic(first.bootstrap, "owned", partitions=2)
    second = headrace("broker", "--data-dir", str(first.data_dir), *EPHEMERAL)
    assert_one_line_error(second, str(first.data_dir), f"pid {first.process.pid}",
                          "in use by another broker")

    producer = confluent_producer(first.bootstrap, {"acks": "all"})
    for i in range(100):
        producer.produce("owned", value=f"v{i}".encode(), partition=i % 2)
    assert producer.flush(20) == 0
    values = {m.value() for m in consume_all(first.bootstrap, "owned", 2, 100)}
    assert values == {f"v{i}".encode() for i in range(100)}
    assert first.process.poll() is None


def test_meta_properties_is_written_at_first_start_and_kept(
        start_broker: Callable[..., BrokerProcess], tmp_path: Path) -> None:
    broker = start_broker("--broker-id", "7")
    meta = read_meta(broker.data_dir)
    assert meta is not None and meta.node_id == 7 and meta.version == 1
    text = (broker.data_dir / META_FILE).read_text()
    assert "node.id=7" in text and f"cluster.id={meta.cluster_id}" in text
    broker.restart()
    assert read_meta(broker.data_dir) == meta  # the id survives restarts

    broker.stop()
    refused = headrace("broker", "--data-dir", str(broker.data_dir), "--broker-id", "8",
                       *EPHEMERAL)
    assert_one_line_error(refused, str(broker.data_dir), "broker 7", "--broker-id 8")
    assert read_meta(broker.data_dir) == meta


def test_legacy_cluster_id_file_is_adopted(start_broker: Callable[..., BrokerProcess],
                                           tmp_path: Path) -> None:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    (data_dir / "cluster-id").write_text("OldClusterId\n")
    broker = start_broker(data_dir=data_dir)
    assert read_meta(data_dir) == MetaProperties("OldClusterId", 1)
    assert not (data_dir / "cluster-id").exists()
    broker.stop()


def test_broken_meta_properties_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / META_FILE).write_text("version=1\n")
    assert_one_line_error(headrace("broker", "--data-dir", str(data_dir), *EPHEMERAL),
                          str(data_dir / META_FILE))


def test_data_dir_of_another_cluster_is_refused(etcd: EtcdProcess, tmp_path: Path) -> None:
    root = f"/startup-{os.getpid()}-{tmp_path.name}"
    cluster_flags = ("--metadata", etcd.metadata_url, "--metadata-root", root,
                     "--default-replication-factor", "1",
                     "--offsets-topic-replication-factor", "1")
    member = BrokerProcess(tmp_path / "member", cluster_flags).start()
    try:
        joined = read_meta(member.data_dir)
        assert joined is not None and joined.node_id == 1
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        write_meta(foreign, MetaProperties("SomeOtherCluster", 2))
        refused = headrace("broker", "--data-dir", str(foreign), "--broker-id", "2",
                           *EPHEMERAL, *cluster_flags)
        assert_one_line_error(refused, str(foreign), "SomeOtherCluster", joined.cluster_id)
        assert member.process is not None and member.process.poll() is None
    finally:
        member.stop()


def test_bad_metadata_url_is_one_line(tmp_path: Path) -> None:
    result = headrace("broker", "--data-dir", str(tmp_path / "data"), *EPHEMERAL,
                      "--metadata", "http://127.0.0.1:2379")
    assert_one_line_error(result, "--metadata", "etcd://")


@pytest.mark.slow  # the broker keeps trying etcd for 30 s before it gives up
def test_unreachable_etcd_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = headrace("broker", "--data-dir", str(tmp_path / "data"), *EPHEMERAL,
                      "--metadata", f"etcd://127.0.0.1:{port}", timeout=90)
    assert_one_line_error(result, "etcd", f"127.0.0.1:{port}")
