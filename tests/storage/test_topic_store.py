"""The topic metadata log: batches are one write, a torn tail is ignored, kill -9 loses nothing
acknowledged and leaves no half-made topic, and the log is compacted into the snapshot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from headrace.storage import LogManager, NewPartitions, TopicMetadata
from headrace.storage.topic_store import LOG_FILE, SNAPSHOT_FILE, TopicStore
from tests.support.brokers import subprocess_env


def _meta(name: str, partitions: int = 1) -> TopicMetadata:
    return TopicMetadata(name, uuid.uuid4(), partitions, {})


def test_a_batch_of_creations_is_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync
    log_fd = manager._store._fd

    def counting_fsync(fd: int) -> None:
        if fd == log_fd:
            synced.append(fd)
        real_fsync(fd)

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", counting_fsync)
        manager.begin_creation([NewPartitions(_meta(f"t{i}", 2)) for i in range(200)]).run()
    assert len(synced) == 1
    assert len(manager.topics()) == 200
    assert manager.partition_count() == 400
    manager.close()


def test_a_torn_tail_is_cut_off_and_later_appends_survive(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("kept", 2)
    # Leave records in the log (no close, so no compaction), then tear a record in half.
    manager._store.close()
    manager.files.close_all()
    log_path = tmp_path / LOG_FILE
    whole = log_path.read_bytes()
    assert whole
    with log_path.open("ab") as file:
        file.write(whole[: len(whole) // 2])
    reopened = LogManager(tmp_path)
    assert set(reopened.topics()) == {"kept"}
    assert any(e.action == "truncated" for e in reopened.recovery_report.events)
    reopened.create_topic("after", 1)
    reopened._store.close()
    reopened.files.close_all()
    again = LogManager(tmp_path)
    assert set(again.topics()) == {"kept", "after"}
    again.close()


def test_replaying_the_log_over_its_own_snapshot_changes_nothing(tmp_path: Path) -> None:
    """A crash between writing the snapshot and emptying the log replays old records."""
    store = TopicStore(tmp_path)
    store.load()
    first, second = _meta("a", 1), _meta("b", 3)
    from headrace.storage.topic_store import deleted, deleting, put

    store.append([put(first), put(second)])
    store.append([deleting(first)])
    store.append([deleted(first)])
    records = (tmp_path / LOG_FILE).read_bytes()
    store.compact()
    store.close()
    (tmp_path / LOG_FILE).write_bytes(records)  # as if the truncation never happened
    loaded = TopicStore(tmp_path).load()
    assert set(loaded.topics) == {"b"}
    assert loaded.topics["b"].partitions == 3
    assert not loaded.deleting


def test_start_compacts_the_log_into_the_snapshot(tmp_path: Path) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("one", 1)
    manager.alter_topic_configs("one", {"retention.ms": "5000"})
    manager._store.close()
    manager.files.close_all()
    assert (tmp_path / LOG_FILE).stat().st_size > 0
    reopened = LogManager(tmp_path)
    assert (tmp_path / LOG_FILE).stat().st_size == 0
    snapshot = json.loads((tmp_path / SNAPSHOT_FILE).read_text())
    assert snapshot["topics"][0]["configs"] == {"retention.ms": "5000"}
    reopened.close()


_CREATOR = textwrap.dedent("""
    import sys, uuid
    from pathlib import Path
    from headrace.storage import LogManager, NewPartitions, TopicMetadata
    manager = LogManager(Path(sys.argv[1]))
    batch = 0
    while True:
        entries = [NewPartitions(TopicMetadata(f"b{batch}-{i}", uuid.uuid4(), 2, {}))
                   for i in range(50)]
        manager.begin_creation(entries).run()
        print(batch, flush=True)  # acknowledged: the batch is durable
        batch += 1
""")


def test_kill_9_during_creations_loses_no_acknowledged_topic(tmp_path: Path) -> None:
    data = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-c", _CREATOR, str(data)], env=subprocess_env(),
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    acknowledged: list[int] = []
    while len(acknowledged) < 5:  # the writer prints a line per batch, then keeps going
        line = process.stdout.readline()
        assert line, "the writer died"
        acknowledged.append(int(line))
    process.send_signal(signal.SIGKILL)
    process.wait()
    for line in process.stdout.read().split():  # printed before the kill landed
        acknowledged.append(int(line))
    process.stdout.close()
    manager = LogManager(data)
    topics = manager.topics()
    for batch in acknowledged:
        for i in range(50):
            assert topics[f"b{batch}-{i}"].partitions == 2
    # Every topic is whole, and no directory is left of a creation the kill cut short.
    directories = {p.name for p in data.iterdir() if p.is_dir()}
    expected = {f"{name}-{p}" for name, meta in topics.items() for p in range(meta.partitions)}
    assert directories == expected
    for meta in topics.values():
        for partition in range(meta.partitions):
            assert manager.get_partition(meta.name, partition).log_end_offset == 0
    manager.create_topic("afterwards", 1)
    manager.close()
