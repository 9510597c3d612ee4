"""The durable partition log engine: Kafka RecordBatch v2 segments on local disk.

Import everything from here; submodules are an implementation detail. See docs/storage.md.
Not thread-safe: call from one thread (the broker's event loop).
"""

from headrace.storage.cleaner import CleanerCheckpoint, CleaningStats, CleaningTask
from headrace.storage.config import LogConfig, TimestampType
from headrace.storage.errors import (
    BatchTooLargeError,
    CorruptBatchError,
    DuplicateSequenceError,
    InvalidBatchError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidProducerEpochError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    StorageError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownProducerIdError,
)
from headrace.storage.interface import LogManagerAPI, PartitionLogAPI
from headrace.storage.log import PartitionLog
from headrace.storage.manager import LogManager
from headrace.storage.producer_state import DEFAULT_PRODUCER_ID_EXPIRATION_MS
from headrace.storage.results import (
    AppendResult,
    FileRegion,
    LogRead,
    RecoveryEvent,
    RecoveryReport,
    RetentionReport,
    TopicMetadata,
)
from headrace.storage.txn_index import control_batch

__all__ = [
    "DEFAULT_PRODUCER_ID_EXPIRATION_MS",
    "AppendResult",
    "BatchTooLargeError",
    "CleanerCheckpoint",
    "CleaningStats",
    "CleaningTask",
    "CorruptBatchError",
    "DuplicateSequenceError",
    "FileRegion",
    "InvalidBatchError",
    "InvalidConfigError",
    "InvalidPartitionsError",
    "InvalidProducerEpochError",
    "InvalidTopicError",
    "LogConfig",
    "LogManager",
    "LogManagerAPI",
    "LogRead",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "PartitionLog",
    "PartitionLogAPI",
    "RecoveryEvent",
    "RecoveryReport",
    "RetentionReport",
    "StorageError",
    "TimestampType",
    "TopicExistsError",
    "TopicMetadata",
    "UnknownPartitionError",
    "UnknownProducerIdError",
    "control_batch",
]
