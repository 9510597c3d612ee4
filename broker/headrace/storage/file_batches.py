"""Batch headers read straight from segment files: one at a time, or scanned in order.

Recovery, index rebuilds, producer-state replay and the cleaner read a segment's batches by
their headers only (records stay opaque); the header layout is :mod:`headrace.record`'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from headrace.record.layout import (
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    BatchHeader,
    crc32c,
)


@dataclass
class ScanOutcome:
    """Where a file scan stopped: ``valid_end`` is the byte after the last good batch."""

    valid_end: int
    problem: str | None = None  # why the scan stopped early (None: reached end of data)


class FileBatchScanner:
    """Iterate the batches of a segment file from ``start``, optionally verifying CRCs.

    Stops at the first torn, malformed or (when verifying) corrupt batch and records why in
    ``outcome``. ``expected_base`` (if given) also demands that offsets only increase.
    """

    _CHUNK = 1 << 20

    def __init__(
        self,
        fd: int,
        file_size: int,
        *,
        start: int = 0,
        verify_crc: bool,
        expected_base: int | None = None,
    ) -> None:
        self._fd = fd
        self._file_size = file_size
        self._start = start
        self._verify = verify_crc
        self._expected = expected_base
        self.outcome = ScanOutcome(valid_end=start)

    def __iter__(self) -> Iterator[BatchHeader]:
        position = self._start
        buffer = b""
        buffer_start = position
        while position < self._file_size:
            remaining = self._file_size - position
            if remaining < HEADER_SIZE:
                self.outcome.problem = f"torn batch header at byte {position}"
                return
            offset_in_buffer = position - buffer_start
            if offset_in_buffer + HEADER_SIZE > len(buffer):
                buffer = os.pread(self._fd, min(self._CHUNK, remaining), position)
                buffer_start = position
                offset_in_buffer = 0
                if len(buffer) < HEADER_SIZE:
                    self.outcome.problem = f"short read at byte {position}"
                    return
            header = BatchHeader(position, *HEADER.unpack_from(buffer, offset_in_buffer))
            problem = self._check(header, remaining)
            if problem is None and self._verify:
                problem = self._check_crc(header, buffer, offset_in_buffer, position)
            if problem is not None:
                self.outcome.problem = f"{problem} at byte {position}"
                return
            position += header.size
            self.outcome.valid_end = position
            if self._expected is not None:
                self._expected = header.next_offset
            yield header

    def _check(self, header: BatchHeader, remaining: int) -> str | None:
        if header.magic != MAGIC:
            return f"bad magic {header.magic}"
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
            return f"bad batch length {header.batch_length}"
        if header.size > remaining:
            return f"torn batch ({header.size} bytes claimed, {remaining} on disk)"
        if header.last_offset_delta < 0:
            return "negative lastOffsetDelta"
        # Offsets must increase; gaps are legal (a compacted segment keeps original offsets).
        if self._expected is not None and header.base_offset < self._expected:
            return f"offset {header.base_offset} where {self._expected} or more was expected"
        return None

    def _check_crc(
        self, header: BatchHeader, buffer: bytes, offset_in_buffer: int, position: int
    ) -> str | None:
        end_in_buffer = offset_in_buffer + header.size
        if end_in_buffer <= len(buffer):
            data = memoryview(buffer)[offset_in_buffer + CRC_START : end_in_buffer]
        else:
            whole = os.pread(self._fd, header.size, position)
            if len(whole) != header.size:
                return "short read"
            data = memoryview(whole)[CRC_START:]
        if crc32c(data) != header.crc:
            return "CRC mismatch"
        return None


def read_header(fd: int, position: int) -> BatchHeader | None:
    """The header of the batch at ``position`` of a file, or None if it is not all there."""
    data = os.pread(fd, HEADER_SIZE, position)
    if len(data) < HEADER_SIZE:
        return None
    return BatchHeader(position, *HEADER.unpack(data))
