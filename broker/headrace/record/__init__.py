"""Kafka's RecordBatch v2: the one place the broker encodes and decodes record bytes.

The lowest layer: it imports nothing else of headrace, so storage, the protocol, the group
coordinator, replication, the HTTP API and the tests all share one definition of the format.

* :mod:`.layout`: the 61-byte header, where its fields sit, its CRC32C and header rewrites;
* :mod:`.varint`: Kafka's varints (zigzag for records, unsigned for flexible framing), bounded;
* :mod:`.compression`: the codecs, and which of them this package opens (none, gzip);
* :mod:`.builder`: making batches (any records, the HTTP API's plain batches, compaction's
  rebuilt ones);
* :mod:`.reader`: validating batches, locating records for rewriting, decoding records;
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
from headrace.record.compression import codec_of, compress, decompress
from headrace.record.errors import (
    CorruptBatchError,
    MalformedBatchError,
    OversizedBatchError,
    RecordError,
    UnsupportedCompressionError,
    VarintError,
)
from headrace.record.layout import (
    BatchHeader,
    batch_crc,
    crc32c,
    increment_sequence,
    log_append_time_header,
    pack_batch,
    parse_header,
    rewritten_prefix,
)
from headrace.record.reader import (
    Record,
    RecordSpan,
    batch_records,
    batches_end,
    check_crc,
    iter_records,
    parse_batches,
    record_spans,
    whole_batches,
)

__all__ = [
    "BatchBuilder",
    "BatchHeader",
    "CorruptBatchError",
    "MalformedBatchError",
    "OversizedBatchError",
    "Record",
    "RecordError",
    "RecordSpan",
    "UnsupportedCompressionError",
    "VarintError",
    "batch_crc",
    "batch_records",
    "batches_end",
    "build_batch",
    "check_crc",
    "codec_of",
    "compress",
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
    "rewritten_prefix",
    "whole_batches",
]
