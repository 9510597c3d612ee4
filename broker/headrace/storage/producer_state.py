"""Idempotent-producer state per partition (KIP-98; Kafka's ProducerStateManager).

For every producer id the partition remembers the epoch and the last five batches'
(first sequence, last sequence, first offset, last offset). A leader append is checked against
it: a retry of a remembered batch is answered with its original offsets, a gap in sequences or a
stale epoch is refused. The state is snapshotted to ``<offset>.snapshot`` files and rebuilt from
batch headers after the newest usable snapshot.

Entries expire (Kafka's ``producer.id.expiration.ms``, KIP-854): each entry remembers its
producer's last write time — the broker clock when its newest batch was appended — and
``remove_expired`` (the periodic retention pass) and every load drop entries idle for at least
the expiration, so memory and snapshots do not grow with every short-lived producer id seen.
Kafka records the batch's max timestamp instead; that would expire a producer backfilling old
CreateTime timestamps at every pass while it is still writing: harmless in newer Kafka, which
accepts any sequence from an unknown producer (KIP-360), but here such a producer would get
UNKNOWN_PRODUCER_ID, bump its epoch and lose its deduplication at every pass.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from headrace.record import BatchHeader, increment_sequence
from headrace.storage.errors import (
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
    UnknownProducerIdError,
)
from headrace.storage.files import write_atomic

log = logging.getLogger(__name__)

BATCHES_RETAINED = 5  # Kafka keeps the last five batches per producer
DEFAULT_PRODUCER_ID_EXPIRATION_MS = 86_400_000  # Kafka's producer.id.expiration.ms default
_LONG_AGO = -(2**63)
_ATTR_TRANSACTIONAL = 0x10
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
    #: The producer's last write time (ms): the newest of its batches' write times.
    last_write_ms: int = -1
    #: First offset of the producer's ongoing transaction in this partition (-1: none).
    txn_first_offset: int = -1
    #: Epoch of the coordinator that wrote this producer's latest marker here (-1: none).
    coordinator_epoch: int = -1

    def copy(self) -> ProducerEntry:
        return ProducerEntry(
            self.epoch, deque(self.batches, maxlen=BATCHES_RETAINED), self.last_write_ms,
            self.txn_first_offset, self.coordinator_epoch,
        )


def replayed_write_time(header: BatchHeader, now_ms: int, floor_ms: int) -> int:
    """Best estimate of when a batch found in the log (rebuild after a restart or truncation)
    was appended, its append clock being lost: its max timestamp capped at ``now_ms``, but no
    earlier than ``floor_ms`` — the time the snapshot the replay starts from was written, as
    every batch after a snapshot was appended after it. Never later than the truth for a sane
    clock, so a rebuild cannot keep an expired producer alive."""
    stamp = header.max_timestamp
    return max(floor_ms, now_ms if stamp < 0 else min(stamp, now_ms))


class ProducerStateManager:
    """Producer id -> ProducerEntry, with validation for the leader path and expiry."""

    def __init__(self, expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS) -> None:
        if expiration_ms < 0:
            raise ValueError(f"producer id expiration must be >= 0 ms, not {expiration_ms}")
        self.expiration_ms = expiration_ms
        self.producers: dict[int, ProducerEntry] = {}
        #: producer id -> first offset of its ongoing transaction (mirrors the entries)
        self.ongoing: dict[int, int] = {}
        #: (first offset, marker offset) of transactions ended by a marker the high watermark
        #: may not have passed yet: they hold the last stable offset back until it does
        self.unreplicated: list[tuple[int, int]] = []
        self.changed_since_snapshot = False
        # ``producers`` is kept in last-write order while this holds (appends re-insert their
        # entry at the end), so an expiry pass stops at the first live entry: it costs the
        # number of expired entries, not of producers. Replays, whose times are estimates, and
        # a clock stepping back break the order; the next pass sorts once to restore it.
        self._in_write_order = True
        self._newest_write_ms = _LONG_AGO

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
            if first != 0 and entry is None:
                raise UnknownProducerIdError(
                    f"no state for producer {pid} (never seen, or expired): it must start at "
                    f"sequence 0, not {first}"
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
        write_ms: int,
    ) -> None:
        """Record a batch (with its assigned first offset and the time ``write_ms`` it was
        written) into ``pending``."""
        pid = header.producer_id
        entry = pending.get(pid)
        if entry is None:
            entry = current.copy() if current is not None else ProducerEntry(header.producer_epoch)
            pending[pid] = entry
        if header.producer_epoch != entry.epoch:
            entry.epoch = header.producer_epoch
            entry.batches.clear()
            entry.txn_first_offset = -1  # a new epoch's producer aborted what the old began
        elif (
            header.base_sequence == 0
            and entry.batches
            and increment_sequence(entry.batches[-1].last_sequence, 1) != 0
        ):
            # Sequence 0 that does not continue the window: the producer had expired and
            # started afresh (only a replay sees this; the leader had forgotten it already).
            entry.batches.clear()
        entry.last_write_ms = max(entry.last_write_ms, write_ms)
        if header.attributes & _ATTR_TRANSACTIONAL and entry.txn_first_offset < 0:
            entry.txn_first_offset = first_offset
        entry.batches.append(
            BatchRecord(
                header.base_sequence,
                header.last_sequence,
                first_offset,
                first_offset + header.last_offset_delta,
            )
        )

    def commit(self, pending: dict[int, ProducerEntry]) -> None:
        if not pending:
            return
        producers = self.producers
        for pid, entry in pending.items():
            producers.pop(pid, None)  # re-inserted at the end, where the newest writes are
            producers[pid] = entry
            if entry.txn_first_offset >= 0:
                self.ongoing[pid] = entry.txn_first_offset
            else:
                self.ongoing.pop(pid, None)
            if entry.last_write_ms >= self._newest_write_ms:
                self._newest_write_ms = entry.last_write_ms
            else:
                self._in_write_order = False
        self.changed_since_snapshot = True

    # -- expiry ----------------------------------------------------------------------------------
    def is_expired(self, entry: ProducerEntry, now_ms: int) -> bool:
        """Idle for at least the expiration (Kafka's test, ``>=``)."""
        return now_ms - entry.last_write_ms >= self.expiration_ms

    def remove_expired(self, now_ms: int) -> int:
        """Forget producers idle for at least the expiration; returns how many went.

        A later batch from one of them is treated as from an unknown producer. Entries are
        only dropped here (and on load), never while validating an append, as in Kafka."""
        producers = self.producers
        if not self._in_write_order:
            in_order = sorted(producers.items(), key=lambda item: item[1].last_write_ms)
            producers.clear()
            producers.update(in_order)
            self._in_write_order = True
        expired: list[int] = []
        for pid, entry in producers.items():
            if not self.is_expired(entry, now_ms):
                break  # every later entry was written at the same time or later
            if entry.txn_first_offset < 0:  # an open transaction keeps its producer
                expired.append(pid)
        for pid in expired:
            del producers[pid]
        if expired:
            self.changed_since_snapshot = True
        return len(expired)

    # -- replica path and rebuild ---------------------------------------------------------------
    # -- transactions ----------------------------------------------------------------------------
    def first_unstable_offset(self, high_watermark: int) -> int | None:
        """The first offset of a transaction not yet decided below ``high_watermark``: open,
        or ended by a marker not yet replicated (Kafka's ``firstUnstableOffset``)."""
        if self.unreplicated:
            self.unreplicated = [t for t in self.unreplicated if t[1] >= high_watermark]
        candidates = list(self.ongoing.values())
        candidates.extend(first for first, _marker in self.unreplicated)
        return min(candidates) if candidates else None

    def end_transaction(
        self, producer_id: int, producer_epoch: int, marker_offset: int, write_ms: int,
        coordinator_epoch: int = -1,
    ) -> int | None:
        """A marker for ``producer_id`` landed at ``marker_offset``: close its transaction;
        returns the transaction's first offset (None if it had written nothing here)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = ProducerEntry(producer_epoch, last_write_ms=write_ms)
        else:
            self.producers.pop(producer_id)
        if producer_epoch > entry.epoch:
            entry.epoch = producer_epoch
            entry.batches.clear()
        entry.last_write_ms = max(entry.last_write_ms, write_ms)
        entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        first = entry.txn_first_offset
        entry.txn_first_offset = -1
        self.producers[producer_id] = entry
        self.ongoing.pop(producer_id, None)
        self._in_write_order = False
        self.changed_since_snapshot = True
        if first < 0:
            return None
        self.unreplicated.append((first, marker_offset))
        return first

    def observe(self, header: BatchHeader, write_ms: int) -> None:
        """Track a batch already in the log (follower append, rebuild) written at
        ``write_ms``; no validation (markers go through :meth:`end_transaction`)."""
        if header.producer_id < 0 or header.is_control:
            return
        pending: dict[int, ProducerEntry] = {}
        entry = self.producers.get(header.producer_id)
        if entry is not None and header.producer_epoch < entry.epoch:
            return
        self.apply(pending, entry, header, header.base_offset, write_ms)
        self.commit(pending)

    def clear(self) -> None:
        self.producers.clear()
        self.ongoing.clear()
        self.unreplicated.clear()
        self._in_write_order = True
        self._newest_write_ms = _LONG_AGO
        self.changed_since_snapshot = True

    # -- snapshots -------------------------------------------------------------------------------
    def to_snapshot(self, offset: int, written_ms: int) -> bytes:
        body = json.dumps(
            {
                "offset": offset,
                "written_ms": written_ms,
                "producers": {
                    str(pid): [
                        e.epoch, [list(_as_tuple(b)) for b in e.batches], e.last_write_ms,
                        e.txn_first_offset, e.coordinator_epoch,
                    ]
                    for pid, e in self.producers.items()
                },
            },
            separators=(",", ":"),
        ).encode()
        return b"%08x\n" % zlib.crc32(body) + body

    def write_snapshot(self, directory: Path, offset: int, *, durable: bool, now_ms: int) -> Path:
        path = directory / snapshot_name(offset)
        write_atomic(path, self.to_snapshot(offset, now_ms), durable=durable)
        self.changed_since_snapshot = False
        for old in list_snapshots(directory)[:-SNAPSHOTS_KEPT]:
            old[1].unlink(missing_ok=True)
        return path

    def load_snapshot(self, data: bytes, now_ms: int) -> tuple[int, int]:
        """Replace the state with a snapshot; returns its (offset, time written or -1).
        ValueError if damaged. Expired entries are dropped by the caller's ``remove_expired``
        after replaying the log past the snapshot, which may show a later write.

        Snapshots written before expiry existed carry no write times: their entries count as
        written at ``now_ms`` (a full expiration from the restart) rather than guessing older."""
        checksum, _, body = data.partition(b"\n")
        if not checksum or int(checksum, 16) != zlib.crc32(body):
            raise ValueError("snapshot checksum mismatch")
        parsed = json.loads(body)
        producers: dict[int, ProducerEntry] = {}
        for pid, (epoch, batches, *rest) in parsed["producers"].items():
            entry = ProducerEntry(
                int(epoch),
                last_write_ms=int(rest[0]) if rest else now_ms,
                txn_first_offset=int(rest[1]) if len(rest) > 1 else -1,
                coordinator_epoch=int(rest[2]) if len(rest) > 2 else -1,
            )
            for b in batches:
                entry.batches.append(BatchRecord(*(int(x) for x in b)))
            producers[int(pid)] = entry
        self.producers = producers
        self.ongoing = {
            pid: e.txn_first_offset for pid, e in producers.items() if e.txn_first_offset >= 0
        }
        self.unreplicated = []
        self._in_write_order = False  # sorted by the first expiry pass
        self._newest_write_ms = max(
            (e.last_write_ms for e in producers.values()), default=_LONG_AGO
        )
        self.changed_since_snapshot = False
        return int(parsed["offset"]), int(parsed.get("written_ms", -1))


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
