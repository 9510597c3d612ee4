"""Reading a partition log: the batch holding an offset, whole batches as file regions, the
first batch at a timestamp.

Reads never decode records: they walk batch headers (helped by the sparse offset and time
indexes) and hand back file regions for ``sendfile``. An index entry that points at the wrong
place is repaired on the spot.
"""

from __future__ import annotations

import bisect
import os

from headrace.record.layout import HEADER_SIZE, LOG_OVERHEAD, MAGIC, BatchHeader
from headrace.storage.errors import OffsetOutOfRangeError
from headrace.storage.file_batches import read_header
from headrace.storage.log_state import LogState, log
from headrace.storage.results import FileRegion, LogRead
from headrace.storage.segment import NO_TIMESTAMP, Segment

LATEST_TIMESTAMP = -1  # ListOffsets special timestamps
EARLIEST_TIMESTAMP = -2


class LogReads(LogState):
    """A partition log's reads (see the module docstring)."""

    def _segment_index_for(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._bases, offset) - 1)

    @staticmethod
    def _header_at(fd: int, segment: Segment, position: int) -> BatchHeader | None:
        """The batch header at ``position`` if it is plausible; None at the end or on damage
        (so a bit flip after a trusted clean start can end a read but never loop it)."""
        header = read_header(fd, position)
        if (
            header is None
            or header.magic != MAGIC
            or header.batch_length < HEADER_SIZE - LOG_OVERHEAD
            or position + header.batch_length + LOG_OVERHEAD > segment.size
        ):
            return None
        return header

    def _find_batch(
        self, segment: Segment, offset: int, *, repaired: bool = False
    ) -> tuple[int, int] | None:
        """(position, base offset) of the batch containing ``offset`` in ``segment``."""
        fd = segment.log_fd()
        indexed_offset, position = segment.index_floor(offset)
        header = self._header_at(fd, segment, position)
        if position and not repaired and (header is None or header.base_offset != indexed_offset):
            self._repair_index(segment, f"entry {indexed_offset}@{position} points elsewhere")
            return self._find_batch(segment, offset, repaired=True)
        while position < segment.size:
            header = self._header_at(fd, segment, position)
            if header is None:
                return None
            if header.next_offset > offset:
                return position, header.base_offset
            position += header.size
        return None

    def _repair_index(self, segment: Segment, why: str) -> None:
        was_active = segment.is_active
        outcome = segment.rebuild(
            verify_crc=False, index_interval=self._config.index_interval_bytes
        )
        self.segments_scanned += 1
        if was_active:
            segment.write_indexes(durable=False)
        else:
            segment.seal(durable=False)
        self._report("rebuilt-index", f"{segment.index_path.name}: {why}", 0)
        if outcome.problem:
            log.warning("index rebuild of %s stopped early: %s", segment.log_path, outcome.problem)

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> LogRead:
        """Whole batches starting with the one containing ``offset`` (see PartitionLogAPI)."""
        self._check_open()
        end = self.log_end_offset
        if offset < self._log_start or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self._log_start}, {end}] of "
                f"{self._topic}-{self._partition}"
            )
        limit = end if max_offset is None else min(max_offset, end)
        if offset >= limit:
            return LogRead([], offset)
        regions: list[FileRegion] = []
        total = 0
        high = offset
        index = self._segment_index_for(offset)
        try:
            while index < len(self.segments) and high < limit:
                segment = self.segments[index]
                found = self._find_batch(segment, high)
                if found is None:
                    index += 1
                    continue
                start, _ = found
                position = start
                # Skip whole batches using the sparse index instead of reading every header.
                jump = segment.last_boundary_within(start + max_bytes - total, limit)
                if jump is not None and jump[1] > start:
                    high, position = jump
                    total += position - start
                fd = segment.log_fd()
                while position < segment.size:
                    header = self._header_at(fd, segment, position)
                    if header is None or header.base_offset >= limit:
                        break
                    if total + header.size > max_bytes and (total or position > start):
                        break
                    total += header.size
                    position += header.size
                    high = header.next_offset
                if position > start:
                    regions.append(FileRegion(os.dup(segment.log_fd()), start, position - start))
                if position < segment.size or total >= max_bytes:
                    break
                index += 1
        except BaseException:
            for region in regions:
                os.close(region.fd)
            raise
        return LogRead(regions, high)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(base offset, max timestamp) of the first batch whose max timestamp >= target.

        -2 (earliest) and -1 (latest) give (log start, -1) and (log end, -1) as in ListOffsets.
        """
        if timestamp_ms == EARLIEST_TIMESTAMP:
            return self._log_start, NO_TIMESTAMP
        if timestamp_ms == LATEST_TIMESTAMP:
            return self.log_end_offset, NO_TIMESTAMP
        for segment in self.segments:
            if segment.max_timestamp < timestamp_ms or segment.size == 0:
                continue
            start_offset = max(segment.time_floor_offset(timestamp_ms), self._log_start)
            found = self._find_batch(segment, start_offset)
            if found is None:
                continue
            position = found[0]
            fd = segment.log_fd()
            while position < segment.size:
                header = self._header_at(fd, segment, position)
                if header is None:
                    break
                if header.max_timestamp >= timestamp_ms and header.next_offset > self._log_start:
                    return max(header.base_offset, self._log_start), header.max_timestamp
                position += header.size
        return None

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self.epoch_cache.end_offset_for(epoch, self.log_end_offset)
