"""Idempotent-producer state per partition (KIP-98; Kafka's ProducerStateManager).

For every producer id the partition remembers the epoch and the last five batches'
(first sequence, last sequence, first offset, last offset). A leader append is checked against
it: a retry of a remembered batch is answered with its original offsets, a gap in sequences or a
stale epoch is refused. The state is snapshotted to ``<offset>.snapshot`` files and rebuilt from
batch headers after the newest usable snapshot.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from headrace.storage.batch import BatchHeader, increment_sequence
from headrace.storage.errors import (
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
)
from headrace.storage.files import write_atomic

log = logging.getLogger(__name__)

BATCHES_RETAINED = 5  # Kafka keeps the last five batches per producer
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOTS_KEPT = 2


@dataclass(frozen=True, slots=True)
class BatchRecord:
    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: deque[BatchRecord] = field(default_factory=lambda: deque(maxlen=BATCHES_RETAINED))

    def copy(self) -> ProducerEntry:
        return ProducerEntry(self.epoch, deque(self.batches, maxlen=BATCHES_RETAINED))


class ProducerStateManager:
    """Producer id -> ProducerEntry, with validation for the leader path."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self.changed_since_snapshot = False

    # -- leader path -------------------------------------------------------------------------
    def check(self, header: BatchHeader, pending: dict[int, ProducerEntry]) -> BatchRecord | None:
        """Validate an idempotent batch; return the original BatchRecord if it is a retry.

        ``pending`` holds entries already updated by earlier batches of the same append.
        """
        pid = header.producer_id
        entry = pending.get(pid) or self.producers.get(pid)
        epoch, first = header.producer_epoch, header.base_sequence
        last = header.last_sequence
        if entry is None or epoch > entry.epoch or not entry.batches:
            if entry is not None and epoch < entry.epoch:
                raise InvalidProducerEpochError(
                    f"producer {pid} epoch {epoch} is older than {entry.epoch}"
                )
            if first != 0:
                raise OutOfOrderSequenceError(
                    f"producer {pid} epoch {epoch} must start at sequence 0, not {first}"
                )
            return None
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {pid} epoch {epoch} is older than {entry.epoch}"
            )
        for record in entry.batches:
            if record.first_sequence == first and record.last_sequence == last:
                return record
        expected = increment_sequence(entry.batches[-1].last_sequence, 1)
        if first != expected:
            raise OutOfOrderSequenceError(
                f"producer {pid} epoch {epoch}: sequence {first} where {expected} was expected"
            )
        return None

    @staticmethod
    def apply(
        pending: dict[int, ProducerEntry],
        current: ProducerEntry | None,
        header: BatchHeader,
        first_offset: int,
    ) -> None:
        """Record a batch (with its assigned first offset) into ``pending``."""
        pid = header.producer_id
        entry = pending.get(pid)
        if entry is None:
            entry = current.copy() if current is not None else ProducerEntry(header.producer_epoch)
            pending[pid] = entry
        if header.producer_epoch != entry.epoch:
            entry.epoch = header.producer_epoch
            entry.batches.clear()
        entry.batches.append(
            BatchRecord(
                header.base_sequence,
                header.last_sequence,
                first_offset,
                first_offset + header.last_offset_delta,
            )
        )

    def commit(self, pending: dict[int, ProducerEntry]) -> None:
        if pending:
            self.producers.update(pending)
            self.changed_since_snapshot = True

    # -- replica path and rebuild ---------------------------------------------------------------
    def observe(self, header: BatchHeader) -> None:
        """Track a batch already in the log (follower append, rebuild); no validation."""
        if header.producer_id < 0 or header.is_control:
            return
        pending: dict[int, ProducerEntry] = {}
        entry = self.producers.get(header.producer_id)
        if entry is not None and header.producer_epoch < entry.epoch:
            return
        self.apply(pending, entry, header, header.base_offset)
        self.commit(pending)

    def clear(self) -> None:
        self.producers.clear()
        self.changed_since_snapshot = True

    # -- snapshots -------------------------------------------------------------------------------
    def to_snapshot(self, offset: int) -> bytes:
        body = json.dumps(
            {
                "offset": offset,
                "producers": {
                    str(pid): [e.epoch, [list(_as_tuple(b)) for b in e.batches]]
                    for pid, e in self.producers.items()
                },
            },
            separators=(",", ":"),
        ).encode()
        return b"%08x\n" % zlib.crc32(body) + body

    def write_snapshot(self, directory: Path, offset: int, *, durable: bool) -> Path:
        path = directory / snapshot_name(offset)
        write_atomic(path, self.to_snapshot(offset), durable=durable)
        self.changed_since_snapshot = False
        for old in list_snapshots(directory)[:-SNAPSHOTS_KEPT]:
            old[1].unlink(missing_ok=True)
        return path

    def load_snapshot(self, data: bytes) -> int:
        """Replace the state with a snapshot; returns its offset. ValueError if damaged."""
        checksum, _, body = data.partition(b"\n")
        if not checksum or int(checksum, 16) != zlib.crc32(body):
            raise ValueError("snapshot checksum mismatch")
        parsed = json.loads(body)
        producers: dict[int, ProducerEntry] = {}
        for pid, (epoch, batches) in parsed["producers"].items():
            entry = ProducerEntry(int(epoch))
            for b in batches:
                entry.batches.append(BatchRecord(*(int(x) for x in b)))
            producers[int(pid)] = entry
        self.producers = producers
        self.changed_since_snapshot = False
        return int(parsed["offset"])


def _as_tuple(record: BatchRecord) -> tuple[int, int, int, int]:
    return (record.first_sequence, record.last_sequence, record.first_offset, record.last_offset)


def snapshot_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


def list_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """Snapshot files as (offset, path), oldest first."""
    found = []
    for path in directory.glob("*" + SNAPSHOT_SUFFIX):
        stem = path.name[: -len(SNAPSHOT_SUFFIX)]
        if stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)
