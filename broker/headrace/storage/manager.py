"""LogManager: the broker's data directory — topics, partitions, retention and recovery.

Topic metadata (name, topic id, partition count, config overrides) lives in the data directory
(:mod:`headrace.storage.topic_store`: a snapshot plus an append-only change log), so a single
broker needs no external service. Every change is made durable before it becomes visible, and
disk errors leave metadata and directories consistent: a failed creation is removed again
(:mod:`headrace.storage.topic_creation`); a deletion is marked in the metadata first, then its
directories are removed, and a deletion an error or a crash interrupted is retried
(:meth:`LogManager.retry_deletions`, also run at every start).
A ``.clean-shutdown`` marker written by ``close()`` lets the next start skip CRC scans; it is
removed as soon as the directory is opened, so a crash afterwards is recognised as unclean.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from headrace.storage.cleaner import DEFAULT_MAX_MAP_KEYS, CleaningTask
from headrace.storage.config import LogConfig
from headrace.storage.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    StorageError,
    TopicBusyError,
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
from headrace.storage.topic_creation import NewPartitions, TopicCreation
from headrace.storage.topic_store import LOG_FILE, TopicStore, deleted, deleting, put

log = logging.getLogger(__name__)

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
        #: Marked for deletion; directories still to be removed (retry_deletions).
        self._deleting: dict[str, TopicMetadata] = {}
        #: Renamed-away partition directories whose removal failed.
        self._doomed: list[Path] = []
        #: Names with a creation (or growth) under way, and its new partitions.
        self._reserved: dict[str, int] = {}
        self._pending_configs: dict[str, LogConfig] = {}
        self._closed = False
        marker = self.data_dir / CLEAN_SHUTDOWN_MARKER
        clean = marker.exists()
        self._report = RecoveryReport(clean_shutdown=clean)
        self._store = TopicStore(self.data_dir)
        self._load_topics()
        self._remove_strays()
        for meta in self._topics.values():
            for partition in range(meta.partitions):
                self._register(
                    self._open_partition(meta.name, partition, clean=clean, verify_all=verify_all)
                )
        self.retry_deletions()
        self._store.compact()
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

    def partition_count(self) -> int:
        """Partitions this directory holds, counting those of creations under way."""
        return len(self._logs) + sum(self._reserved.values())

    def creating(self, name: str) -> bool:
        """Whether a creation (or growth) of ``name`` is under way."""
        return name in self._reserved

    def deleting(self) -> Mapping[str, TopicMetadata]:
        """Topics marked for deletion whose directories are not all removed yet."""
        return dict(self._deleting)

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
        loaded = self._store.load()
        if loaded.torn_bytes:
            self._report.events.append(RecoveryEvent(
                "", -1, "truncated", f"torn tail of {LOG_FILE}", loaded.torn_bytes))
        for meta in loaded.topics.values():
            self._topics[meta.name] = meta
            self._configs[meta.name] = LogConfig.from_kafka_configs(
                meta.configs, base=self._default_config
            )
        self._deleting = dict(loaded.deleting)
        for unfinished in loaded.unfinished:  # a creation a crash interrupted: roll it back
            live = self._topics.get(unfinished.name)
            first = max(unfinished.first, live.partitions if live else 0)
            for partition in range(first, unfinished.partitions):
                path = self.data_dir / partition_dir_name(unfinished.name, partition)
                if path.exists():
                    shutil.rmtree(path, ignore_errors=True)
                    self._report.events.append(RecoveryEvent(
                        unfinished.name, partition, "removed-file",
                        f"unfinished creation of {path.name}"))

    def _remove_strays(self) -> None:
        """Finish interrupted topic deletions; warn about (but keep) unknown directories."""
        known = {
            partition_dir_name(m.name, p)
            for topics in (self._topics, self._deleting)
            for m in topics.values()
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
        created: bool = False,
        config: LogConfig | None = None,
    ) -> PartitionLog:
        partition_log = PartitionLog(
            self.data_dir / partition_dir_name(topic, partition),
            topic,
            partition,
            config or self._configs[topic],
            files=self.files,
            clean_shutdown=clean,
            verify_all=verify_all,
            created=created,
            clock_ms=self._clock_ms,
            on_recovery=self._report.events.append,
            producer_id_expiration_ms=self.producer_id_expiration_ms,
        )
        self._report.partitions_opened += 1
        self._report.segments_scanned += partition_log.segments_scanned
        return partition_log

    def _register(self, partition_log: PartitionLog) -> None:
        self._logs[(partition_log.topic, partition_log.partition)] = partition_log

    # -- topic administration --------------------------------------------------------------------
    def begin_creation(self, entries: Sequence[NewPartitions]) -> TopicCreation:
        """Reserve new topics (``first == 0``) or new partitions of existing ones and return
        the steps that make them (see :class:`TopicCreation`); the names stay reserved until
        it is published or aborted. Raises before anything is reserved."""
        seen: set[str] = set()
        configs: dict[str, LogConfig] = {}
        for entry in entries:
            meta = entry.meta
            validate_topic_name(meta.name)
            if meta.name in seen or meta.name in self._reserved:
                raise TopicExistsError(f"topic {meta.name} is already being created")
            seen.add(meta.name)
            current = self._topics.get(meta.name)
            if entry.first == 0:
                if current is not None:
                    raise TopicExistsError(f"topic {meta.name} already exists")
                if meta.name in self._deleting:
                    raise TopicExistsError(f"topic '{meta.name}' is marked for deletion")
            elif current is None or current.partitions != entry.first:
                raise InvalidPartitionsError(f"topic {meta.name} changed meanwhile")
            if meta.partitions <= entry.first:
                raise InvalidPartitionsError(
                    f"partition count {meta.partitions} must be more than {entry.first}")
            configs[meta.name] = self._configs.get(meta.name) or LogConfig.from_kafka_configs(
                meta.configs, base=self._default_config)
        if self._closed:
            raise StorageError("the log directory is closed")
        for entry in entries:
            self._reserved[entry.meta.name] = entry.meta.partitions - entry.first
        self._pending_configs.update(configs)
        return TopicCreation(
            entries, data_dir=self.data_dir, store=self._store,
            open_partition=self._open_new_partition, publish=self._publish,
            release=self._release,
        )

    def _open_new_partition(self, topic: str, partition: int) -> PartitionLog:
        return self._open_partition(
            topic, partition, clean=True, created=True, config=self._pending_configs[topic])

    def _publish(self, entries: Sequence[NewPartitions], opened: list[PartitionLog]) -> None:
        for entry in entries:
            self._topics[entry.meta.name] = entry.meta
            self._configs[entry.meta.name] = self._pending_configs[entry.meta.name]
        for partition_log in opened:
            self._register(partition_log)

    def _release(self, entries: Sequence[NewPartitions]) -> None:
        for entry in entries:
            self._reserved.pop(entry.meta.name, None)
            self._pending_configs.pop(entry.meta.name, None)

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str] | None = None,
        topic_id: uuid.UUID | None = None,
    ) -> TopicMetadata:
        validate_topic_name(name)
        if partitions < 1:
            raise InvalidPartitionsError(f"partition count {partitions} must be at least 1")
        meta = TopicMetadata(name, topic_id or uuid.uuid4(), partitions, dict(configs or {}))
        return self.begin_creation([NewPartitions(meta)]).run()[0]

    def delete_topic(self, name: str) -> None:
        """Mark the topic for deletion (durably: a failure changes nothing), then remove its
        directories; a removal that fails is retried by :meth:`retry_deletions`."""
        meta = self._require_topic(name)
        if name in self._reserved:
            raise TopicBusyError(f"topic {name} is being changed; retry")
        self._store.append([deleting(meta)])
        del self._topics[name]
        del self._configs[name]
        self._deleting[name] = meta
        for partition in range(meta.partitions):
            partition_log = self._logs.pop((name, partition), None)
            if partition_log is not None:
                partition_log.close()
                self.files.forget_under(partition_log.directory)
        try:
            self._finish_deletion(meta)
        except OSError as error:
            log.warning("deleting topic %s: %s; retrying later", name, error)

    def retry_deletions(self) -> int:
        """Finish the deletions an error or a crash interrupted; returns how many are left."""
        for meta in list(self._deleting.values()):
            try:
                self._finish_deletion(meta)
            except (OSError, StorageError) as error:
                log.warning("deleting topic %s: %s; retrying later", meta.name, error)
        doomed, self._doomed = self._doomed, []
        for path in doomed:
            self._remove_tree(path)
        return len(self._deleting)

    def _finish_deletion(self, meta: TopicMetadata) -> None:
        suffix = f".{uuid.uuid4().hex}{DELETE_SUFFIX}"
        renamed = []
        for partition in range(meta.partitions):
            directory = self.data_dir / partition_dir_name(meta.name, partition)
            if directory.exists():
                doomed = directory.with_name(directory.name + suffix)
                os.rename(directory, doomed)
                renamed.append(doomed)
        fsync_dir(self.data_dir)
        self._store.append([deleted(meta)])
        self._deleting.pop(meta.name, None)
        for path in renamed:
            self._remove_tree(path)

    def _remove_tree(self, path: Path) -> None:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("cannot remove %s: %s; retrying later", path, error)
            self._doomed.append(path)

    def add_partitions(self, name: str, total_partitions: int) -> TopicMetadata:
        meta = self._require_topic(name)
        if total_partitions <= meta.partitions:
            raise InvalidPartitionsError(
                f"topic {name} has {meta.partitions} partitions; cannot go to {total_partitions}"
            )
        updated = TopicMetadata(meta.name, meta.topic_id, total_partitions, dict(meta.configs))
        return self.begin_creation([NewPartitions(updated, meta.partitions)]).run()[0]

    def alter_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicMetadata:
        """Replace the topic's config overrides (AlterConfigs semantics; merge first for
        IncrementalAlterConfigs). Stored before it applies: a failed write changes nothing."""
        meta = self._require_topic(name)
        if name in self._reserved:
            raise TopicBusyError(f"topic {name} is being changed; retry")
        overrides = dict(configs)
        config = LogConfig.from_kafka_configs(overrides, base=self._default_config)
        updated = TopicMetadata(meta.name, meta.topic_id, meta.partitions, overrides)
        self._store.append([put(updated)])
        self._topics[name] = updated
        self._configs[name] = config
        for partition in range(meta.partitions):
            self._logs[(name, partition)].update_config(config)
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
        self._store.compact()  # the next start reads one snapshot
        self._store.close()
        self._closed = True
        write_atomic(self.data_dir / CLEAN_SHUTDOWN_MARKER, b"")
