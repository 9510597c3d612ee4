"""Hand-framed Fetch responses (v4-12) whose record bytes are file slices, not copies.

kio would need the records in memory; framing the response by hand lets the connection send the
headers from memory and the batches straight from segment files with ``os.sendfile``. v12 is
the first flexible version (compact arrays/strings, tagged-field sections); v13+ replace topic
names by ids and are not served.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from headrace.protocol.codec import FileSlice
from headrace.record.varint import encode_uvarint

MIN_VERSION = 4
MAX_VERSION = 12
API_KEY = 1

_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_PARTITION_HEAD = struct.Struct(">ihqq")  # index, error, high watermark, last stable offset
_I64 = struct.Struct(">q")
_ABORTED = struct.Struct(">qq")  # producer id, first offset


@dataclass(slots=True)
class PartitionData:
    """One partition of a Fetch answer; ``records`` are whole batches in offset order."""

    partition: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: list[FileSlice | bytes] = field(default_factory=list)
    #: (producer id, first offset) of aborted transactions in the span (read_committed).
    aborted_transactions: list[tuple[int, int]] = field(default_factory=list)

    @property
    def records_size(self) -> int:
        return sum(len(r) if isinstance(r, bytes) else r.size for r in self.records)


def encode_fetch_body(
    version: int,
    topics: list[tuple[str, list[PartitionData]]],
    *,
    error_code: int = 0,
    session_id: int = 0,
    throttle_ms: int = 0,
) -> list[bytes | FileSlice]:
    """The response body (after the response header) as bytes and file slices in wire order."""
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ValueError(f"Fetch v{version} is not hand-framed")
    flexible = version >= 12
    parts: list[bytes | FileSlice] = []
    head = bytearray(_I32.pack(throttle_ms))
    if version >= 7:
        head += _I16.pack(error_code) + _I32.pack(session_id)
    head += encode_uvarint(len(topics) + 1) if flexible else _I32.pack(len(topics))
    for name, partitions in topics:
        encoded_name = name.encode()
        if flexible:
            head += encode_uvarint(len(encoded_name) + 1) + encoded_name
            head += encode_uvarint(len(partitions) + 1)
        else:
            head += _I16.pack(len(encoded_name)) + encoded_name + _I32.pack(len(partitions))
        for partition in partitions:
            head += _PARTITION_HEAD.pack(
                partition.partition,
                partition.error_code,
                partition.high_watermark,
                partition.last_stable_offset,
            )
            if version >= 5:
                head += _I64.pack(partition.log_start_offset)
            aborted = partition.aborted_transactions
            head += encode_uvarint(len(aborted) + 1) if flexible else _I32.pack(len(aborted))
            for producer_id, first_offset in aborted:
                head += _ABORTED.pack(producer_id, first_offset)
                if flexible:
                    head += b"\x00"  # aborted transaction tagged fields
            if version >= 11:
                head += _I32.pack(-1)  # preferred_read_replica: none
            size = partition.records_size
            head += encode_uvarint(size + 1) if flexible else _I32.pack(size)
            if size:
                parts.append(bytes(head))
                head = bytearray()
                parts.extend(partition.records)
            if flexible:
                head += b"\x00"  # partition tagged fields
        if flexible:
            head += b"\x00"  # topic tagged fields
    if flexible:
        head += b"\x00"  # response tagged fields
    parts.append(bytes(head))
    return parts
