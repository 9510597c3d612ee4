"""Read a partition back with an independent decoder (kafka-python's record reader), checking
what every log must satisfy on the way: CRCs, and offsets increasing across batches and records.

The storage tests (compaction above all) and the log-maintenance metrics tests read logs so."""

from __future__ import annotations

from dataclasses import dataclass

from kafka.record import MemoryRecords

from headrace.storage import PartitionLog


@dataclass(frozen=True)
class ReadRecord:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


@dataclass(frozen=True)
class ReadBatch:
    base_offset: int
    last_offset: int
    producer_id: int
    records: tuple[ReadRecord, ...]


def read_batches(log: PartitionLog, start: int | None = None) -> list[ReadBatch]:
    """Every batch from ``start`` (default: the log start) to the end, CRC-checked, with
    offsets strictly increasing across batches and records."""
    offset = log.log_start_offset if start is None else start
    out: list[ReadBatch] = []
    last = -1
    while offset < log.log_end_offset:
        with log.read(offset, 1 << 20) as read:
            data = read.to_bytes()
            high = read.high_offset
        assert data, f"empty read at {offset} before the end {log.log_end_offset}"
        records = MemoryRecords(data)
        while (batch := records.next_batch()) is not None:
            assert batch.validate_crc(), f"CRC mismatch in batch {batch.base_offset}"
            assert batch.base_offset > last, (batch.base_offset, last)
            decoded = []
            for record in batch:
                assert record.offset > last, (record.offset, last)
                assert batch.base_offset <= record.offset <= batch.last_offset
                last = record.offset
                decoded.append(
                    ReadRecord(record.offset, record.key, record.value, record.timestamp)
                )
            last = max(last, batch.last_offset)
            out.append(
                ReadBatch(batch.base_offset, batch.last_offset, batch.producer_id, tuple(decoded))
            )
        assert high > offset
        offset = high
    return out


def read_records(log: PartitionLog, start: int | None = None) -> list[ReadRecord]:
    return [r for batch in read_batches(log, start) for r in batch.records]


def latest_by_key(records: list[ReadRecord]) -> dict[bytes | None, ReadRecord]:
    latest: dict[bytes | None, ReadRecord] = {}
    for record in records:
        latest[record.key] = record
    return latest
