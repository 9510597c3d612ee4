"""The records of a REST Proxy v3 produce request: their shape, values, headers, timestamps.

One request object (``{"partition_id", "key", "value", "headers", "timestamp"}``, Confluent
REST Proxy v3) becomes a :class:`ProduceRecord` of bytes, or an :class:`InvalidRecordError`
naming the offending field. Pure functions, each validation rule testable on its own; the fast
paths for whole bodies (batches.py) and the v2 shapes (v2.py) share these rules.
"""

from __future__ import annotations

import binascii
import functools
import json
from datetime import UTC, datetime
from typing import Any, NamedTuple

#: Confluent's data types for keys and values in a produce request.
DATA_TYPES = ("JSON", "STRING", "BINARY")


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
    return encode_value(field, spec.get("type", "JSON"), data)


def encode_value(field: str, data_type: Any, data: Any) -> tuple[bytes | None, str | None]:
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
        raise lone_surrogate_error(f"{field}.data") from None


def lone_surrogate_error(field: str) -> InvalidRecordError:
    return InvalidRecordError(f"{field} holds a lone UTF-16 surrogate")


def bad_base64_error(field: str, problem: Exception) -> InvalidRecordError:
    return InvalidRecordError(f"{field} is not valid base64: {problem}")


def decode_base64(field: str, text: str) -> bytes:
    """Strict base64 (padding and alphabet checked); InvalidRecordError names ``field``.

    binascii's strict mode checks in C what ``b64decode(validate=True)`` checks with a regular
    expression, several times faster on the produce path."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise bad_base64_error(field, exc) from None


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
