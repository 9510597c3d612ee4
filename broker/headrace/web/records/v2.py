"""v2 produce: Confluent REST Proxy v2, Redpanda's HTTP proxy, Strimzi's Kafka Bridge.

``POST /topics/{topic}`` with ``{"records": [{"key", "value", "partition"}, ...]}``; the
Content-Type names how keys and values are embedded (application/vnd.kafka.<format>.v2+json).
Headers ({"key", "value": base64}) and timestamps are the Strimzi bridge's additions. The
records go into the same :class:`~headrace.web.records.batches.RequestBatches` as v3's.
"""

from __future__ import annotations

import binascii
from typing import Annotated

import msgspec

from headrace.web.records.batches import RequestBatches
from headrace.web.records.values import (
    MAX_TIMESTAMP_MS,
    NO_HEADERS,
    InvalidRecordError,
    bad_base64_error,
    decode_base64,
    lone_surrogate_error,
)

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
        raise lone_surrogate_error(f"records[{index}].{field}") from None
    except (binascii.Error, ValueError) as exc:
        raise bad_base64_error(f"records[{index}].{field}", exc) from None
