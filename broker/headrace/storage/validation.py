"""What a log checks before it writes a producer's or a leader's batches.

The checks themselves are :mod:`headrace.record`'s; this module turns their findings into the
storage errors the protocol layer answers with (INVALID_RECORD with per-record errors,
INVALID_TIMESTAMP, CORRUPT_MESSAGE, MESSAGE_TOO_LARGE) and applies the topic's rules: a
compacted topic's records have keys; a CreateTime topic's timestamps lie within
``message.timestamp.before.max.ms`` / ``message.timestamp.after.max.ms`` of the broker's clock.

A producer's batches are checked record by record (:func:`check_producer_batches`), which may
inflate compressed records: the result is a :class:`CheckedBatches` that
:meth:`PartitionLog.append` takes, so the replica manager can run the check in a worker thread
when :func:`headrace.record.costly_to_open` says so, and append on the event loop afterwards.
"""

from __future__ import annotations

from typing import NamedTuple

from headrace import record
from headrace.record import BatchHeader
from headrace.storage.config import LogConfig
from headrace.storage.errors import (
    BatchTooLargeError,
    CorruptBatchError,
    InvalidBatchError,
    InvalidRecordError,
    InvalidTimestampError,
)


class CheckedBatches(NamedTuple):
    """A producer's batches, checked against one log config: their headers and the max
    timestamp each must carry (its records' largest, as Kafka's LogValidator sets it). A
    NamedTuple: one is built per produced partition, and tuples are the cheapest to build."""

    batches: object  # the very buffer that was checked
    config: LogConfig
    headers: list[BatchHeader]
    max_timestamps: list[int]


_last_window = record.TimestampWindow(0, 0)


def _window(low: int, high: int) -> record.TimestampWindow:
    """``TimestampWindow(low, high)``, reusing the last one built: the bounds change once a
    millisecond, produce requests come many times as often (read once: checks also run in
    worker threads)."""
    global _last_window
    last = _last_window
    if last.low == low and last.high == high:
        return last
    _last_window = window = record.TimestampWindow(low, high)
    return window


def validate_batches(
    view: memoryview, *, max_batch_bytes: int | None, leader: bool
) -> list[BatchHeader]:
    """Validate every batch header in ``view`` (framing, magic, CRC, counts) and return them.

    Raises InvalidBatchError / CorruptBatchError / BatchTooLargeError for the first bad batch;
    the caller then writes nothing. ``leader`` additionally demands dense batches
    (recordCount == lastOffsetDelta + 1), as producers always send.
    """
    try:
        return record.parse_batches(view, max_batch_bytes=max_batch_bytes, dense=leader)
    except record.CorruptBatchError as error:
        raise CorruptBatchError(str(error)) from None
    except record.MalformedBatchError as error:
        raise InvalidBatchError(str(error)) from None
    except record.OversizedBatchError as error:
        raise BatchTooLargeError(str(error)) from None


def check_producer_batches(
    batches: bytes | memoryview, config: LogConfig, now_ms: int, where: str,
    *, coordinator: bool = False,
) -> CheckedBatches:
    """Check a producer's batches for the log of ``where`` (topic-partition): headers, then
    every record. Safe to run in a worker thread: it reads only its arguments.
    ``coordinator``: a coordinator's own write, which may be transactional without sequences."""
    view = memoryview(batches).cast("B")
    headers = validate_batches(view, max_batch_bytes=config.max_message_bytes, leader=True)
    window = None
    if config.message_timestamp_type == "CreateTime":
        # A timestamp is -1 (none) or a time since 1970.
        low = now_ms - config.message_timestamp_before_max_ms
        window = _window(low if low > 0 else 0, now_ms + config.message_timestamp_after_max_ms)
    max_timestamps: list[int] = []
    first_record = 0  # record_errors index the partition's records across its batches
    need_keys, check_batch = config.compacts, record.check_batch
    for header in headers:
        try:
            max_timestamps.append(
                check_batch(view, header, need_keys=need_keys, window=window,
                            unsequenced=coordinator)
            )
        except record.InvalidRecordsError as error:
            errors = [(first_record + index, message) for index, message in error.record_errors]
            kind = InvalidTimestampError if error.timestamp else InvalidRecordError
            raise kind(f"{where}: {error}", errors) from None
        except record.InflationLimitError as error:
            raise BatchTooLargeError(f"{where}: {error}") from None
        except record.MalformedBatchError as error:
            raise InvalidBatchError(f"{where}: {error}") from None
        first_record += header.record_count
    return CheckedBatches(batches, config, headers, max_timestamps)
