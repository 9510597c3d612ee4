"""A partition log's side of compaction: whether a cleaning pass is due, and swapping its
cleaned segments in, crash-safely.

The pass itself (the key map, the cleaned segments) is cleaner.py's and may run on any thread;
preparing it and swapping its output in run on the log's thread. A crash in the middle of a
swap is finished or undone on the next open (log_recovery).
"""

from __future__ import annotations

import os

from headrace.storage.cleaner import (
    CLEANED_SUFFIX,
    DEFAULT_MAX_MAP_KEYS,
    CleanerCheckpoint,
    CleaningTask,
    SegmentStats,
    SourceSegment,
    cleanable_count,
    cleaning_due,
    swap_name,
)
from headrace.storage.errors import StorageError
from headrace.storage.file_batches import read_header
from headrace.storage.files import fsync_dir
from headrace.storage.log_retention import LogRetention
from headrace.storage.log_state import log
from headrace.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, Segment
from headrace.storage.segment import segment_name as segment_name_of


class LogCleaning(LogRetention):
    """A partition log's compaction passes (see the module docstring)."""

    @property
    def cleaner_checkpoint(self) -> CleanerCheckpoint:
        return self._cleaner_checkpoint

    def prepare_cleaning(
        self, now_ms: int, *, max_map_keys: int = DEFAULT_MAX_MAP_KEYS
    ) -> CleaningTask | None:
        """A cleaning pass over the cleanable sealed segments if one is due, else None.

        Run the task's ``run()`` on any thread, then ``finish()`` on this log's thread.
        """
        config = self._config
        if self._closed or not config.compacts or len(self.segments) < 2:
            return None
        sealed = self.segments[:-1]
        stats = [
            SegmentStats(s.base_offset, s.next_offset, s.size, self._segment_time(s))
            for s in sealed
        ]
        count = cleanable_count(stats, now_ms, config.min_compaction_lag_ms)
        # Nothing at or past an undecided transaction is cleaned (Kafka bounds the cleanable
        # range by the first unstable offset): its records may still be aborted.
        unstable = self.producer_state.first_unstable_offset(self.log_end_offset)
        while count and unstable is not None and sealed[count - 1].next_offset > unstable:
            count -= 1
        if not count:
            return None
        checkpoint = self._cleaner_checkpoint
        first_dirty = max(checkpoint.first_dirty, self.segments[0].base_offset)
        first_dirty_ts: int | None = None
        for segment in sealed[:count]:
            if segment.next_offset > first_dirty:
                header = read_header(segment.log_fd(), 0)
                stamps = [] if header is None else [header.base_timestamp, header.max_timestamp]
                first_dirty_ts = min((t for t in stamps if t >= 0), default=None)
                break
        if not cleaning_due(
            stats[:count],
            first_dirty,
            config,
            now_ms,
            first_dirty_timestamp_ms=first_dirty_ts,
            tombstone_expiry_ms=checkpoint.tombstone_expiry_ms,
        ):
            return None
        sources = [
            SourceSegment(
                s.log_path, s.base_offset, s.next_offset, s.size, stat.newest_timestamp_ms
            )
            for s, stat in zip(sealed[:count], stats[:count], strict=True)
        ]
        return CleaningTask(
            topic=self._topic,
            partition=self._partition,
            directory=self.directory,
            config=config,
            now_ms=now_ms,
            first_dirty=first_dirty,
            sources=sources,
            producer_last_offsets={
                pid: entry.batches[-1].last_offset
                for pid, entry in self.producer_state.producers.items()
                if entry.batches
            },
            checkpoint=CleanerCheckpoint(
                checkpoint.first_dirty, list(checkpoint.cleaned), checkpoint.tombstone_expiry_ms
            ),
            generation=self._generation,
            max_map_keys=max_map_keys,
            on_finish=self._finish_cleaning,
            aborted=tuple(
                (entry.producer_id, entry.first_offset, entry.last_offset)
                for entry in self.txn_index.entries
            ),
        )

    def clean(self, now_ms: int | None = None) -> CleaningTask | None:
        """Prepare, run and finish a cleaning pass on this thread (tests, simple callers)."""
        task = self.prepare_cleaning(self._clock_ms() if now_ms is None else now_ms)
        if task is not None:
            task.run()
            task.finish()
        return task

    def _finish_cleaning(self, task: CleaningTask) -> bool:
        if task.error is not None:
            log.warning(
                "%s-%d: cleaning failed: %s", self._topic, self._partition, task.error
            )
            return False
        if self._closed or task.generation != self._generation:
            log.info("%s-%d: log changed during cleaning; discarded", self._topic, self._partition)
            task.remove_outputs()
            return False
        try:
            for group in task.outputs:
                self._swap_in(group.base_offset, group.next_offset, group.source_bases)
        except Exception:
            self._reload_after_failed_swap()
            raise
        self._generation += 1
        self._dirty = True
        self._cleaner_checkpoint.record_pass(
            task.cleaned_end, self._clock_ms(), task.tombstone_expiry_ms
        )
        self._cleaner_checkpoint.save(self.directory)
        return True

    def _reload_after_failed_swap(self) -> None:
        """An error in the middle of a swap leaves the files ahead of memory: do what a restart
        would (finish or discard the swap, reopen the segments from disk). If even that fails,
        the partition goes offline until the broker restarts."""
        log.error("%s-%d: cleaning swap failed; reloading from disk", self._topic, self._partition)
        self._generation += 1
        for segment in self.segments:
            segment.forget_files()
        self._unflushed_sealed.clear()
        self._unflushed_records = 0
        try:
            self._open(clean_shutdown=False, verify_all=False)
        except BaseException:
            self._closed = True
            raise

    def _fault(self, step: str) -> None:
        if self.cleaner_fault is not None:
            self.cleaner_fault(step)

    def _swap_in(self, base: int, next_offset: int, source_bases: tuple[int, ...]) -> None:
        """Replace the segments ``source_bases`` by the cleaned ``base`` segment, crash-safely:
        a ``.log.swap`` file is the commit point (see ``_recover_cleaner_files``)."""
        directory = self.directory
        first = self._bases.index(base)
        count = len(source_bases)
        if tuple(self._bases[first : first + count]) != source_bases:
            raise StorageError(f"cleaned segment {base} no longer matches the log")
        suffixes = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)  # the log first: commit point
        self._fault("before-swap")
        for suffix in suffixes:
            cleaned = directory / f"{segment_name_of(base)}{suffix}{CLEANED_SUFFIX}"
            os.replace(cleaned, swap_name(directory, base, suffix))
            self._fault(f"swap{suffix}")
        fsync_dir(directory)
        self._fault("swap-durable")
        old = self.segments[first : first + count]
        for segment in old:
            segment.forget_files()
            if segment in self._unflushed_sealed:
                self._unflushed_sealed.remove(segment)
        for segment in old[1:]:
            segment.delete_files()
            self._fault("deleted-source")
        fsync_dir(directory)
        self._fault("sources-deleted")
        for suffix in suffixes:
            final = directory / f"{segment_name_of(base)}{suffix}"
            os.replace(swap_name(directory, base, suffix), final)
            self._fault(f"final{suffix}")
        fsync_dir(directory)
        self._fault("swapped")
        new = Segment(directory, base, self.files)
        if not new.load_sealed(next_offset):
            self._repair_index(new, "cleaned segment index unusable")
        self.segments[first : first + count] = [new]
        self._bases[first : first + count] = [base]
