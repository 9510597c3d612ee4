"""Sorting a produce request's records into one RecordBatch per partition, as they are read.

:class:`RequestBatches` places each record (its own partition, else by key hash, else
round-robin) into a :class:`PartitionBatch`, which builds its batch with
:mod:`headrace.record`'s builder: plain records (a value and nothing else) by the fast plain
template, others by the general builder. The fast path for whole NDJSON bodies (msgspec
checks the shape of all lines at once) lives here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from aiokafka.partitioner import murmur2

from headrace.record import BatchBuilder, new_batch_builder, plain_batch, plain_batch_fits
from headrace.web.records.values import (
    NO_HEADERS,
    InvalidRecordError,
    ProduceRecord,
    decode_base64,
    encode_value,
    parse_timestamp,
)


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
        self.builder: BatchBuilder | None = None
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

    def _builder(self) -> BatchBuilder:
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
    key, key_type = (None, None) if key_spec is None else encode_value(
        "key", key_spec.type, key_spec.data)
    value, value_type = (None, None) if value_spec is None else encode_value(
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



def choose_partition(key: bytes | None, partitions: int, counter: int) -> int:
    """Kafka's default partitioner: murmur2 of the key, round-robin for null keys."""
    if key is None:
        return counter % partitions
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions
