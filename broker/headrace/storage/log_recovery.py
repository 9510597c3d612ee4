"""Opening a partition log, and recovering it after a crash.

On open every segment after the last durable recovery point (or nothing after a clean
shutdown) is verified by CRC; a torn or corrupt tail is truncated, damaged indexes are rebuilt,
an interrupted compaction swap is finished or discarded, and the producer state is reloaded
from its newest snapshot plus the batch headers after it. Each repair is reported as a
:class:`~headrace.storage.results.RecoveryEvent`.
"""

from __future__ import annotations

import os
from pathlib import Path

from headrace.storage.cleaner import CLEANED_SUFFIX, SWAP_SUFFIX, CleanerCheckpoint
from headrace.storage.epoch_cache import CHECKPOINT_NAME
from headrace.storage.file_batches import FileBatchScanner, ScanOutcome, read_header
from headrace.storage.files import TMP_SUFFIX, fsync_dir, write_atomic
from headrace.storage.log_reads import LogReads
from headrace.storage.log_state import STATE_NAME, encode_state
from headrace.storage.producer_state import list_snapshots, replayed_write_time
from headrace.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX, Segment
from headrace.storage.segment import segment_name as segment_name_of

_TRUSTED = 2**63 - 1  # recovery point meaning "clean shutdown: verify nothing"


def make_partition_files(directory: Path) -> None:
    """Any thread: fill a just-made, empty partition directory with what opening an empty log
    writes (an empty first segment and ``partition-state.json``, neither fsynced), without the
    descriptor cache; the log is then opened with ``created=True``, which touches no file.
    Thousands of new partitions are made this way off the event loop."""
    prefix = os.path.join(directory, segment_name_of(0))
    for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
        os.close(os.open(prefix + suffix, os.O_WRONLY | os.O_CREAT, 0o644))
    write_atomic(directory / STATE_NAME, encode_state(0, 0), durable=False)


class LogRecovery(LogReads):
    """A partition log's opening and crash recovery (see the module docstring)."""

    def _open_created(self) -> None:
        """Open a log :func:`make_partition_files` just made: empty, nothing to read or check."""
        fresh = Segment(self.directory, 0, self.files)
        fresh.activate_empty()
        self.segments = [fresh]
        self._bases = [0]
        self._dir_dirty = True  # made durable by the first fsync or by close(), as in _open

    def _open(self, *, clean_shutdown: bool, verify_all: bool) -> None:
        directory = self.directory
        directory.mkdir(parents=True, exist_ok=True)
        self._recover_cleaner_files()
        bases: list[int] = []
        for path in directory.iterdir():
            name = path.name
            if name.endswith((TMP_SUFFIX, ".deleted")):
                path.unlink(missing_ok=True)
                self._report("removed-file", f"leftover {name}", 0)
            elif name.endswith(LOG_SUFFIX) and name[: -len(LOG_SUFFIX)].isdigit():
                bases.append(int(name[: -len(LOG_SUFFIX)]))
        bases.sort()
        for path in directory.iterdir():  # index files whose log is gone
            for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                stem = path.name[: -len(suffix)]
                if path.name.endswith(suffix) and stem.isdigit() and int(stem) not in bases:
                    path.unlink(missing_ok=True)
        state = self._read_state()
        if state is None and bases:
            self._report(
                "rebuilt-index",
                f"{STATE_NAME} unreadable; log start reset to the first segment",
                0,
            )
        if not bases:
            start = state["log_start_offset"] if state else 0
            fresh = Segment(directory, start, self.files)
            fresh.create_files()
            self._dir_dirty = True  # made durable by the first fsync or by close()
            self.segments = [fresh]
        else:
            self.segments = [Segment(directory, b, self.files) for b in bases]
        self._bases = [s.base_offset for s in self.segments]
        if clean_shutdown and not verify_all:
            recovery_point = _TRUSTED
        elif state is not None and not verify_all:
            recovery_point = state["recovery_point"]
        else:
            recovery_point = -1
        self._recover_segments(recovery_point)
        self._init_rolling_reference()
        end = self.log_end_offset
        log_start = self.segments[0].base_offset
        if state is not None:
            log_start = max(log_start, state["log_start_offset"])
        self._log_start = min(log_start, end)
        self._recovery_point = min(state["recovery_point"] if state else 0, end)
        if state is None or state["log_start_offset"] != self._log_start:
            self._write_state(durable=bool(bases))
        # Recovery may have rewritten indexes without fsync. A partition without segments
        # (brand new) has nothing to lose: its files are made again if a crash loses them, so
        # an idle close() need not sync it (thousands of new topics would cost seconds).
        self._dirty = bool(bases) and (self._dirty or not clean_shutdown or verify_all)
        if not self.epoch_cache.load() and (directory / CHECKPOINT_NAME).exists():
            self._report("rebuilt-index", "leader-epoch-checkpoint unreadable; cleared", 0)
        self.epoch_cache.truncate_from_end(end)
        self.epoch_cache.truncate_from_start(self._log_start)
        self._load_producer_state()
        self._cleaner_checkpoint = CleanerCheckpoint.load(directory)
        if self._cleaner_checkpoint.first_dirty > end:  # the tail was lost in recovery
            self._cleaner_checkpoint.truncate(end)
            self._cleaner_checkpoint.save(directory)

    def _recover_segments(self, recovery_point: int) -> None:
        interval = self._config.index_interval_bytes
        index = 0
        while index < len(self.segments):
            segment = self.segments[index]
            is_last = index == len(self.segments) - 1
            next_base = None if is_last else self.segments[index + 1].base_offset
            # The last segment's end is unknown until scanned: after an unclean stop, scan it.
            if next_base is None:
                must_scan = recovery_point != _TRUSTED
            else:
                must_scan = next_base > recovery_point
            outcome: ScanOutcome | None = None
            if is_last and not must_scan:
                outcome = segment.load_active(index_interval=interval)
                if outcome is None:
                    self._report("rebuilt-index", f"{segment.index_path.name} unusable", 0)
            elif not is_last and not must_scan:
                assert next_base is not None
                if segment.load_sealed(next_base):
                    index += 1
                    continue
                self._report("rebuilt-index", f"{segment.index_path.name} unusable", 0)
            if outcome is None:
                outcome = segment.rebuild(verify_crc=True, index_interval=interval)
                self.segments_scanned += 1
            damaged = outcome.problem is not None
            if not damaged and next_base is not None and segment.next_offset != next_base:
                outcome.problem = (
                    f"ends at offset {segment.next_offset}, next segment at {next_base}"
                )
                damaged = True
            if damaged:
                self._truncate_damage(index, segment, outcome)
                return
            if is_last:
                segment.write_indexes(durable=False)
            else:
                segment.seal(durable=False)
            index += 1

    def _init_rolling_reference(self) -> None:
        """After a restart the segment's age is judged by its first batch's timestamp (as Kafka
        does), capped at now so a future timestamp cannot postpone the roll."""
        active = self._active
        if active.size == 0:
            active.rolling_timestamp_ms = None
            return
        now = self._clock_ms()
        first = read_header(active.log_fd(), 0)
        stamp = first.max_timestamp if first is not None else -1
        active.rolling_timestamp_ms = min(stamp, now) if stamp >= 0 else now

    def _truncate_damage(self, index: int, segment: Segment, outcome: ScanOutcome) -> None:
        """Cut ``segment`` at its last valid batch and drop every later segment."""
        file_size = os.fstat(segment.log_fd()).st_size
        dropped = file_size - outcome.valid_end
        os.ftruncate(segment.log_fd(), outcome.valid_end)
        os.fsync(segment.log_fd())
        later = self.segments[index + 1 :]
        for other in later:
            dropped += other.log_path.stat().st_size
            other.delete_files()
        del self.segments[index + 1 :]
        del self._bases[index + 1 :]
        fsync_dir(self.directory)
        segment.write_indexes(durable=True)
        detail = (
            f"{segment.log_path.name}: {outcome.problem}; kept {outcome.valid_end} bytes, "
            f"log now ends at offset {segment.next_offset}"
        )
        if later:
            detail += f"; deleted {len(later)} later segment(s)"
        self._report("truncated", detail, dropped)

    def _load_producer_state(self) -> None:
        """Newest usable snapshot at or below the log end, then replay batch headers after it."""
        end = self.log_end_offset
        now = self._clock_ms()
        state = self.producer_state
        start = -1
        written_ms = -1  # when the snapshot the replay starts from was written
        state.clear()
        for offset, path in reversed(list_snapshots(self.directory)):
            if offset > end:
                path.unlink(missing_ok=True)
                continue
            try:
                start, written_ms = state.load_snapshot(path.read_bytes(), now)
                break
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                self._report("rebuilt-index", f"producer snapshot {path.name} unreadable", 0)
        # Aborted ranges after the snapshot are rebuilt by the replay below, as the producers'
        # open transactions are.
        self.txn_index.load(replay_from=max(start, 0))
        for segment in self.segments:
            if segment.next_offset <= start or segment.size == 0:
                continue
            position = 0
            if start > segment.base_offset:
                found = self._find_batch(segment, start)
                if found is None:
                    continue
                position = found[0]
            scanner = FileBatchScanner(
                segment.log_fd(), segment.size, start=position, verify_crc=False
            )
            for header in scanner:
                if header.base_offset < start:
                    continue
                write_ms = replayed_write_time(header, now, written_ms)
                if header.is_control:
                    batch = os.pread(segment.log_fd(), header.size, header.position)
                    self._apply_marker(
                        header, batch, header.base_offset, segment.base_offset, write_ms
                    )
                else:
                    state.observe(header, write_ms)
        # Entries expired while the broker was down (or before a truncation) are not restored.
        expired = state.remove_expired(now)
        if expired:
            self._dirty = True  # so even an otherwise idle close() writes the smaller snapshot
        state.changed_since_snapshot = (start != end and bool(state.producers)) or expired > 0

    def _recover_cleaner_files(self) -> None:
        """Finish or discard a cleaning interrupted by a crash. A ``<base>.log.swap`` means the
        cleaned data was durable before anything was deleted: complete the swap (delete the
        segments it covers, move it and its indexes to the final names). Index ``.swap`` files
        without it belong to a log already moved. ``.cleaned`` files without a ``.log.swap``
        were never committed and are deleted."""
        directory = self.directory
        swap_log_suffix = LOG_SUFFIX + SWAP_SUFFIX
        changed = False
        for path in sorted(directory.iterdir()):
            stem = path.name[: -len(swap_log_suffix)]
            if path.name.endswith(swap_log_suffix) and stem.isdigit():
                self._complete_swap(int(stem), path)
                changed = True
        for path in directory.iterdir():
            name = path.name
            if name.endswith(SWAP_SUFFIX):
                os.replace(path, directory / name[: -len(SWAP_SUFFIX)])
                changed = True
            elif name.endswith(CLEANED_SUFFIX):
                path.unlink(missing_ok=True)
                self._report("removed-file", f"uncommitted cleaning output {name}", 0)
                changed = True
        if changed:
            fsync_dir(directory)

    def _complete_swap(self, base: int, swap: Path) -> None:
        directory = self.directory
        fd = os.open(swap, os.O_RDONLY)
        try:
            scanner = FileBatchScanner(
                fd, os.fstat(fd).st_size, verify_crc=False, expected_base=base
            )
            end = base
            for header in scanner:
                end = header.next_offset
        finally:
            os.close(fd)
        replaced = 0
        for path in directory.iterdir():
            stem = path.name[: -len(LOG_SUFFIX)]
            if path.name.endswith(LOG_SUFFIX) and stem.isdigit() and base < int(stem) < end:
                for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                    (directory / f"{stem}{suffix}").unlink(missing_ok=True)
                replaced += 1
        name = segment_name_of(base)
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            final = directory / f"{name}{suffix}"
            for candidate in (
                directory / f"{name}{suffix}{SWAP_SUFFIX}",
                directory / f"{name}{suffix}{CLEANED_SUFFIX}",
            ):
                if candidate.exists():
                    os.replace(candidate, final)
                    break
            else:
                final.unlink(missing_ok=True)  # rebuilt from the log when the segment opens
        fsync_dir(directory)  # the replaced segments are gone before the new one takes over
        os.replace(swap, directory / f"{name}{LOG_SUFFIX}")
        self._report(
            "completed-swap",
            f"cleaned segment {name} (offsets {base}..{end}) replaced {replaced + 1} segment(s)",
            0,
        )
