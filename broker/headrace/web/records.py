"""Records over HTTP: parse REST produce requests, build RecordBatch v2, render consumed records.

Pure functions (no aiohttp, no broker) so every validation rule is testable on its own. Batches
are built and parsed with aiokafka's ``record`` module (maintained, handles every compression
codec) rather than by hand. The JSON shapes follow Confluent REST Proxy v3 (produce) and v2
(consumer records) so existing HTTP clients and tutorials carry over.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

import msgspec
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import encode_varint

from headrace.storage.batch import CRC_START, HEADER, HEADER_SIZE, LOG_OVERHEAD, MAGIC, crc32c

#: Confluent's data types for keys and values in a produce request.
DATA_TYPES = ("JSON", "STRING", "BINARY")
#: Renderings of consumed keys/values (v2 consumer ``format``, stream ``format`` parameter).
RecordFormat = Literal["binary", "json", "string"]
RECORD_FORMATS: tuple[RecordFormat, ...] = ("binary", "json", "string")


_DATA_FIELDS = frozenset({"type", "data", "subject", "schema_version"})
_REQUEST_FIELDS = frozenset({"partition_id", "key", "value", "headers", "timestamp"})


class InvalidRecordError(ValueError):
    """A produce request that can't become a record; the message names the offending field."""


class ProduceRecord(NamedTuple):
    """One record of a REST produce request, validated and encoded to bytes.

    A NamedTuple: built once per record on the HTTP produce path, where a frozen dataclass'
    constructor costs about three times as much."""

    partition: int | None
    key: bytes | None
    value: bytes | None
    #: A list because aiokafka's batch builder takes only lists; never mutated (records without
    #: headers share :data:`NO_HEADERS`).
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int | None
    key_type: str | None
    value_type: str | None


_MISSING: Any = object()


def _encode_data(field: str, spec: Any) -> tuple[bytes | None, str | None]:
    if spec.__class__ is not dict:
        raise InvalidRecordError(f"{field} must be an object with type and data")
    if not spec.keys() <= _DATA_FIELDS:
        unknown = sorted(spec.keys() - _DATA_FIELDS)
        raise InvalidRecordError(f"{field} has unknown fields: {', '.join(unknown)}")
    data = spec.get("data", _MISSING)
    if data is _MISSING:
        raise InvalidRecordError(f"{field}.data is missing")
    return _encode_value(field, spec.get("type", "JSON"), data)


def _encode_value(field: str, data_type: Any, data: Any) -> tuple[bytes | None, str | None]:
    """The bytes of one key or value given its declared type (the shape is already checked)."""
    try:
        if data_type == "STRING" and data.__class__ is str:  # the common case, first
            return data.encode(), "STRING"
        if data_type not in DATA_TYPES:
            if not isinstance(data_type, str) or data_type.upper() not in DATA_TYPES:
                raise InvalidRecordError(f"{field}.type must be one of {', '.join(DATA_TYPES)}")
            data_type = data_type.upper()
        if data is None:
            return None, data_type
        if data_type == "JSON":
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return text.encode(), data_type
        if data.__class__ is not str:
            raise InvalidRecordError(f"{field}.data must be a string for type {data_type}")
        if data_type == "STRING":
            return data.encode(), data_type
        return decode_base64(f"{field}.data", data), data_type
    except UnicodeEncodeError:  # a lone surrogate escape such as "\\ud800" in the JSON text
        raise _lone_surrogate(f"{field}.data") from None


def _lone_surrogate(field: str) -> InvalidRecordError:
    return InvalidRecordError(f"{field} holds a lone UTF-16 surrogate")


def _bad_base64(field: str, problem: Exception) -> InvalidRecordError:
    return InvalidRecordError(f"{field} is not valid base64: {problem}")


