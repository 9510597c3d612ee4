"""Creating topics (and partitions) in steps, so the slow ones can run off the caller's thread.

Making thousands of partition directories and fsyncing the metadata is slow; publishing new
logs must happen on the thread that owns the :class:`~headrace.storage.LogManager` (its maps
and its descriptor cache are not thread-safe). A :class:`TopicCreation` therefore runs as:

1. ``make_directories()`` — any thread: notes the directories in the topic log (a crash then
   lets the next start remove them), makes them and each one's empty log files, fsyncs the
   data directory;
2. ``open_logs(limit)`` — owner thread, in slices: opens each new partition log (in memory
   only: its files are there already);
3. ``commit()`` — any thread: one ``put`` record per topic, one write, one fsync;
4. ``publish()`` — owner thread: the topics become visible, all at once.

Any failure before ``publish`` is undone by ``abort()`` (owner thread: closes the opened logs)
then ``remove_directories()`` (any thread), so a failed creation leaves neither metadata nor
directories. ``cancel()`` (any thread) makes a running ``make_directories`` stop early.
Nothing is visible to readers until ``publish``, so nothing is acknowledged before it is
durable. ``run()`` does all of it on the calling thread.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from headrace.storage.errors import StorageError
from headrace.storage.files import fsync_dir
from headrace.storage.log_recovery import make_partition_files
from headrace.storage.results import TopicMetadata
from headrace.storage.topic_store import Creating, TopicStore, TopicStoreError, put

if TYPE_CHECKING:
    from headrace.storage.log import PartitionLog


@dataclass(frozen=True, slots=True)
class NewPartitions:
    """A topic's state once created or grown: partitions ``first..meta.partitions-1`` are new."""

    meta: TopicMetadata
    first: int = 0


class CreationCancelled(StorageError):
    """The creation was cancelled (the broker is stopping) before it was committed."""


class TopicCreation:
    """One batch of new topics or partitions (see the module docstring)."""

    def __init__(
        self,
        entries: Sequence[NewPartitions],
        *,
        data_dir: Path,
        store: TopicStore,
        open_partition: Callable[[str, int], PartitionLog],
        publish: Callable[[Sequence[NewPartitions], list[PartitionLog]], None],
        release: Callable[[Sequence[NewPartitions]], None],
    ) -> None:
        self.entries = list(entries)
        self._data_dir = data_dir
        self._store = store
        self._open_partition = open_partition
        self._publish = publish
        self._release = release
        self._todo = [(e.meta.name, p) for e in self.entries
                      for p in range(e.first, e.meta.partitions)]
        self._made: list[Path] = []
        self._opened: list[PartitionLog] = []
        self._token: int | None = None
        self._cancelled = False
        self.committed = False
        self._done = False

    @property
    def partition_count(self) -> int:
        return len(self._todo)

    def cancel(self) -> None:
        self._cancelled = True

    def make_directories(self) -> None:
        try:
            self._token = self._store.begin_creation(
                [Creating(e.meta.name, e.first, e.meta.partitions) for e in self.entries])
            for name, partition in self._todo:
                if self._cancelled:
                    raise CreationCancelled("topic creation cancelled: the broker is stopping")
                path = self._data_dir / f"{name}-{partition}"
                if path.exists():  # left by a creation that crashed: not ours to trust
                    shutil.rmtree(path)
                path.mkdir()
                self._made.append(path)
                make_partition_files(path)
            fsync_dir(self._data_dir)
        except OSError as error:
            raise StorageError(f"cannot create partition directories: {error}") from error

    def open_logs(self, limit: int | None = None) -> bool:
        """Open up to ``limit`` more new partition logs; True once all are open."""
        start = len(self._opened)
        end = len(self._todo) if limit is None else min(len(self._todo), start + limit)
        try:
            for name, partition in self._todo[start:end]:
                self._opened.append(self._open_partition(name, partition))
        except OSError as error:
            raise StorageError(f"cannot create partition logs: {error}") from error
        return len(self._opened) == len(self._todo)

    def commit(self) -> None:
        if self._cancelled:
            raise CreationCancelled("topic creation cancelled: the broker is stopping")
        self._store.append([put(e.meta) for e in self.entries])
        self.committed = True

    def publish(self) -> list[TopicMetadata]:
        assert self.committed and not self._done
        self._done = True
        self._finish_intent()
        self._publish(self.entries, self._opened)
        self._release(self.entries)
        return [e.meta for e in self.entries]

    def abort(self) -> None:
        """Owner thread: close what was opened and give the names back (not after commit)."""
        if self._done:
            return
        self._done = True
        for partition_log in self._opened:
            partition_log.close()
        self._opened.clear()
        self._release(self.entries)

    def remove_directories(self) -> None:
        """Any thread, after ``abort``: remove the directories this creation made."""
        for path in self._made:
            shutil.rmtree(path, ignore_errors=True)
        self._made.clear()
        self._finish_intent()

    def _finish_intent(self) -> None:
        if self._token is not None:
            self._store.end_creation(self._token)
            self._token = None

    def run(self) -> list[TopicMetadata]:
        """Every step on the calling thread (the owner's)."""
        try:
            self.make_directories()
            self.open_logs()
            self.commit()
        except BaseException:
            self.abort()
            self.remove_directories()
            raise
        return self.publish()


__all__ = ["CreationCancelled", "NewPartitions", "TopicCreation", "TopicStoreError"]
