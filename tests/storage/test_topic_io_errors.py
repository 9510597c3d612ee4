"""ENOSPC (and any OSError) on every mutating topic path leaves metadata and disk consistent.

The faults are injected at the filesystem seams: the topic log's write, directory creation,
renames and tree removal. After each failure the manager, and a manager reopened on the same
directory, agree with the disk: a failed creation left nothing, a failed config change changed
nothing, a deletion marked in the metadata is finished by a retry or by the next start.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from headrace.core.errors import KafkaError
from headrace.core.topics import TopicManager
from headrace.storage import LogManager, StorageError
from headrace.storage.topic_store import TopicStore


def _enospc(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _dirs(data: Path) -> set[str]:
    return {p.name for p in data.iterdir() if p.is_dir()}


def _reopen(manager: LogManager) -> LogManager:
    manager.close()
    return LogManager(manager.data_dir)


def test_a_full_disk_while_writing_metadata_rolls_the_creation_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("before", 1)
    with monkeypatch.context() as patch:
        patch.setattr(TopicStore, "write", staticmethod(_enospc))
        with pytest.raises(StorageError, match="No space left"):
            manager.create_topic("full", 3)
    assert manager.topic("full") is None
    assert _dirs(tmp_path) == {"before-0"}
    manager.create_topic("full", 3)  # the name is free again and the log still appends
    reopened = _reopen(manager)
    assert set(reopened.topics()) == {"before", "full"}
    reopened.close()


def test_a_full_disk_while_making_directories_rolls_the_creation_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    real_mkdir = Path.mkdir

    def mkdir_until_full(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == "big-3":
            _enospc()
        real_mkdir(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "mkdir", mkdir_until_full)
        with pytest.raises(StorageError, match="No space left"):
            manager.create_topic("big", 6)
    assert manager.topic("big") is None
    assert _dirs(tmp_path) == set()
    assert manager.partition_count() == 0
    reopened = _reopen(manager)
    assert reopened.topics() == {}
    reopened.close()


def test_a_failed_growth_keeps_the_old_partition_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("grow", 2)
    with monkeypatch.context() as patch:
        patch.setattr(TopicStore, "write", staticmethod(_enospc))
        with pytest.raises(StorageError):
            manager.add_partitions("grow", 5)
    assert manager.topic("grow").partitions == 2  # type: ignore[union-attr]
    assert _dirs(tmp_path) == {"grow-0", "grow-1"}
    reopened = _reopen(manager)
    assert reopened.topic("grow").partitions == 2  # type: ignore[union-attr]
    reopened.close()


def test_a_failed_config_change_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("conf", 1, {"retention.ms": "1000"})
    with monkeypatch.context() as patch:
        patch.setattr(TopicStore, "write", staticmethod(_enospc))
        with pytest.raises(StorageError):
            manager.alter_topic_configs("conf", {"retention.ms": "2000"})
    assert manager.topic_config("conf").retention_ms == 1000
    assert manager.get_partition("conf", 0).config.retention_ms == 1000
    reopened = _reopen(manager)
    assert reopened.topic("conf").configs == {"retention.ms": "1000"}  # type: ignore[union-attr]
    reopened.close()


def test_a_deletion_that_cannot_be_marked_keeps_the_topic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("stay", 2)
    topics = TopicManager(manager, default_partitions=1)
    with monkeypatch.context() as patch:
        patch.setattr(TopicStore, "write", staticmethod(_enospc))
        with pytest.raises(KafkaError) as refused:
            topics.delete("stay")
    assert refused.value.code.name == "kafka_storage_error"
    assert "No space left" in refused.value.message
    assert manager.topic("stay") is not None
    assert manager.get_partition("stay", 1).log_end_offset == 0
    reopened = _reopen(manager)
    assert reopened.topic("stay") is not None
    reopened.close()


def test_a_deletion_the_disk_interrupts_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("doomed", 3)
    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", _enospc)
        manager.delete_topic("doomed")  # marked: the client hears success, as from Kafka
        assert manager.topic("doomed") is None
        assert "doomed" in manager.deleting()
        assert manager.retry_deletions() == 1  # still failing
        with pytest.raises(StorageError, match="marked for deletion"):
            manager.create_topic("doomed", 1)
    assert _dirs(tmp_path) == {"doomed-0", "doomed-1", "doomed-2"}
    assert manager.retry_deletions() == 0
    assert _dirs(tmp_path) == set()
    manager.create_topic("doomed", 1)
    manager.close()


def test_an_interrupted_deletion_is_resumed_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("doomed", 2)
    manager.create_topic("kept", 1)
    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", _enospc)
        manager.delete_topic("doomed")
        manager.close()
    assert {"doomed-0", "doomed-1"} <= _dirs(tmp_path)
    reopened = LogManager(tmp_path)
    assert set(reopened.topics()) == {"kept"}
    assert reopened.deleting() == {}
    assert _dirs(tmp_path) == {"kept-0"}
    reopened.close()


def test_a_tree_removal_that_fails_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = LogManager(tmp_path)
    manager.create_topic("sticky", 1)
    with monkeypatch.context() as patch:
        patch.setattr(shutil, "rmtree", _enospc)
        manager.delete_topic("sticky")
    assert manager.topic("sticky") is None and manager.deleting() == {}
    assert any(name.endswith("-delete") for name in _dirs(tmp_path))  # renamed away
    manager.create_topic("sticky", 1)  # the name is free: its directory was renamed
    manager.retry_deletions()
    assert _dirs(tmp_path) == {"sticky-0"}
    manager.close()
