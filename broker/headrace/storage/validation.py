"""What a log checks before it writes a producer's or a leader's batches.

The checks themselves are :mod:`headrace.record`'s; this module turns their findings into the
storage errors the protocol layer answers with (INVALID_RECORD, CORRUPT_MESSAGE,
MESSAGE_TOO_LARGE), and adds the rule of compacted topics: every record has a key.
"""

from __future__ import annotations

from headrace import record
from headrace.record import BatchHeader
from headrace.storage.errors import BatchTooLargeError, CorruptBatchError, InvalidBatchError


def validate_batches(
    view: memoryview, *, max_batch_bytes: int | None, leader: bool
) -> list[BatchHeader]:
    """Validate every batch in ``view`` (framing, magic, CRC, counts) and return the headers.

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


def require_keys(view: memoryview, headers: list[BatchHeader], where: str) -> None:
    """Kafka refuses keyless records on compacted topics (INVALID_RECORD); so do we.

    Control batches carry no user records; batches whose codec we cannot decompress are let
    through (the cleaner keeps them whole).
    """
    for header in headers:
        if header.is_control:
            continue
        batch = view[header.position : header.position + header.size]
        try:
            _, spans = record.record_spans(batch, header)
        except record.UnsupportedCompressionError:
            continue
        except record.MalformedBatchError as error:
            raise InvalidBatchError(str(error)) from None
        for span in spans:
            if span.key is None:
                raise InvalidBatchError(
                    f"compacted topic {where} cannot accept a record without a key"
                )
