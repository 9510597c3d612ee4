"""One pass over the records of a batch, checking them as Kafka's LogValidator does.

A producer's batch header can say anything: that it holds five records when it holds one, or
records of garbage bytes under a valid CRC. Consumers trust the framing (librdkafka stalls,
kafka-python crashes), so a leader walks every record before it appends:

* each record's framing: its length varint (at most 5 bytes) and a body that ends exactly
  there: attributes, timestamp delta (a varlong, at most 10 bytes), offset delta, key and
  value, the headers count (0 or more) and each header (key length 0 or more);
* the offset deltas run 0, 1, 2 … (a producer's batches are dense), and exactly
  ``recordCount`` records fill the batch to its last byte;
* optionally (compacted topics) every record has a key, and (CreateTime topics) every
  timestamp lies in the window the topic allows.

The walk is :mod:`._framing`, a C extension built with the package (about 0.02 µs per
record), which checks exactly the rules of aiokafka's compiled record decoder (the same one
:mod:`.reader` uses; Kafka's ``DefaultRecord`` rules). Where it was not built (no compiler) the
walk iterates that decoder instead (about 0.2 µs per record), with the same verdicts:
``COMPILED`` says which runs. Like Kafka, a negative key or value length reads as null.
Problems of one record carry its index, as Produce v8+ ``record_errors`` need.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import NamedTuple

from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch

from headrace.record.compression import (
    CODEC_MASK,
    MAX_INFLATED_BATCH_BYTES,
    NONE,
    SUPPORTED,
)
from headrace.record.errors import InvalidRecordsError, MalformedBatchError
from headrace.record.layout import ATTR_TIMESTAMP_TYPE, LOG_OVERHEAD, BatchHeader
from headrace.record.reader import plain_batch_of

_compiled: ModuleType | None
try:
    from headrace.record import _framing as _compiled
except ImportError:  # built without a compiler: the pure-Python walk
    _compiled = None

#: Whether the C walk (:mod:`._framing`) checks records; else aiokafka's decoder does.
COMPILED = _compiled is not None
logging.getLogger(__name__).debug(
    "record framing checked by %s", "the C walk" if COMPILED else "the Python walk")

Buffer = bytes | bytearray | memoryview
#: Kafka's "no timestamp" (records of old clients); such records are not range-checked.
NO_TIMESTAMP = -1


class TimestampWindow(NamedTuple):
    """The CreateTime timestamps a topic accepts: ``[low, high]`` in ms since the epoch."""

    low: int
    high: int


def check_batch(
    buf: Buffer,
    header: BatchHeader,
    *,
    need_keys: bool = False,
    window: TimestampWindow | None = None,
    inflate_limit: int = MAX_INFLATED_BATCH_BYTES,
    unsequenced: bool = False,
) -> int:
    """Check one producer batch of ``buf`` (whose header, CRC and counts
    :func:`~.reader.parse_batches` has checked) record by record; return its records' largest
    timestamp, the max timestamp the batch should carry. ``unsequenced`` allows a producer id
    without a sequence (a coordinator's transactional writes, TxnOffsetCommit).

    Compressed records are inflated within ``inflate_limit`` (InflationLimitError past it).
    Batches of a codec this package does not open are stored as they are (their header's max
    timestamp is returned). Raises InvalidRecordsError / MalformedBatchError otherwise.
    """
    attributes = header.attributes
    if attributes & ATTR_TIMESTAMP_TYPE:
        raise InvalidRecordsError(
            "producers may not set the timestamp type to LogAppendTime",
            [(0, "producers may not set the timestamp type to LogAppendTime")],
            timestamp=True,
        )
    if header.producer_id >= 0 and header.base_sequence < 0 and not unsequenced:
        raise MalformedBatchError(
            f"invalid sequence {header.base_sequence} for producer {header.producer_id}"
        )
    codec = attributes & CODEC_MASK
    if codec not in SUPPORTED:
        return header.max_timestamp
    position = header.position
    batch = memoryview(buf)[position : position + header.batch_length + LOG_OVERHEAD]
    base_offset, count = header.base_offset, header.record_count
    if codec == NONE and _compiled is not None:
        # The common case without the layers below (each call costs small requests).
        outcome = _compiled.walk(batch, base_offset)
        if outcome[0] == _WALKED:
            _, top, bottom, keyless, walked = outcome
            if walked == count and not (need_keys and keyless) and (
                    window is None or (window.low <= bottom and top <= window.high)):
                return top  # type: ignore[no-any-return]
    plain = plain_batch_of(batch, header, inflate_limit)
    return check_records(plain, base_offset, count, need_keys=need_keys, window=window)


def check_records(
    plain_batch: Buffer,
    base_offset: int,
    count: int,
    *,
    need_keys: bool = False,
    window: TimestampWindow | None = None,
) -> int:
    """Walk the records of an uncompressed batch (``plain_batch`` starts at its first byte;
    its CRC is not checked here) and return their largest timestamp.

    Raises :class:`InvalidRecordsError` naming the first malformed record (framing problems
    stop the walk) or every record out of the timestamp ``window`` / without a key.
    """
    if _compiled is not None:
        outcome = _compiled.walk(plain_batch, base_offset)
        if outcome[0] == _WALKED:
            _, top, bottom, keyless, walked = outcome
            return _apply_rules(plain_batch, base_offset, count, top, bottom, keyless, walked,
                                need_keys=need_keys, window=window)
        if outcome[0] != _USE_PYTHON:
            raise _compiled_problem(outcome, base_offset, count)
    return _walk_in_python(plain_batch, base_offset, count, need_keys=need_keys, window=window)


# What _framing.walk returns first (see _framing.c).
_WALKED, _BAD_FRAMING, _BAD_OFFSET, _BAD_HEADER_KEY, _USE_PYTHON = range(5)


def _compiled_problem(outcome: tuple[int, int, object], base_offset: int, count: int
                      ) -> InvalidRecordsError:
    """The error the Python walk raises for the same batch."""
    kind, index, detail = outcome
    if kind == _BAD_OFFSET:
        assert isinstance(detail, int)
        return _offset_problem(detail, base_offset + index, base_offset)
    if kind == _BAD_HEADER_KEY:
        return _problem(index, _NOT_UTF8)
    return _problem(min(index, count - 1), str(detail))


def _walk_in_python(
    plain_batch: Buffer,
    base_offset: int,
    count: int,
    *,
    need_keys: bool,
    window: TimestampWindow | None,
) -> int:
    # One pass gathers offsets, timestamp extremes and whether any key is missing; only a batch
    # that breaks a rule is walked again to name its records.
    expected = base_offset
    top = NO_TIMESTAMP
    bottom = 2**63
    keyless = False
    try:
        for entry in DefaultRecordBatch(plain_batch):
            if entry.offset != expected:
                raise _offset_problem(entry.offset, expected, base_offset)
            timestamp = entry.timestamp
            if timestamp > top:
                top = timestamp
            if timestamp < bottom:
                bottom = timestamp
            if need_keys and entry.key is None:
                keyless = True
            expected += 1
    except CorruptRecordException as error:  # bytes left after the last record: its fault
        index = min(expected - base_offset, count - 1)
        raise _problem(index, _without_prefix(str(error))) from None
    except UnicodeDecodeError:
        # Kafka reads header keys as UTF-8 strings; clients in Python fail on any other bytes,
        # so they are refused here rather than stored to crash consumers.
        raise _problem(expected - base_offset, _NOT_UTF8) from None
    except (OverflowError, MemoryError):  # a length near 2**63 slips past aiokafka's check
        raise _problem(expected - base_offset, "a key or value length overruns the batch"
                       ) from None
    return _apply_rules(plain_batch, base_offset, count, top, bottom, keyless,
                        expected - base_offset, need_keys=need_keys, window=window)


_NOT_UTF8 = "a header key is not UTF-8"


def _apply_rules(
    plain_batch: Buffer,
    base_offset: int,
    count: int,
    top: int,
    bottom: int,
    keyless: bool,
    walked: int,
    *,
    need_keys: bool,
    window: TimestampWindow | None,
) -> int:
    """The topic's rules over a well-framed batch's extremes; returns its max timestamp."""
    if walked != count:  # the decoder stops at recordCount; belt and braces
        raise _problem(walked, f"batch holds fewer than {count} records")
    if need_keys and keyless:
        message = "compacted topic cannot accept a record without a key"
        indexes = [i for i, entry in enumerate(DefaultRecordBatch(plain_batch))
                   if entry.key is None]
        raise InvalidRecordsError(message, [(i, message) for i in indexes])
    if window is not None and (top > window.high or bottom < window.low):
        bounds = f"[{window.low}, {window.high}]"
        late = [(i, entry.timestamp) for i, entry in enumerate(DefaultRecordBatch(plain_batch))
                if entry.timestamp != NO_TIMESTAMP
                and not window.low <= entry.timestamp <= window.high]
        if late:
            raise InvalidRecordsError(
                f"timestamp out of range {bounds}",
                [(i, f"timestamp {t} is out of range {bounds}") for i, t in late],
                timestamp=True,
            )
    return top


def _offset_problem(offset: int, expected: int, base_offset: int) -> InvalidRecordsError:
    index = expected - base_offset
    return _problem(index, f"offset delta {offset - base_offset} where {index} was due")


def _without_prefix(message: str) -> str:
    """aiokafka's messages start with "[Error 2] CorruptRecordException: "."""
    return message.rsplit("CorruptRecordException: ", 1)[-1]


def _problem(index: int, message: str) -> InvalidRecordsError:
    return InvalidRecordsError(f"record {index}: {message}", [(index, message)])
