"""LogManager: the broker's data directory — topics, partitions, retention and recovery.

Topic metadata (name, topic id, partition count, config overrides) lives in ``topics.json``
in the data directory, replaced atomically, so a single broker needs no external service.
A ``.clean-shutdown`` marker written by ``close()`` lets the next start skip CRC scans; it is
removed as soon as the directory is opened, so a crash afterwards is recognised as unclean.
"""

from __future__ import annotations

import json
import logging
import re
import resource
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from headrace.storage.cleaner import DEFAULT_MAX_MAP_KEYS, CleaningTask
from headrace.storage.config import LogConfig
from headrace.storage.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    TopicExistsError,
    UnknownPartitionError,
)
from headrace.storage.files import FileHandleCache, fsync_dir, write_atomic
from headrace.storage.log import PartitionLog
from headrace.storage.log_state import wall_clock_ms
from headrace.storage.producer_state import DEFAULT_PRODUCER_ID_EXPIRATION_MS
from headrace.storage.results import (
    RecoveryEvent,
    RecoveryReport,
    RetentionReport,
    TopicMetadata,
)

log = logging.getLogger(__name__)

TOPICS_FILE = "topics.json"
CLEAN_SHUTDOWN_MARKER = ".clean-shutdown"
DELETE_SUFFIX = "-delete"
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def validate_topic_name(name: str) -> None:
    """Kafka's rules: 1-249 of [a-zA-Z0-9._-], and not "." or ".."."""
    if name in (".", "..") or not _LEGAL_TOPIC.match(name):
        raise InvalidTopicError(f"illegal topic name {name!r}")


