"""Shrinking a partition log: DeleteRecords, retention by time and size, producer expiry,
and truncation (a follower cutting its log back to its leader's).

Retention and DeleteRecords drop whole sealed segments from the front; truncation cuts from
the end, down to a batch boundary, and reloads the producer state for the shorter log.
"""

from __future__ import annotations

from headrace.storage.cleaner import CleanerCheckpoint
from headrace.storage.errors import OffsetOutOfRangeError
from headrace.storage.file_batches import read_header
from headrace.storage.files import fsync_dir
from headrace.storage.log_recovery import LogRecovery
from headrace.storage.producer_state import list_snapshots
from headrace.storage.segment import NO_TIMESTAMP, Segment


class LogRetention(LogRecovery):
    """A partition log's deletion, retention and truncation (see the module docstring)."""

    # -- deletion and retention -----------------------------------------------------------------
    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start to ``offset`` and drop whole segments below it."""
        end = self.log_end_offset
        if offset < 0 or offset > end:
            raise OffsetOutOfRangeError(f"offset {offset} is outside [0, {end}]")
        if offset <= self._log_start:
            return self._log_start
        self._log_start = offset
        self._write_state()
        self._delete_segments_below_start()
        self.epoch_cache.truncate_from_start(self._log_start)
        return self._log_start

    def _delete_segments_below_start(self) -> tuple[int, int]:
        doomed = 0
        while (
            doomed + 1 < len(self.segments)
            and self.segments[doomed + 1].base_offset <= self._log_start
        ):
            doomed += 1
        return self._delete_oldest(doomed)

    def _delete_oldest(self, count: int) -> tuple[int, int]:
        """Delete the ``count`` oldest (sealed) segments; returns (segments, bytes)."""
        count = min(count, len(self.segments) - 1)
        if count <= 0:
            return 0, 0
        if self.producer_state.changed_since_snapshot:
            self.producer_state.write_snapshot(
                self.directory,
                self.log_end_offset,
                durable=self._durable_policy,
                now_ms=self._clock_ms(),
            )
        self._generation += 1
        removed = self.segments[:count]
        del self.segments[:count]
        del self._bases[:count]
        self.txn_index.drop_before(self.segments[0].base_offset)
        freed = 0
        for segment in removed:
            freed += segment.size
            segment.delete_files()
            if segment in self._unflushed_sealed:
                self._unflushed_sealed.remove(segment)
        if self.segments[0].base_offset > self._log_start:
            self._log_start = self.segments[0].base_offset
            self._write_state()
            self.epoch_cache.truncate_from_start(self._log_start)
        return count, freed

    def enforce_retention(self, now_ms: int) -> tuple[int, int, int]:
        """Roll an aged active segment, then delete whole segments past retention.ms or beyond
        retention.bytes. Returns (segments deleted, bytes deleted, segments rolled)."""
        rolled = int(self.roll_if_aged(now_ms))
        deleted, freed = self._delete_segments_below_start()
        config = self._config
        if not config.deletes_by_retention:
            return deleted, freed, rolled
        doomed = 0
        if config.retention_ms >= 0:
            cutoff = now_ms - config.retention_ms
            while (
                doomed < len(self.segments) and self._segment_time(self.segments[doomed]) < cutoff
            ):
                doomed += 1
            if doomed == len(self.segments):
                # Everything expired, including the active segment: roll so it can go too.
                if self._active.size:
                    self.roll()
                    rolled += 1
                doomed = len(self.segments) - 1
        if config.retention_bytes >= 0:
            excess = self.size_bytes - config.retention_bytes
            by_size = 0
            while by_size < len(self.segments) - 1 and excess >= self.segments[by_size].size:
                excess -= self.segments[by_size].size
                by_size += 1
            doomed = max(doomed, by_size)
        more, more_bytes = self._delete_oldest(doomed)
        return deleted + more, freed + more_bytes, rolled

    def expire_producers(self, now_ms: int) -> int:
        """Forget idempotent producers whose last write is at least ``producer.id.expiration.ms``
        old (the periodic retention pass calls this); returns how many were forgotten."""
        expired = self.producer_state.remove_expired(now_ms)
        if expired:
            self._dirty = True  # so even an otherwise idle close() writes the smaller snapshot
        return expired

    def _segment_time(self, segment: Segment) -> int:
        if segment.max_timestamp != NO_TIMESTAMP:
            return segment.max_timestamp
        if segment.size == 0:
            return 2**63 - 1  # an empty segment never expires
        return int(segment.log_path.stat().st_mtime * 1000)

    # -- truncation -----------------------------------------------------------------------------
    def truncate_to(self, offset: int) -> None:
        """Remove everything at and after ``offset`` (a batch containing it goes entirely)."""
        if offset >= self.log_end_offset:
            return
        if offset < self._log_start:
            self.truncate_fully_and_start_at(offset)
            return
        index = self._segment_index_for(offset)
        if index == 0 and offset <= self.segments[0].base_offset:
            self.truncate_fully_and_start_at(offset)
            return
        self._generation += 1
        self._cleaner_checkpoint.truncate(offset)
        self._cleaner_checkpoint.save(self.directory)
        for segment in self.segments[index + 1 :]:
            segment.delete_files()
        del self.segments[index + 1 :]
        del self._bases[index + 1 :]
        segment = self.segments[index]
        if not segment.is_active:
            outcome = segment.load_active(index_interval=self._config.index_interval_bytes)
            if outcome is None or outcome.problem:
                segment.rebuild(verify_crc=False, index_interval=self._config.index_interval_bytes)
        found = self._find_batch(segment, offset)
        if found is not None:
            header = read_header(segment.log_fd(), found[0])
            segment.truncate_after(header, index_interval=self._config.index_interval_bytes)
        segment.write_indexes(durable=False)
        self._unflushed_sealed = [s for s in self._unflushed_sealed if s in self.segments[:-1]]
        end = self.log_end_offset
        self._recovery_point = min(self._recovery_point, end)
        # A batch straddling the log start (DeleteRecords mid-batch) may take the end below it.
        self._log_start = min(self._log_start, end)
        self._write_state()
        self.epoch_cache.truncate_from_end(end)
        self._load_producer_state()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and restart the log empty at ``offset`` (replica rebuild)."""
        self._generation += 1
        self._cleaner_checkpoint = CleanerCheckpoint(first_dirty=offset)
        self._cleaner_checkpoint.save(self.directory)
        for segment in self.segments:
            segment.delete_files()
        self.segments.clear()
        self._bases.clear()
        self._unflushed_sealed.clear()
        fresh = Segment(self.directory, offset, self.files)
        fresh.create_files()
        self.segments.append(fresh)
        self._bases.append(offset)
        fsync_dir(self.directory)
        self._log_start = offset
        self._recovery_point = offset
        self._write_state()
        self.epoch_cache.clear()
        self.producer_state.clear()
        self.txn_index.clear()
        for _, path in list_snapshots(self.directory):
            path.unlink(missing_ok=True)
