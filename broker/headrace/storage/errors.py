"""Typed storage errors, so the protocol layer can map each failure to one Kafka error code.

Every error carries ``kafka_error_code`` (the Kafka protocol error number the server should
answer with); the base class maps to KAFKA_STORAGE_ERROR.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of everything the storage engine raises on purpose."""

    kafka_error_code: int = 56  # KAFKA_STORAGE_ERROR


class InvalidConfigError(StorageError, ValueError):
    """A topic or log config value is unknown or out of range; the message names the key."""

    kafka_error_code = 40  # INVALID_CONFIG


class InvalidBatchError(StorageError):
    """A batch is structurally invalid (wrong magic, bad length, record count mismatch...)."""

    kafka_error_code = 87  # INVALID_RECORD


class InvalidRecordError(InvalidBatchError):
    """Records of a batch are malformed or break a rule of their topic; ``record_errors`` are
    (index of the record among the partition's records in the request, what is wrong)."""

    def __init__(self, message: str, record_errors: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.record_errors = record_errors


class InvalidTimestampError(InvalidRecordError):
    """A record's timestamp is outside the topic's ``message.timestamp.*.max.ms`` window, or a
    producer claimed LogAppendTime."""

    kafka_error_code = 32  # INVALID_TIMESTAMP


class CorruptBatchError(InvalidBatchError):
    """A batch's CRC32C does not match its bytes."""

    kafka_error_code = 2  # CORRUPT_MESSAGE


class BatchTooLargeError(StorageError):
    """A batch exceeds ``max.message.bytes`` (or cannot fit in any segment)."""

    kafka_error_code = 10  # MESSAGE_TOO_LARGE


class OffsetOutOfRangeError(StorageError):
    """A read or delete asked for an offset outside ``[log_start_offset, log_end_offset]``."""

    kafka_error_code = 1  # OFFSET_OUT_OF_RANGE


class UnknownPartitionError(StorageError, KeyError):
    """The topic or partition does not exist on this broker."""

    kafka_error_code = 3  # UNKNOWN_TOPIC_OR_PARTITION

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TopicExistsError(StorageError):
    """``create_topic`` for a name that already exists."""

    kafka_error_code = 36  # TOPIC_ALREADY_EXISTS


class TopicBusyError(StorageError):
    """Another change of the topic (a creation or growth) is under way; retriable."""

    kafka_error_code = 7  # REQUEST_TIMED_OUT


class InvalidTopicError(StorageError):
    """A topic name Kafka would not accept (empty, too long, illegal characters)."""

    kafka_error_code = 17  # INVALID_TOPIC_EXCEPTION


class InvalidPartitionsError(StorageError):
    """A partition count that is not positive, or ``add_partitions`` that would shrink."""

    kafka_error_code = 37  # INVALID_PARTITIONS


class DuplicateSequenceError(StorageError):
    """A duplicate idempotent batch that cannot be answered with its original offsets."""

    kafka_error_code = 46  # DUPLICATE_SEQUENCE_NUMBER


class OutOfOrderSequenceError(StorageError):
    """An idempotent producer skipped sequence numbers (or a new epoch did not start at 0)."""

    kafka_error_code = 45  # OUT_OF_ORDER_SEQUENCE_NUMBER


class UnknownProducerIdError(OutOfOrderSequenceError):
    """A producer the partition has no state for (never seen, or expired after
    producer.id.expiration.ms) did not start at sequence 0. Kafka's pre-KIP-360 answer, which
    librdkafka handles by bumping its epoch and starting again at 0 (OUT_OF_ORDER_SEQUENCE_NUMBER
    would be fatal to it); a subclass of ``OutOfOrderSequenceError`` as in Kafka."""

    kafka_error_code = 59  # UNKNOWN_PRODUCER_ID


class TransactionCoordinatorFencedError(StorageError):
    """A transaction marker from a coordinator older than one that already wrote here."""

    kafka_error_code = 52  # TRANSACTION_COORDINATOR_FENCED


class InvalidProducerEpochError(StorageError):
    """An idempotent producer wrote with an epoch older than the one already seen."""

    kafka_error_code = 47  # INVALID_PRODUCER_EPOCH
