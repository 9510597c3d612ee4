"""Records over HTTP: parse REST produce requests into RecordBatches, render consumed records.

Pure functions (no aiohttp, no broker) so every validation rule is testable on its own; the
batches themselves are built and decoded by :mod:`headrace.record`. The JSON shapes follow
Confluent REST Proxy v3 (produce) and v2 (consumer records) so existing HTTP clients and
tutorials carry over. Import from here; the parts:

* :mod:`.values`: one v3 request object -> a :class:`ProduceRecord` (shape, values, headers,
  timestamps);
* :mod:`.batches`: a request's records sorted into one batch per partition (the fast path
  for whole NDJSON bodies included);
* :mod:`.v2`: the v2 produce shapes (REST Proxy v2, Redpanda, Strimzi's bridge);
* :mod:`.json_values`: bodies, whole or streamed, split into JSON values;
* :mod:`.consumed`: consumed records as JSON.
"""

from headrace.web.records.batches import (
    AnswerShape,
    PartitionBatch,
    RequestBatches,
    UnknownPartitionError,
    choose_partition,
)
from headrace.web.records.consumed import (
    RECORD_FORMATS,
    RecordFormat,
    render_data,
    render_record,
)
from headrace.web.records.json_values import (
    JsonStream,
    split_json_body,
    split_json_values,
)
from headrace.web.records.v2 import V2_FORMATS, MalformedJsonError, parse_v2_produce
from headrace.web.records.values import (
    DATA_TYPES,
    MAX_TIMESTAMP_MS,
    NO_HEADERS,
    InvalidRecordError,
    ProduceRecord,
    decode_base64,
    format_timestamp,
    parse_produce_request,
    parse_timestamp,
)

__all__ = [
    "DATA_TYPES",
    "MAX_TIMESTAMP_MS",
    "NO_HEADERS",
    "RECORD_FORMATS",
    "V2_FORMATS",
    "AnswerShape",
    "InvalidRecordError",
    "JsonStream",
    "MalformedJsonError",
    "PartitionBatch",
    "ProduceRecord",
    "RecordFormat",
    "RequestBatches",
    "UnknownPartitionError",
    "choose_partition",
    "decode_base64",
    "format_timestamp",
    "parse_produce_request",
    "parse_timestamp",
    "parse_v2_produce",
    "render_data",
    "render_record",
    "split_json_body",
    "split_json_values",
]