def decode_base64(field: str, text: str) -> bytes:
    """Strict base64 (padding and alphabet checked); InvalidRecordError names ``field``.

    binascii's strict mode checks in C what ``b64decode(validate=True)`` checks with a regular
    expression, several times faster on the produce path."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad_base64(field, exc) from None


#: The last millisecond ISO 8601 answers (and Python's datetime) can show: 9999-12-31T23:59:59.999Z.
MAX_TIMESTAMP_MS = 253_402_300_799_999


def parse_timestamp(field: str, value: Any) -> int | None:
    """Milliseconds since the epoch from an ISO 8601 string or an integer of milliseconds."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRecordError(f"{field} must be an ISO 8601 date-time or milliseconds")
    if isinstance(value, int):
        if value < 0:
            raise InvalidRecordError(f"{field} must not be negative")
        if value > MAX_TIMESTAMP_MS:
            raise InvalidRecordError(f"{field} must be before the year 10000 (at most "
                                     f"{MAX_TIMESTAMP_MS} ms)")
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRecordError(f"{field} is not an ISO 8601 date-time: {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        millis = int(parsed.timestamp() * 1000)
        if millis < 0:
            raise InvalidRecordError(f"{field} must not be before 1970")
        return millis
    raise InvalidRecordError(f"{field} must be an ISO 8601 date-time or milliseconds")


@functools.lru_cache(maxsize=1024)  # records of one request share their timestamp
def format_timestamp(millis: int) -> str:
    """ISO 8601 in UTC with milliseconds, as Confluent's responses show timestamps."""
    seconds, remainder = divmod(millis, 1000)  # integers: float division loses milliseconds
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=remainder * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_produce_request(body: Any) -> ProduceRecord:
    """Validate one Confluent v3 produce request object.

    The only validation of produce requests (single, several per body, or streamed): it runs
    once per record, so the common shapes are tested first and nothing is looked up twice."""
    if body.__class__ is not dict:
        raise InvalidRecordError("a produce request must be a JSON object")
    if not body.keys() <= _REQUEST_FIELDS:
        unknown = sorted(body.keys() - _REQUEST_FIELDS)
        raise InvalidRecordError(f"unknown fields: {', '.join(unknown)}")
    get = body.get
    partition = get("partition_id")
    if partition is not None and (partition.__class__ is not int or partition < 0):
        raise InvalidRecordError("partition_id must be a non-negative integer")
    key_spec = get("key")
    key, key_type = (None, None) if key_spec is None else _encode_data("key", key_spec)
    value_spec = get("value")
    value, value_type = (None, None) if value_spec is None else _encode_data("value", value_spec)
    headers_in = get("headers")
    headers = NO_HEADERS
    if headers_in:
        headers = _parse_headers(headers_in)
    elif headers_in is not None and headers_in.__class__ is not list:
        raise InvalidRecordError(_HEADERS_SHAPE)
    timestamp = get("timestamp")
    if timestamp is not None:
        timestamp = parse_timestamp("timestamp", timestamp)
    # tuple.__new__ skips the NamedTuple's generated __new__ (half the cost, same object).
    return tuple.__new__(ProduceRecord, (
        partition, key, value, headers, timestamp, key_type, value_type))


#: The headers of every record that has none (shared; never mutated).
NO_HEADERS: list[tuple[str, bytes | None]] = []

_HEADERS_SHAPE = "headers must be a list of {\"name\", \"value\"} objects"


def _parse_headers(headers_in: Any) -> list[tuple[str, bytes | None]]:
    if headers_in.__class__ not in (list, tuple):
        raise InvalidRecordError(_HEADERS_SHAPE)
    headers: list[tuple[str, bytes | None]] = []
    for index, header in enumerate(headers_in):
        if not isinstance(header, dict) or not isinstance(header.get("name"), str):
            raise InvalidRecordError(f"headers[{index}] must be an object with a string name")
        raw = header.get("value")
        if raw is not None and not isinstance(raw, str):
            raise InvalidRecordError(f"headers[{index}].value must be base64 text or null")
        headers.append((header["name"],
                        None if raw is None else decode_base64(f"headers[{index}].value", raw)))
    return headers


# -- sorting a request's records into RecordBatches ---------------------------------------------


class UnknownPartitionError(InvalidRecordError):
    """A record addressed to a partition the topic does not have."""


#: What a v3 answer says of a written record besides its offset: (its own timestamp or None
#: for the request's time, key type, key size, value type, value size). A plain STRING value
#: with neither key nor timestamp (the common record) is stood for by its size alone: the fast
#: path then builds no tuple per record.
AnswerShape = int | tuple[int | None, str | None, int, str | None, int]


class PartitionBatch:
    """The records of one request bound for one partition: their RecordBatch as it is built,
    the request positions they answer, and what each answer says of them.

    While every record is plain (no key, no headers, the request's timestamp) only their
    values are kept, and :meth:`build` makes the batch in a few joins (:func:`plain_batch`);
    the first other record moves them into aiokafka's builder, which takes it from there.
    """

    __slots__ = ("append", "builder", "indexes", "plain", "shapes", "timestamp_ms")

    def __init__(self, timestamp_ms: int) -> None:
        self.timestamp_ms = timestamp_ms
        #: The values of the records so far while all are plain; None once the builder has them.
        self.plain: list[bytes] | None = []
        self.builder: DefaultRecordBatchBuilder | None = None
        #: ``append(offset_delta, timestamp_ms, key, value, headers)`` of any record (after a
        #: first call that starts the builder, aiokafka's own).
        self.append: Callable[[int, int, bytes | None, bytes | None,
                               list[tuple[str, bytes | None]]], object] = self._start_builder
        self.indexes: list[int] = []
        self.shapes: list[AnswerShape] = []

    def _start_builder(self, offset_delta: int, timestamp_ms: int, key: bytes | None,
                       value: bytes | None, headers: list[tuple[str, bytes | None]]) -> None:
        builder = self._builder()
        builder.append(offset_delta, timestamp_ms, key, value, headers)

    def _builder(self) -> DefaultRecordBatchBuilder:
        builder = self.builder
        if builder is None:
            builder = self.builder = new_batch_builder()
            for offset_delta, value in enumerate(self.plain or ()):
                builder.append(offset_delta, self.timestamp_ms, None, value, NO_HEADERS)
            self.plain = None
            self.append = builder.append
        return builder

    def append_plain(self, value: bytes) -> None:
        """Add a plain record (no key, no headers, the request's timestamp) after the others;
        the caller then adds its request position to ``indexes``."""
        plain = self.plain
        if plain is not None:
            plain.append(value)
        else:
            self.append(len(self.indexes), self.timestamp_ms, None, value, NO_HEADERS)

    def build(self) -> bytes:
        plain = self.plain
        if plain and plain_batch_fits(plain):
            return plain_batch(plain, self.timestamp_ms)
        return bytes(self._builder().build())


class RequestBatches:
    """A produce request's records sorted into one RecordBatch per partition as they are read.

    Pure (no I/O): the caller appends each built batch and answers each record from
    ``batches``' ``indexes`` and ``shapes``, and from ``refused``. Records without a partition
    go round-robin (or by key hash) from ``round_robin``, which the caller keeps between
    requests; ``extra_header`` (the trace context) joins every record lacking a header of its
    name.
    """

    __slots__ = ("batches", "extra_header", "now_ms", "partitions", "refused", "round_robin",
                 "topic")

    def __init__(self, topic: str, partitions: int, now_ms: int, *, round_robin: int = 0,
                 extra_header: tuple[str, bytes] | None = None) -> None:
        self.topic = topic
        self.partitions = partitions
        self.now_ms = now_ms
        self.round_robin = round_robin
        self.extra_header = extra_header
        self.batches: dict[int, PartitionBatch] = {}
        #: Records not written, by request position, with the reason.
        self.refused: dict[int, InvalidRecordError] = {}

    def add(self, index: int, record: ProduceRecord) -> None:
        """Place the record at request position ``index`` (positions only ever increase)."""
        partition, key, value, headers, timestamp, key_type, value_type = record
        batch = self.place(index, partition, key)
        if batch is None:
            return
        self.write(batch, index, key, value, headers, timestamp)
        if key is None and timestamp is None and value_type == "STRING" and value is not None:
            batch.shapes.append(len(value))  # as the fast path says it
        else:
            batch.shapes.append((timestamp, key_type, 0 if key is None else len(key),
                                 value_type, 0 if value is None else len(value)))

    def write(self, batch: PartitionBatch, index: int, key: bytes | None, value: bytes | None,
              headers: list[tuple[str, bytes | None]], timestamp: int | None) -> None:
        """Write the record at request position ``index`` into its :meth:`place`'d batch, with
        the extra header if it lacks one of that name."""
        extra = self.extra_header
        if extra is not None and all(name != extra[0] for name, _ in headers):
            headers = [*headers, extra]
        if key is None and not headers and timestamp is None and value is not None:
            batch.append_plain(value)
        else:
            batch.append(len(batch.indexes), self.now_ms if timestamp is None else timestamp,
                         key, value, headers)
        batch.indexes.append(index)

    def place(self, index: int, partition: int | None, key: bytes | None
              ) -> PartitionBatch | None:
        """The batch of the record at ``index``: its own partition, else the key's hash, else
        the next in round-robin; None (and the record refused) for a partition not there."""
        if partition is None:
            self.round_robin += 1
            partition = choose_partition(key, self.partitions, self.round_robin)
        elif partition >= self.partitions:
            self.refused[index] = UnknownPartitionError(
                f"partition {partition} of topic {self.topic!r} not found "
                f"(it has {self.partitions})")
            return None
        batch = self.batches.get(partition)
        if batch is None:
            batch = self.batches[partition] = PartitionBatch(self.now_ms)
        return batch

    def _add_plain(self, body: bytes) -> bool:
        """:meth:`add_lines` for a body of plain records (a STRING value and nothing else but
        one partition for all, or none), in whole-list steps: msgspec checks that shape, then
        C-level maps take the values out. False, with nothing added, for any other body."""
        specs = _decode_requests(_decode_plain_lines, body)
        if specs is None:
            return False
        # Comprehensions: Python 3.11 reads slot attributes faster than attrgetter does.
        targets = {spec.partition_id for spec in specs}
        if len(targets) != 1:
            return False
        try:
            values = [spec.value.data.encode() for spec in specs]
        except UnicodeEncodeError:
            return False
        return self.add_plain(values, targets.pop())

    def add_plain(self, values: list[bytes], partition: int | None) -> bool:
        """Add plain records (no key, no headers, the request's timestamp) of these values,
        all for ``partition`` (None: round-robin), in whole-list steps; call it on an empty
        RequestBatches. False, with nothing added, if the topic has no such partition."""
        count, partitions = len(values), self.partitions
        if partition is None:  # round-robin, where choose_partition would put each in turn
            first = self.round_robin + 1
            self.round_robin += count
            for start in range(min(partitions, count)):
                self._add_plain_batch((first + start) % partitions, values[start::partitions],
                                      range(start, count, partitions))
        elif partition < partitions:
            self._add_plain_batch(partition, values, range(count))
        else:
            return False
        return True

    def _add_plain_batch(self, partition: int, values: list[bytes], indexes: range) -> None:
        batch = self.batches[partition] = PartitionBatch(self.now_ms)
        batch.plain = values
        batch.indexes = list(indexes)
        batch.shapes = list(map(len, values))  # a plain record's answer shape: its size

    def refuse(self, index: int, problem: InvalidRecordError) -> None:
        self.refused[index] = problem

    def add_lines(self, body: bytes) -> bool:
        """Add every record of a body of v3 produce request objects (one per line, as a rule:
        newline-delimited JSON), or none.

        The fast path of HTTP produce: msgspec (a maintained C library) parses and checks the
        shape of the whole body in one pass (``decode_lines``). A body of plain records for
        one partition (or round-robin) is taken in whole-list steps (:meth:`_add_plain`);
        otherwise the common record (a STRING value for a given partition, nothing else) goes
        from its struct straight into its batch and other records take :func:`_record_of`.
        Call it on an empty RequestBatches. False, with nothing added, declines the body: it is
        malformed, has a record with a problem, or has a shape this path does not handle
        (objects separated by commas, say); the general path (:func:`split_json_body`,
        :func:`parse_produce_request`) then names each problem per record. Both paths build
        the same batches for every body this one accepts (tests/web/test_records.py checks
        that property).
        """
        if self.extra_header is None and not self.batches and self._add_plain(body):
            return True
        specs = _decode_requests(_decode_request_lines, body)
        if specs is None:
            return False
        batches, now_ms, partitions = self.batches, self.now_ms, self.partitions
        round_robin = self.round_robin
        # The common record is handled inline: a call per record costs a tenth of its budget.
        plain = self.extra_header is None
        try:
            for index, spec in enumerate(specs):
                value = spec.value
                partition = spec.partition_id
                if (plain and partition is not None and partition < partitions
                        and spec.key is None and value is not None and value.type == "STRING"
                        and value.data.__class__ is str and not spec.headers
                        and spec.timestamp is None):
                    data = value.data.encode()
                    batch = batches.get(partition)
                    if batch is None:
                        batch = batches[partition] = PartitionBatch(now_ms)
                    indexes = batch.indexes
                    plain_values = batch.plain  # batch.append_plain(data), inline
                    if plain_values is not None:
                        plain_values.append(data)
                    else:
                        batch.append(len(indexes), now_ms, None, data, NO_HEADERS)
                    indexes.append(index)
                    batch.shapes.append(len(data))
                else:
                    self.add(index, _record_of(spec))
        except (InvalidRecordError, UnicodeEncodeError):
            batches.clear()
            self.refused.clear()
            self.round_robin = round_robin
            return False
        return True


# msgspec structs of the v3 request shape; gc=False as they hold no reference cycles (the
# collector then skips them, which a body of hundreds of records makes worth it).


class _DataSpec(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    data: Any
    type: Any = "JSON"
    subject: Any = None
    schema_version: Any = None


class _HeaderSpec(msgspec.Struct, gc=False):  # other fields ignored, as the general path does
    name: str
    value: str | None = None


class _RequestSpec(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    partition_id: Annotated[int, msgspec.Meta(ge=0)] | None = None
    key: _DataSpec | None = None
    value: _DataSpec | None = None
    headers: list[_HeaderSpec] | None = None
    timestamp: int | str | None = None


_decode_request_lines = msgspec.json.Decoder(_RequestSpec).decode_lines


class _PlainValueSpec(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    data: str
    type: Literal["STRING"]
    subject: Any = None
    schema_version: Any = None


class _PlainRequestSpec(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A request of the plain shape: a STRING value, maybe a partition, nothing else."""

    value: _PlainValueSpec
    partition_id: Annotated[int, msgspec.Meta(ge=0)] | None = None
    key: None = None
    headers: None = None
    timestamp: None = None


_decode_plain_lines = msgspec.json.Decoder(_PlainRequestSpec).decode_lines


_Spec = TypeVar("_Spec")


def _decode_requests(decode_lines: Callable[[bytes], list[_Spec]], body: bytes
                     ) -> list[_Spec] | None:
    """The requests of a body of JSON objects separated by whitespace (one per line, as a
    rule), shape-checked by ``decode_lines``; None if it does not take them or finds none."""
    try:
        return decode_lines(body) or None
    except msgspec.DecodeError:  # also ValidationError
        return None


def _record_of(spec: _RequestSpec) -> ProduceRecord:
    key_spec, value_spec = spec.key, spec.value
    key, key_type = (None, None) if key_spec is None else _encode_value(
        "key", key_spec.type, key_spec.data)
    value, value_type = (None, None) if value_spec is None else _encode_value(
        "value", value_spec.type, value_spec.data)
    headers = NO_HEADERS
    if spec.headers:
        headers = [(header.name, None if header.value is None
                    else decode_base64(f"headers[{index}].value", header.value))
                   for index, header in enumerate(spec.headers)]
    timestamp = spec.timestamp
    if timestamp is not None:
        timestamp = parse_timestamp("timestamp", timestamp)
    return tuple.__new__(ProduceRecord, (
        spec.partition_id, key, value, headers, timestamp, key_type, value_type))


# -- v2 produce: Confluent REST Proxy v2, Redpanda's HTTP proxy, Strimzi's Kafka Bridge ---------
#
# ``POST /topics/{topic}`` with ``{"records": [{"key", "value", "partition"}, ...]}``; the
# Content-Type names how keys and values are embedded (application/vnd.kafka.<format>.v2+json).
# Headers ({"key", "value": base64}) and timestamps are the Strimzi bridge's additions.

#: Embedded formats by Content-Type: base64 bytes, any JSON value (stored as its JSON text),
#: or UTF-8 text (the Strimzi bridge's).
V2_FORMATS = {
    "application/vnd.kafka.binary.v2+json": "BINARY",
    "application/vnd.kafka.json.v2+json": "JSON",
    "application/vnd.kafka.text.v2+json": "STRING",
}
_JSON_NULL = msgspec.Raw(b"null")


class _V2Header(msgspec.Struct):
    key: str
    value: str | None = None


class _V2JsonRecord(msgspec.Struct, forbid_unknown_fields=True):
    key: msgspec.Raw = _JSON_NULL
    value: msgspec.Raw = _JSON_NULL
    partition: Annotated[int, msgspec.Meta(ge=0)] | None = None
    headers: list[_V2Header] | None = None
    timestamp: Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMESTAMP_MS)] | None = None


class _V2TextRecord(msgspec.Struct, forbid_unknown_fields=True):
    key: str | None = None
    value: str | None = None
    partition: Annotated[int, msgspec.Meta(ge=0)] | None = None
    headers: list[_V2Header] | None = None
    timestamp: Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMESTAMP_MS)] | None = None


class _V2JsonRequest(msgspec.Struct, forbid_unknown_fields=True):
    records: list[_V2JsonRecord]


class _V2TextRequest(msgspec.Struct, forbid_unknown_fields=True):
    records: list[_V2TextRecord]


_decode_v2_json = msgspec.json.Decoder(_V2JsonRequest).decode
_decode_v2_text = msgspec.json.Decoder(_V2TextRequest).decode


class MalformedJsonError(ValueError):
    """A body that is not JSON at all (as opposed to JSON of the wrong shape)."""


def parse_v2_produce(body: bytes, data_type: str, batches: RequestBatches,
                     partition: int | None = None) -> int:
    """Add the records of a v2 produce request to ``batches``; how many there were.

    ``data_type`` is from :data:`V2_FORMATS`. The whole request is checked before anything is
    written: a record of the wrong shape or with bad base64 raises InvalidRecordError naming it
    (``$.records[3].partition``; ``batches`` is then to be discarded), a body that is no JSON
    raises MalformedJsonError. ``partition`` (from the URL) overrides the records' own. The
    v2 answers say nothing of a record but where it went, so no answer shapes are kept.
    """
    if batches.extra_header is None and not batches.batches:
        count = _add_v2_plain(body, data_type, batches, partition)
        if count:
            return count
    try:
        if data_type == "JSON":
            request: _V2JsonRequest | _V2TextRequest = _decode_v2_json(body)
        else:
            request = _decode_v2_text(body)
    except msgspec.ValidationError as exc:
        raise InvalidRecordError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise MalformedJsonError(f"malformed JSON: {exc}") from None
    if not request.records:
        raise InvalidRecordError("records must not be empty")
    place, write = batches.place, batches.write
    specs: list[_V2JsonRecord | _V2TextRecord] = list(request.records)
    for index, spec in enumerate(specs):
        # An absent key or value is the struct's default object itself: no call for it.
        key_data, value_data = spec.key, spec.value
        key = None if key_data is None or key_data is _JSON_NULL else _v2_bytes(
            key_data, data_type, index, "key")
        value = None if value_data is None or value_data is _JSON_NULL else _v2_bytes(
            value_data, data_type, index, "value")
        headers = NO_HEADERS
        if spec.headers:
            headers = [(header.key, None if header.value is None else decode_base64(
                f"records[{index}].headers[{number}].value", header.value))
                for number, header in enumerate(spec.headers)]
        batch = place(index, spec.partition if partition is None else partition, key)
        if batch is not None:
            write(batch, index, key, value, headers, spec.timestamp)
    return len(specs)


class _V2PlainBinaryRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    value: bytes  # msgspec decodes the base64, never more leniently than binascii (tested)
    partition: Annotated[int, msgspec.Meta(ge=0)] | None = None
    key: None = None
    headers: None = None
    timestamp: None = None


class _V2PlainTextRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    value: str
    partition: Annotated[int, msgspec.Meta(ge=0)] | None = None
    key: None = None
    headers: None = None
    timestamp: None = None


class _V2PlainBinaryRequest(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    records: list[_V2PlainBinaryRecord]


class _V2PlainTextRequest(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    records: list[_V2PlainTextRecord]


_decode_v2_plain_binary = msgspec.json.Decoder(_V2PlainBinaryRequest).decode
_decode_v2_plain_text = msgspec.json.Decoder(_V2PlainTextRequest).decode


def _add_v2_plain(body: bytes, data_type: str, batches: RequestBatches,
                  partition: int | None) -> int:
    """:func:`parse_v2_produce` for a request of plain binary or text records (a value and
    nothing else but one partition for all, or none) in whole-list steps; how many records
    were added, 0 (nothing added) for any other request."""
    try:
        if data_type == "BINARY":
            request: _V2PlainBinaryRequest | _V2PlainTextRequest = _decode_v2_plain_binary(body)
        elif data_type == "STRING":
            request = _decode_v2_plain_text(body)
        else:
            return 0
    except msgspec.DecodeError:  # also ValidationError
        return 0
    specs: list[_V2PlainBinaryRecord] | list[_V2PlainTextRecord] = request.records
    if not specs:
        return 0
    targets = {partition} if partition is not None else {spec.partition for spec in specs}
    if len(targets) != 1:
        return 0
    if isinstance(request, _V2PlainBinaryRequest):
        values = [spec.value for spec in request.records]
    else:
        try:
            values = [spec.value.encode() for spec in request.records]
        except UnicodeEncodeError:
            return 0
    return len(values) if batches.add_plain(values, targets.pop()) else 0


def _v2_bytes(data: msgspec.Raw | str, data_type: str, index: int, field: str) -> bytes | None:
    if isinstance(data, msgspec.Raw):  # JSON: the value's own JSON text
        raw = bytes(data)
        return None if raw == b"null" else raw
    try:  # the field's name is only spelled out for an error (this runs once per record)
        if data_type == "STRING":
            return data.encode()
        return binascii.a2b_base64(data, strict_mode=True)
    except UnicodeEncodeError:
        raise _lone_surrogate(f"records[{index}].{field}") from None
    except (binascii.Error, ValueError) as exc:
        raise _bad_base64(f"records[{index}].{field}", exc) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


#: The standard library's parser, minus the NaN/Infinity extension (records must hold real JSON).
_decoder = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_lines(buffer: str) -> list[Any] | None:
    """The values of a buffer holding one whole JSON value per line, in ONE C-level parse.

    The lines are joined into an array (newlines become commas) and parsed at once. A newline
    inside a value turns into a misplaced comma, which makes the array invalid, except where it
    stood for a missing comma; then the array has fewer values than the buffer has lines, which
    is checked too. None when the buffer is not of that shape: the caller falls back to the
    general parser. (orjson parses about twice as fast but turns integers past 64 bits into
    floats, which would change JSON-typed data.)
    """
    stripped = buffer.strip()
    if not stripped:
        return []
    try:
        values = _decoder.decode("[" + stripped.replace("\n", ",") + "]")
    except ValueError:
        return None
    return values if len(values) == stripped.count("\n") + 1 else None


def split_json_values(buffer: str, *, complete: bool = False
                      ) -> tuple[list[Any], str, str | None]:
    """Complete JSON values at the front of ``buffer``, the unparsed rest, and a parse error.

    Values may be separated by whitespace or commas. A value cut off at the end of the buffer is
    left in the rest (more may arrive). With ``complete`` the buffer is a whole body.
    """
    if complete or buffer.endswith("\n"):
        whole_lines = _parse_lines(buffer)
        if whole_lines is not None:
            return whole_lines, "", None
    values: list[Any] = []
    position = 0
    length = len(buffer)
    while True:
        while position < length and buffer[position] in " \t\r\n,":
            position += 1
        if position >= length:
            return values, "", None
        try:
            value, end = _decoder.raw_decode(buffer, position)
        except json.JSONDecodeError as exc:
            return values, buffer[position:], f"malformed JSON: {exc.msg} at {exc.pos - position}"
        except ValueError as exc:  # NaN or Infinity
            return values, buffer[position:], f"malformed JSON: {exc}"
        values.append(value)
        position = end


def split_json_body(body: bytes) -> tuple[list[Any], str | None]:
    """Every JSON value of a whole request body, or the problem that makes it malformed.

    The same parser as a streamed body's (:func:`split_json_values`), given the whole body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], f"body is not UTF-8: {exc}"
    values, rest, problem = split_json_values(text, complete=True)
    if problem is None and rest.strip():
        problem = "truncated JSON body"
    return values, problem


class JsonStream:
    """Splits a request body arriving in chunks into JSON values, as soon as each is complete.

    Chunks are decoded incrementally, so a UTF-8 character cut by a chunk border survives. A
    parse problem is only final at the end: until then it may be a value cut by a border.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    @property
    def pending_chars(self) -> int:
        """Characters received but not yet part of a complete value."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Any]:
        self._buffer += self._decoder.decode(chunk)
        values, self._buffer, _ = split_json_values(self._buffer)
        return values

    def finish(self) -> str | None:
        """None when the body ended cleanly, else what is wrong with its tail."""
        self._buffer += self._decoder.decode(b"", final=True)
        if not self._buffer.strip():
            return None
        _, _, problem = split_json_values(self._buffer)
        return problem or "truncated JSON at end of body"


def choose_partition(key: bytes | None, partitions: int, counter: int) -> int:
    """Kafka's default partitioner: murmur2 of the key, round-robin for null keys."""
    if key is None:
        return counter % partitions
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


#: Each record's last byte: its header count, 0.
_NO_HEADER_COUNT = b"\x00"
#: Past this many records a plain batch is left to the builder: the cached templates stay
#: small (at most 32 of them, about 11 kB each at most).
_PLAIN_MAX_RECORDS = 1024


def _varint(value: int) -> bytes:
    out = bytearray()
    encode_varint(value, out.append)  # aiokafka's zigzag varint
    return bytes(out)


@functools.lru_cache(maxsize=32)
def _plain_records_template(value_size: int, count: int) -> bytes:
    """The records of a plain batch with ``%s`` for each value: before it the length,
    attributes 0, timestamp delta 0, offset delta, null key and value length; after it no
    headers. One ``%`` then fills in every value, in C."""
    size_field = _varint(value_size)
    parts = []
    for offset_delta in range(count):
        body = b"\x00\x00" + _varint(offset_delta) + b"\x01" + size_field
        prefix = _varint(len(body) + value_size + 1) + body
        parts.append(prefix.replace(b"%", b"%%") + b"%s" + _NO_HEADER_COUNT)
    return b"".join(parts)


def plain_batch_fits(values: list[bytes]) -> bool:
    """Whether :func:`plain_batch` takes these values: all of one size, and not too many."""
    return len(values) <= _PLAIN_MAX_RECORDS and len(set(map(len, values))) == 1


def plain_batch(values: list[bytes], timestamp_ms: int) -> bytes:
    """The uncompressed RecordBatch v2 of records with these values (one size), no key, no
    headers and ``timestamp_ms``: byte for byte what aiokafka's builder makes of them (the
    tests hold the two equal), by one C-level formatting instead of a call per record.

    HTTP produce's common batch: the builder's per-record call was a tenth of its cost."""
    count = len(values)
    records = _plain_records_template(len(values[0]), count) % tuple(values)
    # The header in the log's own layout; its CRC covers it from CRC_START on, and the records.
    header = [0, HEADER_SIZE - LOG_OVERHEAD + len(records), -1, MAGIC, 0, 0, count - 1,
              timestamp_ms, timestamp_ms, -1, -1, -1, count]
    header[4] = crc32c(records, crc32c(HEADER.pack(*header)[CRC_START:]))
    return HEADER.pack(*header) + records


def new_batch_builder() -> DefaultRecordBatchBuilder:
    """A builder of one uncompressed RecordBatch v2 (aiokafka's, in C).

    ``append(offset_delta, timestamp_ms, key, value, headers)`` with relative offsets 0..n-1 (the
    log assigns the real base offset on append) and ``headers`` a list; ``build()`` ends it."""
    return DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
        base_sequence=-1, batch_size=1 << 31,
    )


def build_batch(
    records: Sequence[tuple[int, bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]],
) -> bytes:
    """An uncompressed RecordBatch v2 of ``(timestamp_ms, key, value, headers)`` tuples."""
    builder = new_batch_builder()
    for offset_delta, (timestamp, key, value, headers) in enumerate(records):
        builder.append(offset_delta, timestamp, key, value, list(headers))
    return bytes(builder.build())


class ConsumedRecord(NamedTuple):
    """A record read back from a partition log."""

    offset: int
    timestamp_ms: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def decode_batches(data: bytes, start_offset: int = 0) -> Iterator[ConsumedRecord]:
    """Records at or after ``start_offset`` in concatenated batches; control batches skipped.

    A read returns whole batches, so the first batch can start before ``start_offset`` and the
    last one can be cut short by the byte limit (MemoryRecords stops at a partial batch).
    """
    records = MemoryRecords(data)
    while True:
        batch = records.next_batch()
        if batch is None:
            return
        if batch.is_control_batch:
            continue
        timestamp_type = batch.timestamp_type
        for record in batch:
            if record.offset < start_offset:
                continue
            yield ConsumedRecord(
                offset=record.offset,
                timestamp_ms=record.timestamp,
                timestamp_type=timestamp_type,
                key=record.key,
                value=record.value,
                headers=tuple((name, value) for name, value in record.headers),
            )


def render_data(data: bytes | None, record_format: RecordFormat) -> Any:
    """A key or value as JSON: base64 text, parsed JSON (text if it isn't JSON) or UTF-8 text."""
    if data is None:
        return None
    if record_format == "binary":
        return base64.b64encode(data).decode()
    text = data.decode("utf-8", errors="replace")
    if record_format == "json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def render_record(topic: str, partition: int, record: ConsumedRecord,
                  record_format: RecordFormat) -> dict[str, Any]:
    """The JSON object of a consumed record (v2 consumer records and the live stream)."""
    return {
        "topic": topic,
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": render_data(record.key, record_format),
        "value": render_data(record.value, record_format),
        "headers": [
            {"name": name, "value": None if value is None else base64.b64encode(value).decode()}
            for name, value in record.headers
        ],
    }


__all__ = [
    "DATA_TYPES",
    "NO_HEADERS",
    "RECORD_FORMATS",
    "V2_FORMATS",
    "AnswerShape",
    "ConsumedRecord",
    "InvalidRecordError",
    "JsonStream",
    "MalformedJsonError",
    "PartitionBatch",
    "ProduceRecord",
    "RecordFormat",
    "RequestBatches",
    "UnknownPartitionError",
    "build_batch",
    "choose_partition",
    "decode_base64",
    "decode_batches",
    "format_timestamp",
    "new_batch_builder",
    "parse_produce_request",
    "parse_timestamp",
    "parse_v2_produce",
    "plain_batch",
    "plain_batch_fits",
    "render_data",
    "render_record",
    "split_json_body",
    "split_json_values",
]
