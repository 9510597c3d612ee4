"""Kafka's RecordBatch v2: the one place the broker encodes and decodes record bytes.

The lowest layer: it imports nothing else of headrace, so storage, the protocol, the group
coordinator, replication, the HTTP API and the tests all share one definition of the format.

* :mod:`.layout`: the 61-byte header, where its fields sit, its CRC32C and header rewrites;
* :mod:`.varint`: Kafka's varints (zigzag for records, unsigned for flexible framing), bounded;
* :mod:`.compression`: the codecs (all five of Kafka's: none, gzip, snappy, lz4, zstd) and the
  bound on how far one batch may inflate;
* :mod:`.builder`: making batches (any records, the HTTP API's plain batches, compaction's
  rebuilt ones);
* :mod:`.reader`: validating batches, locating records for rewriting, decoding records;
* :mod:`.framing`: checking a producer's batch record by record (Kafka's LogValidator);
* :mod:`.errors`: what goes wrong with the bytes.

Only v2 batches exist here: the log refuses older magic values, so no legacy message set is
ever stored or read.
"""

from headrace.record.builder import (
    BatchBuilder,
    build_batch,
    new_batch_builder,
    plain_batch,
    plain_batch_fits,
    rebuild_batch,
)
from headrace.record.compression import MAX_INFLATED_BATCH_BYTES, codec_of, compress, decompress
from headrace.record.errors import (
    CorruptBatchError,
    InflationLimitError,
    InvalidRecordsError,
    MalformedBatchError,
    OversizedBatchError,
    RecordError,
    UnsupportedCompressionError,
    VarintError,
)
from headrace.record.framing import TimestampWindow, check_batch
from headrace.record.layout import (
    BatchHeader,
    batch_crc,
    crc32c,
    increment_sequence,
    log_append_time_header,
    pack_batch,
    parse_header,
    restamped_header,
    rewritten_prefix,
)
from headrace.record.reader import (
    Record,
    RecordSpan,
    batch_records,
    batches_end,
    check_crc,
    costly_to_open,
    iter_records,
    parse_batches,
    record_spans,
    whole_batches,
)

__all__ = [
    "MAX_INFLATED_BATCH_BYTES",
    "BatchBuilder",
    "BatchHeader",
    "CorruptBatchError",
    "InflationLimitError",
    "InvalidRecordsError",
    "MalformedBatchError",
    "OversizedBatchError",
    "Record",
    "RecordError",
    "RecordSpan",
    "TimestampWindow",
    "UnsupportedCompressionError",
    "VarintError",
    "batch_crc",
    "batch_records",
    "batches_end",
    "build_batch",
    "check_batch",
    "check_crc",
    "codec_of",
    "compress",
    "costly_to_open",
    "crc32c",
    "decompress",
    "increment_sequence",
    "iter_records",
    "log_append_time_header",
    "new_batch_builder",
    "pack_batch",
    "parse_batches",
    "parse_header",
    "plain_batch",
    "plain_batch_fits",
    "rebuild_batch",
    "record_spans",
    "restamped_header",
    "rewritten_prefix",
    "whole_batches",
]