def default_max_open_files() -> int:
    """Half the process's descriptor limit, at most 1024: sockets need the rest."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 2))


def partition_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


class LogManager:
    """Opens (and recovers) every partition of a data directory; see LogManagerAPI."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        default_config: LogConfig | None = None,
        max_open_files: int | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        verify_all: bool = False,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        if producer_id_expiration_ms < 0:
            raise InvalidConfigError(
                f"producer.id.expiration.ms must be >= 0, not {producer_id_expiration_ms}"
            )
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._default_config = default_config or LogConfig()
        self.files = FileHandleCache(max_open_files or default_max_open_files())
        self._clock_ms = clock_ms
        self._topics: dict[str, TopicMetadata] = {}
        self._configs: dict[str, LogConfig] = {}
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._closed = False
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        clean = marker.exists()
        self._report = RecoveryReport(clean_shutdown=clean)
        self._load_topics()
        self._remove_strays()
        for meta in self._topics.values():
            for partition in range(meta.partitions):
                self._open_partition(meta.name, partition, clean=clean, verify_all=verify_all)
        if clean:
            marker.unlink()
            fsync_dir(self.data_dir)

    # -- metadata --------------------------------------------------------------------------------
    @property
    def default_config(self) -> LogConfig:
        return self._default_config

    @property
    def recovery_report(self) -> RecoveryReport:
        return self._report

    def topics(self) -> Mapping[str, TopicMetadata]:
        return dict(self._topics)

    def topic(self, name: str) -> TopicMetadata | None:
        return self._topics.get(name)

    def topic_config(self, name: str) -> LogConfig:
        """The effective config (broker default plus the topic's overrides)."""
        self._require_topic(name)
        return self._configs[name]

    def partitions(self) -> list[PartitionLog]:
        return list(self._logs.values())

    def get_partition(self, topic: str, partition: int) -> PartitionLog:
        try:
            return self._logs[(topic, partition)]
        except KeyError:
            raise UnknownPartitionError(f"unknown topic-partition {topic}-{partition}") from None

    def _require_topic(self, name: str) -> TopicMetadata:
        meta = self._topics.get(name)
        if meta is None:
            raise UnknownPartitionError(f"unknown topic {name}")
        return meta

    def _load_topics(self) -> None:
        path = self.data_dir / TOPICS_FILE
        if not path.exists():
            return
        data = json.loads(path.read_bytes())
        for entry in data["topics"]:
            meta = TopicMetadata(
                name=entry["name"],
                topic_id=uuid.UUID(entry["topic_id"]),
                partitions=int(entry["partitions"]),
                configs=dict(entry["configs"]),
            )
            self._topics[meta.name] = meta
            self._configs[meta.name] = LogConfig.from_kafka_configs(
                meta.configs, base=self._default_config
            )

    def _save_topics(self) -> None:
        data = {
            "version": 1,
            "topics": [
                {
                    "name": m.name,
                    "topic_id": str(m.topic_id),
                    "partitions": m.partitions,
                    "configs": m.configs,
                }
                for m in sorted(self._topics.values(), key=lambda m: m.name)
            ],
        }
        write_atomic(self.data_dir / TOPICS_FILE, json.dumps(data, indent=1).encode())

    def _remove_strays(self) -> None:
        """Finish interrupted topic deletions; warn about (but keep) unknown directories."""
        known = {
            partition_dir_name(m.name, p)
            for m in self._topics.values()
            for p in range(m.partitions)
        }
        for path in self.data_dir.iterdir():
            if not path.is_dir():
                continue
            if path.name.endswith(DELETE_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)
                self._report.events.append(
                    RecoveryEvent("", -1, "removed-file", f"finished deleting {path.name}")
                )
            elif path.name not in known:
                log.warning("ignoring %s: not a partition of any known topic", path)

    def _open_partition(
        self,
        topic: str,
        partition: int,
        *,
        clean: bool,
        verify_all: bool = False,
        new: bool = False,
    ) -> PartitionLog:
        directory = self.data_dir / partition_dir_name(topic, partition)
        if new and directory.exists():
            # Left by a create that crashed before topics.json was written: not ours to trust.
            shutil.rmtree(directory)
        partition_log = PartitionLog(
            directory,
            topic,
            partition,
            self._configs[topic],
            files=self.files,
            clean_shutdown=clean,
            verify_all=verify_all,
            clock_ms=self._clock_ms,
            on_recovery=self._report.events.append,
            producer_id_expiration_ms=self.producer_id_expiration_ms,
        )
        self._report.partitions_opened += 1
        self._report.segments_scanned += partition_log.segments_scanned
        self._logs[(topic, partition)] = partition_log
        return partition_log

    # -- topic administration --------------------------------------------------------------------
    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str] | None = None,
        topic_id: uuid.UUID | None = None,
    ) -> TopicMetadata:
        validate_topic_name(name)
        if name in self._topics:
            raise TopicExistsError(f"topic {name} already exists")
        if partitions < 1:
            raise InvalidPartitionsError(f"partition count {partitions} must be at least 1")
        overrides = dict(configs or {})
        config = LogConfig.from_kafka_configs(overrides, base=self._default_config)
        meta = TopicMetadata(name, topic_id or uuid.uuid4(), partitions, overrides)
        self._topics[name] = meta
        self._configs[name] = config
        for partition in range(partitions):
            self._open_partition(name, partition, clean=True, new=True)
        fsync_dir(self.data_dir)
        self._save_topics()
        return meta

    def delete_topic(self, name: str) -> None:
        meta = self._require_topic(name)
        del self._topics[name]
        del self._configs[name]
        self._save_topics()
        suffix = f".{uuid.uuid4().hex}{DELETE_SUFFIX}"
        for partition in range(meta.partitions):
            partition_log = self._logs.pop((name, partition))
            partition_log.close()
            directory = partition_log.directory
            self.files.forget_under(directory)
            doomed = directory.with_name(directory.name + suffix)
            directory.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        fsync_dir(self.data_dir)

    def add_partitions(self, name: str, total_partitions: int) -> TopicMetadata:
        meta = self._require_topic(name)
        if total_partitions <= meta.partitions:
            raise InvalidPartitionsError(
                f"topic {name} has {meta.partitions} partitions; cannot go to {total_partitions}"
            )
        for partition in range(meta.partitions, total_partitions):
            self._open_partition(name, partition, clean=True, new=True)
        fsync_dir(self.data_dir)
        updated = TopicMetadata(meta.name, meta.topic_id, total_partitions, dict(meta.configs))
        self._topics[name] = updated
        self._save_topics()
        return updated

    def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMetadata:
        """Replace the topic's config overrides (AlterConfigs semantics; merge first for
        IncrementalAlterConfigs)."""
        meta = self._require_topic(name)
        overrides = dict(configs)
        config = LogConfig.from_kafka_configs(overrides, base=self._default_config)
        updated = TopicMetadata(meta.name, meta.topic_id, meta.partitions, overrides)
        self._topics[name] = updated
        self._configs[name] = config
        for partition in range(meta.partitions):
            self._logs[(name, partition)].update_config(config)
        self._save_topics()
        return updated

    # -- housekeeping ----------------------------------------------------------------------------
    def enforce_retention(self, now_ms: int | None = None) -> RetentionReport:
        """Roll aged segments, delete segments past retention and forget idempotent producers
        idle for ``producer_id_expiration_ms``, in every partition."""
        now = self._clock_ms() if now_ms is None else now_ms
        report = RetentionReport()
        for key, partition_log in self._logs.items():
            before = partition_log.log_start_offset
            deleted, freed, rolled = partition_log.enforce_retention(now)
            report.segments_deleted += deleted
            report.bytes_deleted += freed
            report.segments_rolled += rolled
            report.producers_expired += partition_log.expire_producers(now)
            if partition_log.log_start_offset != before:
                report.log_start_offsets[key] = partition_log.log_start_offset
        return report

    def cleaning_tasks(
        self, now_ms: int | None = None, *, max_map_keys: int = DEFAULT_MAX_MAP_KEYS
    ) -> Iterator[CleaningTask]:
        """One compaction pass per partition that needs one, prepared lazily: for each task
        call ``run()`` (any thread, e.g. ``asyncio.to_thread``) and then ``finish()`` on this
        thread before asking for the next. A task left unfinished is discarded."""
        now = self._clock_ms() if now_ms is None else now_ms
        for partition_log in list(self._logs.values()):
            if self._closed:
                return
            task = partition_log.prepare_cleaning(now, max_map_keys=max_map_keys)
            if task is None:
                continue
            try:
                yield task
            finally:
                if not task.finished:
                    task.discard()

    def clean(self, now_ms: int | None = None) -> list[CleaningTask]:
        """Run every due compaction pass on this thread; returns the tasks (with stats)."""
        done = []
        for task in self.cleaning_tasks(now_ms):
            task.run()
            task.finish()
            done.append(task)
        return done

    def maybe_flush(self, now_ms: int | None = None) -> int:
        """Apply flush.ms to every partition (for a periodic task); returns how many fsynced."""
        now = self._clock_ms() if now_ms is None else now_ms
        return sum(p.maybe_flush(now) for p in self._logs.values())

    def flush(self) -> None:
        for partition_log in self._logs.values():
            partition_log.flush()

    def close(self) -> None:
        """Flush everything and leave the clean-shutdown marker for a fast next start."""
        if self._closed:
            return
        for partition_log in self._logs.values():
            partition_log.close()
        self.files.close_all()
        self._closed = True
        write_atomic(self.data_dir / CLEAN_SHUTDOWN_MARKER, b"")
