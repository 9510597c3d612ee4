"""Plain value types the storage engine hands to its callers (results, reads, reports)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from types import TracebackType


@dataclass(frozen=True)
class AppendResult:
    """Where an append landed.

    ``duplicate`` is True for an idempotent retry: nothing was written and the offsets are
    those the original batch got.
    """

    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 when the topic uses CreateTime
    log_start_offset: int
    duplicate: bool = False


@dataclass(frozen=True)
class FileRegion:
    """A byte range of an open file, ready for ``os.sendfile(sock, fd, position, size)``."""

    fd: int
    position: int
    size: int


class LogRead:
    """Whole batches returned by ``PartitionLog.read``; a context manager.

    The regions' file descriptors are private duplicates owned by this object, so they stay
    valid while the caller sends them even if the log closes, rolls or deletes the segment
    meanwhile. ``close()`` (or leaving the ``with`` block) releases them.
    """

    __slots__ = ("_closed", "high_offset", "regions", "size")

    def __init__(self, regions: list[FileRegion], high_offset: int) -> None:
        self.regions = regions
        self.size = sum(r.size for r in regions)
        self.high_offset = high_offset  # offset after the last batch returned
        self._closed = False

    def to_bytes(self) -> bytes:
        """Copy the batches into memory (for callers that cannot use sendfile)."""
        if self._closed:
            raise ValueError("LogRead is closed")
        parts = []
        for region in self.regions:
            data = os.pread(region.fd, region.size, region.position)
            if len(data) != region.size:
                raise OSError(f"short read: {len(data)} of {region.size} bytes")
            parts.append(data)
        return b"".join(parts)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for region in self.regions:
            os.close(region.fd)

    def __enter__(self) -> LogRead:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close must not leak descriptors
        if not getattr(self, "_closed", True):
            self.close()


@dataclass(frozen=True)
class TopicMetadata:
    """What the broker persists about a topic (config overrides only, not defaults)."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass
class RecoveryEvent:
    """One repair made while opening a partition (truncated tail, rebuilt index, ...)."""

    topic: str
    partition: int
    action: str  # "truncated", "rebuilt-index", "deleted-segment", "removed-file"
    detail: str
    bytes_dropped: int = 0


@dataclass
class RecoveryReport:
    """What recovery did when the LogManager opened its data directory."""

    clean_shutdown: bool = False
    partitions_opened: int = 0
    segments_scanned: int = 0
    events: list[RecoveryEvent] = field(default_factory=list)

    @property
    def bytes_dropped(self) -> int:
        return sum(e.bytes_dropped for e in self.events)


@dataclass
class RetentionReport:
    """What one ``enforce_retention`` pass deleted or rolled."""

    segments_deleted: int = 0
    bytes_deleted: int = 0
    segments_rolled: int = 0
    #: idempotent producer ids forgotten (idle for producer.id.expiration.ms)
    producers_expired: int = 0
    # (topic, partition) -> new log start offset, for partitions whose start moved.
    log_start_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
