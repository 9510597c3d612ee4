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
    InvalidRecordError,
    InvalidTimestampError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    StorageError,
    TopicBusyError,
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
from headrace.storage.topic_creation import CreationCancelled, NewPartitions, TopicCreation
from headrace.storage.topic_store import TopicStoreError
from headrace.storage.txn_index import control_batch
from headrace.storage.validation import CheckedBatches

__all__ = [
    "DEFAULT_PRODUCER_ID_EXPIRATION_MS",
    "AppendResult",
    "BatchTooLargeError",
    "CheckedBatches",
    "CleanerCheckpoint",
    "CleaningStats",
    "CleaningTask",
    "CorruptBatchError",
    "CreationCancelled",
    "DuplicateSequenceError",
    "FileRegion",
    "InvalidBatchError",
    "InvalidConfigError",
    "InvalidPartitionsError",
    "InvalidProducerEpochError",
    "InvalidRecordError",
    "InvalidTimestampError",
    "InvalidTopicError",
    "LogConfig",
    "LogManager",
    "LogManagerAPI",
    "LogRead",
    "NewPartitions",
    "OffsetOutOfRangeError",
    "OutOfOrderSequenceError",
    "PartitionLog",
    "PartitionLogAPI",
    "RecoveryEvent",
    "RecoveryReport",
    "RetentionReport",
    "StorageError",
    "TimestampType",
    "TopicBusyError",
    "TopicCreation",
    "TopicExistsError",
    "TopicMetadata",
    "TopicStoreError",
    "UnknownPartitionError",
    "UnknownProducerIdError",
    "control_batch",
]
