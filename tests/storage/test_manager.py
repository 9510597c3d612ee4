"""LogManager: topic metadata persistence, configs, partitions and clean restarts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from headrace.storage import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    LogConfig,
    LogManager,
    TopicExistsError,
    UnknownPartitionError,
)
from tests.storage.conftest import OpenManager
from tests.support.batches import make_batch


def test_topics_persist_with_ids_and_overrides(tmp_path: Path) -> None:
    topic_id = uuid.uuid4()
    manager = LogManager(tmp_path)
    meta = manager.create_topic("orders", 3, {"retention.ms": "1000"}, topic_id)
    assert meta.topic_id == topic_id
    manager.create_topic("other.topic_1", 1)
    manager.get_partition("orders", 2).append(make_batch([b"x"]), leader_epoch=0)
    manager.close()
    saved = json.loads((tmp_path / "topics.json").read_text())
    assert {t["name"] for t in saved["topics"]} == {"orders", "other.topic_1"}
    reopened = LogManager(tmp_path)
    topics = reopened.topics()
    assert topics["orders"].topic_id == topic_id
    assert topics["orders"].partitions == 3
    assert topics["orders"].configs == {"retention.ms": "1000"}
    assert reopened.topic("orders") == topics["orders"]
    assert reopened.topic("missing") is None
    assert reopened.topic_config("orders").retention_ms == 1000
    assert reopened.get_partition("orders", 2).log_end_offset == 1
    assert reopened.recovery_report.clean_shutdown
    reopened.close()


def test_topic_errors(open_manager: OpenManager) -> None:
    manager = open_manager()
    manager.create_topic("t", 1)
    with pytest.raises(TopicExistsError):
        manager.create_topic("t", 1)
    for bad in ("", ".", "..", "a/b", "x" * 250, "sp ace"):
        with pytest.raises(InvalidTopicError):
            manager.create_topic(bad, 1)
    with pytest.raises(InvalidPartitionsError):
        manager.create_topic("zero", 0)
    with pytest.raises(InvalidConfigError, match=r"segment.bytes"):
        manager.create_topic("cfg", 1, {"segment.bytes": "ten"})
    with pytest.raises(InvalidConfigError, match=r"no.such.key"):
        manager.create_topic("cfg", 1, {"no.such.key": "1"})
    assert "cfg" not in manager.topics()
    with pytest.raises(UnknownPartitionError):
        manager.get_partition("t", 1)
    with pytest.raises(UnknownPartitionError):
        manager.delete_topic("nope")


def test_delete_topic_removes_data(open_manager: OpenManager, tmp_path: Path) -> None:
    manager = open_manager()
    manager.create_topic("gone", 2)
    stale = manager.get_partition("gone", 0)
    stale.append(make_batch([b"x"]), leader_epoch=0)
    manager.delete_topic("gone")
    with pytest.raises(UnknownPartitionError):
        stale.append(make_batch([b"y"]), leader_epoch=0)  # a handle kept by a caller
    assert "gone" not in manager.topics()
    assert not any(p.name.startswith("gone") for p in (tmp_path / "data").iterdir())
    manager.create_topic("gone", 1)  # the name is free again, starting empty
    assert manager.get_partition("gone", 0).log_end_offset == 0


def test_add_partitions_and_alter_configs(open_manager: OpenManager) -> None:
    manager = open_manager()
    manager.create_topic("t", 1)
    assert manager.add_partitions("t", 4).partitions == 4
    assert manager.get_partition("t", 3).log_end_offset == 0
    with pytest.raises(InvalidPartitionsError):
        manager.add_partitions("t", 2)
    manager.alter_topic_configs("t", {"message.timestamp.type": "LogAppendTime"})
    assert manager.get_partition("t", 2).config.message_timestamp_type == "LogAppendTime"
    with pytest.raises(InvalidConfigError):
        manager.alter_topic_configs("t", {"retention.ms": "-5"})
    assert manager.topics()["t"].configs == {"message.timestamp.type": "LogAppendTime"}


def test_clean_restart_does_not_rebuild_indexes(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=2000, index_interval_bytes=50)
    manager = LogManager(tmp_path, default_config=config)
    manager.create_topic("t", 2)
    log = manager.get_partition("t", 0)
    for i in range(60):
        log.append(make_batch([b"v%d" % i] * 3), leader_epoch=0)
    manager.close()
    assert (tmp_path / ".clean-shutdown").exists()
    indexes = {p: p.read_bytes() for p in (tmp_path / "t-0").glob("*index")}
    mtimes = {p: p.stat().st_mtime_ns for p in indexes}
    reopened = LogManager(tmp_path, default_config=config)
    report = reopened.recovery_report
    assert report.clean_shutdown and report.segments_scanned == 0 and report.events == []
    assert not (tmp_path / ".clean-shutdown").exists()  # a crash from now on is unclean
    log = reopened.get_partition("t", 0)
    assert log.log_end_offset == 180
    with log.read(100, 1) as read:
        assert read.high_offset == 102
    assert {p: p.stat().st_mtime_ns for p in indexes} == mtimes
    untouched = {p: p.stat().st_mtime_ns for p in (tmp_path / "t-1").iterdir()}
    reopened.close()
    # An idle partition is already durable: closing it rewrites nothing.
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "t-1").iterdir()} == untouched


def test_config_round_trip_and_validation() -> None:
    config = LogConfig.from_kafka_configs(
        {"segment.ms": "60000", "flush.messages": "1", "compression.type": "zstd"}
    )
    assert config.segment_ms == 60000 and config.flush_messages == 1
    rendered = config.to_kafka_configs()
    assert rendered["compression.type"] == "zstd"
    assert rendered["flush.ms"] == str(2**63 - 1)
    assert LogConfig.from_kafka_configs(rendered) == config
    with pytest.raises(InvalidConfigError, match=r"message.timestamp.type"):
        LogConfig.from_kafka_configs({"message.timestamp.type": "Whenever"})
    with pytest.raises(InvalidConfigError, match=r"cleanup.policy"):
        LogConfig.from_kafka_configs({"cleanup.policy": "shred"})
    with pytest.raises(InvalidConfigError, match=r"segment.bytes"):
        LogConfig(segment_bytes=2**31)
    compact = LogConfig.from_kafka_configs({"cleanup.policy": "delete,compact"})
    assert compact.cleanup_policy == "compact,delete" and compact.deletes_by_retention
