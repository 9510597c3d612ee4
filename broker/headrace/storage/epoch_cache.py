"""The leader epoch cache (KIP-101/279): which leader epoch started at which offset.

Persisted in Kafka's ``leader-epoch-checkpoint`` text format (version, count, then
``epoch start_offset`` lines) whenever it changes; changes are rare (one per leader change).
"""

from __future__ import annotations

from pathlib import Path

from headrace.storage.files import write_atomic

CHECKPOINT_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, path: Path, *, durable: bool = True) -> None:
        self.path = path
        self.durable = durable
        self.entries: list[tuple[int, int]] = []  # (epoch, start offset), both increasing

    def load(self) -> bool:
        """Read the checkpoint; False (and an empty cache) if it is missing or damaged."""
        self.entries = []
        try:
            lines = self.path.read_text().split("\n")
            if lines[0].strip() != "0":
                return False
            count = int(lines[1])
            entries = []
            for line in lines[2 : 2 + count]:
                epoch, start = line.split()
                entries.append((int(epoch), int(start)))
            if len(entries) != count:
                return False
        except (OSError, ValueError, IndexError):
            return False
        self.entries = entries
        return True

    def _save(self) -> None:
        body = "".join(f"{e} {s}\n" for e, s in self.entries)
        write_atomic(self.path, f"0\n{len(self.entries)}\n{body}".encode(), durable=self.durable)

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` begins at ``start_offset`` (ignored unless it is newer)."""
        if epoch < 0 or (self.entries and epoch <= self.entries[-1][0]):
            return
        # A new epoch starting at or before an old one's start supersedes it.
        self.entries = [(e, s) for e, s in self.entries if s < start_offset]
        self.entries.append((epoch, start_offset))
        self._save()

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest epoch <= requested, end offset of that epoch), Kafka's semantics."""
        if epoch == UNDEFINED_EPOCH or not self.entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if epoch == self.entries[-1][0]:
            return epoch, log_end_offset
        higher = next(((e, s) for e, s in self.entries if e > epoch), None)
        if higher is None:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        floor = [(e, s) for e, s in self.entries if e <= epoch]
        if not floor:
            return epoch, higher[1]
        return floor[-1][0], higher[1]

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after ``end_offset`` (log truncated there)."""
        kept = [(e, s) for e, s in self.entries if s < end_offset]
        if kept != self.entries:
            self.entries = kept
            self._save()

    def truncate_from_start(self, start_offset: int) -> None:
        """Log start moved to ``start_offset``: the epoch covering it now starts there."""
        before = [(e, s) for e, s in self.entries if s <= start_offset]
        after = [(e, s) for e, s in self.entries if s > start_offset]
        kept = ([(before[-1][0], start_offset)] if before else []) + after
        if kept != self.entries:
            self.entries = kept
            self._save()

    def clear(self) -> None:
        if self.entries or not self.path.exists():
            self.entries = []
            self._save()
