"""Where a lone broker keeps its topic metadata: a snapshot plus an append-only change log.

Rewriting one ``topics.json`` per change made creating N topics cost O(N²) bytes and one fsync
per topic. Instead every change is a record appended to ``topics.log`` and a batch of changes
(all the topics of one CreateTopics or Metadata request) is one write and one fsync; the
snapshot ``topics.json`` is rewritten only when the log is compacted: at start, and when the
log outgrows the snapshot. An append-only log was chosen over batching whole-file rewrites
because its cost per change stays proportional to the change, however many topics exist.

Records are ``length u32 | crc32 u32 | JSON`` (big-endian) and each one states a topic's whole
state (``put``: name, id, partitions, configs; ``deleting``: marked for deletion, directories
may remain; ``deleted``), so replaying a log over any older snapshot gives the same result and
a crash between writing a new snapshot and emptying the log is harmless. ``creating`` records
name partition directories about to be made; one not followed by a ``put`` of its topic (a
crash mid-creation) tells the next start which directories to remove. Only those are written
without an fsync: after a power loss the worst outcome is a leftover directory, warned about.

A torn or corrupt tail (a crash mid-write, a failed write) ends the replay and is cut off before
anything else is appended; a failed append is cut off at once, so the log never holds a good
record after a bad one. Appends take a lock and may come from any thread (the broker makes them
from a worker thread); the state this class keeps is its own, for snapshots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.storage.errors import StorageError
from headrace.storage.files import write_atomic
from headrace.storage.results import TopicMetadata

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "topics.json"
LOG_FILE = "topics.log"
_HEADER = 8
#: Compact at runtime once the log is this large and larger than the snapshot.
COMPACT_MIN_BYTES = 4 * 1024 * 1024


class TopicStoreError(StorageError):
    """Topic metadata could not be written (disk full, I/O error): nothing was changed."""


@dataclass(frozen=True, slots=True)
class Creating:
    """Partition directories ``first..partitions-1`` of ``name`` are being made."""

    name: str
    first: int
    partitions: int


@dataclass
class LoadedTopics:
    """What the snapshot and the log say, once replayed."""

    topics: dict[str, TopicMetadata] = field(default_factory=dict)
    deleting: dict[str, TopicMetadata] = field(default_factory=dict)
    #: Creations that never reached their ``put`` (their directories are leftovers).
    unfinished: list[Creating] = field(default_factory=list)
    #: Bytes of torn or corrupt tail cut off the log.
    torn_bytes: int = 0


def _meta_json(meta: TopicMetadata) -> dict[str, Any]:
    return {
        "name": meta.name,
        "topic_id": str(meta.topic_id),
        "partitions": meta.partitions,
        "configs": dict(meta.configs),
    }


def _meta_of(entry: dict[str, Any]) -> TopicMetadata:
    return TopicMetadata(
        name=str(entry["name"]),
        topic_id=uuid.UUID(str(entry["topic_id"])),
        partitions=int(entry["partitions"]),
        configs={str(k): str(v) for k, v in dict(entry["configs"]).items()},
    )


def put(meta: TopicMetadata) -> dict[str, Any]:
    """The record of a topic's new state (created, grown, reconfigured)."""
    return {"put": _meta_json(meta)}


def deleting(meta: TopicMetadata) -> dict[str, Any]:
    """The record marking a topic for deletion (its directories are removed next)."""
    return {"deleting": _meta_json(meta)}


def deleted(meta: TopicMetadata) -> dict[str, Any]:
    """The record of a finished deletion."""
    return {"deleted": _meta_json(meta)}


def creating(intents: Iterable[Creating]) -> dict[str, Any]:
    return {"creating": [[c.name, c.first, c.partitions] for c in intents]}


def encode(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode()
    return (len(payload).to_bytes(4, "big") + zlib.crc32(payload).to_bytes(4, "big")
            + payload)


def decode_all(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records of a log image and the length of its good prefix."""
    records: list[dict[str, Any]] = []
    position = 0
    while position + _HEADER <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        crc = int.from_bytes(data[position + 4 : position + 8], "big")
        end = position + _HEADER + length
        payload = data[position + _HEADER : end]
        if end > len(data) or zlib.crc32(payload) != crc:
            break
        try:
            record = json.loads(payload)
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
        position = end
    return records, position


class TopicStore:
    """The topic metadata of one data directory (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._snapshot_path = data_dir / SNAPSHOT_FILE
        self._log_path = data_dir / LOG_FILE
        self._lock = threading.Lock()
        self._topics: dict[str, TopicMetadata] = {}
        self._deleting: dict[str, TopicMetadata] = {}
        self._inflight: dict[int, list[Creating]] = {}
        self._next_token = 0
        self._fd = -1
        self._size = 0  # the log's good length: where the next record goes
        self._snapshot_size = 0

    # -- opening ---------------------------------------------------------------------------------
    def load(self) -> LoadedTopics:
        """Read the snapshot and replay the log (cutting a torn tail off); opens for appends."""
        loaded = LoadedTopics()
        if self._snapshot_path.exists():
            data = self._snapshot_path.read_bytes()
            self._snapshot_size = len(data)
            snapshot = json.loads(data)
            for entry in snapshot.get("topics", ()):
                meta = _meta_of(entry)
                loaded.topics[meta.name] = meta
            for entry in snapshot.get("deleting", ()):
                meta = _meta_of(entry)
                loaded.deleting[meta.name] = meta
        self._fd = os.open(self._log_path, os.O_RDWR | os.O_CREAT, 0o644)
        image = _read_all(self._fd)
        records, good = decode_all(image)
        if good < len(image):
            loaded.torn_bytes = len(image) - good
            log.warning("%s: cut off %d bytes of torn or corrupt tail", self._log_path,
                        loaded.torn_bytes)
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        self._size = good
        pending: dict[str, list[Creating]] = {}
        for record in records:
            _replay(record, loaded, pending)
        loaded.unfinished = [c for intents in pending.values() for c in intents]
        self._topics = dict(loaded.topics)
        self._deleting = dict(loaded.deleting)
        return loaded

    # -- appending -------------------------------------------------------------------------------
    def begin_creation(self, intents: Sequence[Creating]) -> int:
        """Note directories about to be made (no fsync); returns a token for end_creation."""
        with self._lock:
            self._append([creating(intents)], durable=False)
            token = self._next_token
            self._next_token += 1
            self._inflight[token] = list(intents)
            return token

    def end_creation(self, token: int) -> None:
        with self._lock:
            self._inflight.pop(token, None)

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Append ``records`` with one write and one fsync; all or nothing (TopicStoreError)."""
        with self._lock:
            self._append(records, durable=True)
            for record in records:
                _apply(record, self._topics, self._deleting)
            if self._size >= COMPACT_MIN_BYTES and self._size > 2 * self._snapshot_size:
                try:
                    self._compact()
                except OSError as error:  # the log still holds everything: compact later
                    log.warning("cannot compact %s: %s", self._log_path, error)

    def compact(self) -> None:
        """Write the snapshot and empty the log (at start; at runtime when the log grows)."""
        with self._lock:
            try:
                self._compact()
            except OSError as error:
                log.warning("cannot compact %s: %s", self._log_path, error)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    # -- under the lock --------------------------------------------------------------------------
    def _append(self, records: Sequence[dict[str, Any]], *, durable: bool) -> None:
        if self._fd < 0:
            raise TopicStoreError("topic metadata is closed")
        data = b"".join(encode(r) for r in records)
        try:
            if os.fstat(self._fd).st_size != self._size:
                os.ftruncate(self._fd, self._size)  # a failed append's leftovers
            self.write(self._fd, data, self._size)
            if durable:
                os.fsync(self._fd)
        except OSError as error:
            # If this fails too, the next append cuts it off (the size check above).
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise TopicStoreError(
                f"cannot write topic metadata to {self._log_path}: {error}") from error
        self._size += len(data)

    @staticmethod
    def write(fd: int, data: bytes, offset: int) -> None:
        """Write all of ``data`` at ``offset`` (the seam tests fail with ENOSPC)."""
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written

    def _compact(self) -> None:
        snapshot = {
            "version": 2,
            "topics": [_meta_json(m) for m in sorted(self._topics.values(),
                                                     key=lambda m: m.name)],
            "deleting": [_meta_json(m) for m in self._deleting.values()],
        }
        data = json.dumps(snapshot, indent=1).encode()
        write_atomic(self._snapshot_path, data)
        self._snapshot_size = len(data)
        os.ftruncate(self._fd, 0)
        self._size = 0
        inflight = [c for intents in self._inflight.values() for c in intents]
        if inflight:  # still being made: a crash must still find them
            self._append([creating(inflight)], durable=False)
        os.fsync(self._fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks = []
    offset = 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _apply(
    record: dict[str, Any],
    topics: dict[str, TopicMetadata],
    deleting_: dict[str, TopicMetadata],
) -> None:
    if "put" in record:
        meta = _meta_of(record["put"])
        topics[meta.name] = meta
        deleting_.pop(meta.name, None)
    elif "deleting" in record:
        meta = _meta_of(record["deleting"])
        topics.pop(meta.name, None)
        deleting_[meta.name] = meta
    elif "deleted" in record:
        meta = _meta_of(record["deleted"])
        topics.pop(meta.name, None)
        deleting_.pop(meta.name, None)


def _replay(
    record: dict[str, Any], loaded: LoadedTopics, pending: dict[str, list[Creating]]
) -> None:
    if "creating" in record:
        for name, first, partitions in record["creating"]:
            pending.setdefault(str(name), []).append(
                Creating(str(name), int(first), int(partitions)))
        return
    _apply(record, loaded.topics, loaded.deleting)
    for kind in ("put", "deleting", "deleted"):
        if kind in record:
            pending.pop(str(record[kind]["name"]), None)
