"""What goes wrong with record bytes, independent of who reads them.

Storage maps these onto its Kafka-coded errors (INVALID_RECORD, CORRUPT_MESSAGE,
MESSAGE_TOO_LARGE); the protocol and HTTP layers onto theirs. All are ``ValueError``s: the bytes,
not the program, are at fault.
"""

from __future__ import annotations


class RecordError(ValueError):
    """Base class of everything this package raises about the bytes it is given."""


class MalformedBatchError(RecordError):
    """A batch is structurally invalid: wrong magic, bad length, counts or records that do not
    add up, undecompressible payload."""


class InvalidRecordsError(MalformedBatchError):
    """Records of a batch are malformed, or break a rule of their topic (keys, timestamps).

    ``record_errors`` are (index of the record in its batch, what is wrong with it), as
    Produce v8+ answers them; ``timestamp`` says the problem is the records' timestamps
    (Kafka's INVALID_TIMESTAMP rather than INVALID_RECORD).
    """

    def __init__(
        self, message: str, record_errors: list[tuple[int, str]], *, timestamp: bool = False
    ) -> None:
        super().__init__(message)
        self.record_errors = record_errors
        self.timestamp = timestamp


class CorruptBatchError(MalformedBatchError):
    """A batch's CRC32C does not match its bytes."""


class OversizedBatchError(RecordError):
    """A batch is larger than the limit its reader was given."""


class InflationLimitError(OversizedBatchError):
    """A compressed batch inflates past the decompression bound (see :mod:`.compression`)."""


class UnsupportedCompressionError(RecordError):
    """The batch uses a codec this package cannot decompress (see :mod:`.compression`)."""


class VarintError(RecordError):
    """A varint runs past its buffer or is longer than its type allows."""
