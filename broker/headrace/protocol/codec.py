"""Decode Kafka requests and encode responses with kio's generated codecs.

kio knows every request/response schema by (api key, version); this module caches the per-version
readers and writers so the hot path is one dict lookup plus kio's native decoder, and frames
responses with the right response header version (v0 for ApiVersions, v1 for flexible APIs).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from headrace.record.varint import READ_ERRORS, read_uvarint

API_VERSIONS_KEY = 18

_HEADER_PREFIX = struct.Struct(">hhi")
_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


class MalformedRequestError(ValueError):
    """The frame cannot be parsed as a Kafka request: the connection must be closed."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The fields every request header carries, parsed by hand (kio needs the version first)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    #: Offset of the request body inside the frame.
    body_offset: int


def parse_request_header(frame: bytes | memoryview, flexible: bool | None = None) -> RequestHeader:
    """Parse a request header v1 (non-flexible) or v2 (flexible, with a tagged-field section).

    When ``flexible`` is None only the fixed prefix and client id are parsed and ``body_offset``
    points just after the client id (callers that know nothing of the API use it for errors).
    """
    if len(frame) < 10:
        raise MalformedRequestError("request header too short")
    api_key, api_version, correlation_id = _HEADER_PREFIX.unpack_from(frame, 0)
    (client_id_length,) = _INT16.unpack_from(frame, 8)
    offset = 10
    client_id: str | None = None
    if client_id_length >= 0:
        end = offset + client_id_length
        if end > len(frame):
            raise MalformedRequestError("client id runs past the frame")
        try:
            client_id = bytes(frame[offset:end]).decode()
        except UnicodeDecodeError as error:
            raise MalformedRequestError("client id is not UTF-8") from error
        offset = end
    elif client_id_length != -1:
        raise MalformedRequestError("negative client id length")
    if flexible:
        offset = skip_tagged_fields(frame, offset)
    return RequestHeader(api_key, api_version, correlation_id, client_id, offset)


def _read_uvarint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    try:
        value, size = read_uvarint(data, offset)
    except READ_ERRORS as error:
        raise MalformedRequestError(f"bad varint at byte {offset}: {error}") from None
    return value, offset + size


def skip_tagged_fields(data: bytes | memoryview, offset: int) -> int:
    """Return the offset after a tagged-field section starting at ``offset``."""
    count, offset = _read_uvarint(data, offset)
    for _ in range(count):
        _tag, offset = _read_uvarint(data, offset)
        size, offset = _read_uvarint(data, offset)
        offset += size
        if offset > len(data):
            raise MalformedRequestError("tagged field runs past the frame")
    return offset


@cache
def request_schema(api_key: int, api_version: int) -> type[Any] | None:
    """The kio request class for (api key, version), or None when kio does not know it."""
    try:
        return load_request_schema(api_key, api_version)
    except Exception:  # kio raises several lookup error types; all mean "unknown"
        return None


@cache
def response_schema(api_key: int, api_version: int) -> type[Any]:
    return load_response_schema(api_key, api_version)


_readers: dict[type[Any], Any] = {}
_writers: dict[type[Any], Any] = {}


def schema_reader(schema: type[Any]) -> Any:
    """kio's reader for ``schema``, built once (building one walks the whole schema)."""
    reader = _readers.get(schema)
    if reader is None:
        reader = _readers[schema] = entity_reader(schema)
    return reader


def schema_writer(schema: type[Any]) -> Any:
    """kio's writer for ``schema``, built once."""
    writer = _writers.get(schema)
    if writer is None:
        writer = _writers[schema] = entity_writer(schema)
    return writer


def encode_frame(entities: Iterable[Any], header: bytes = b"") -> bytes:
    """A complete frame, size prefix included: ``header`` bytes, then each kio entity in turn."""
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    buffer.write(header)
    for entity in entities:
        schema_writer(type(entity))(buffer, entity)
    frame = buffer.getbuffer()
    _INT32.pack_into(frame, 0, len(frame) - 4)
    del frame
    return buffer.getvalue()


def encode_body(entity: Any) -> bytes:
    """One kio entity's bytes alone (no size prefix, no header): a PreEncodedResponse's body."""
    buffer = io.BytesIO()
    schema_writer(type(entity))(buffer, entity)
    return buffer.getvalue()


def is_flexible(api_key: int, api_version: int) -> bool:
    schema = request_schema(api_key, api_version)
    return bool(schema is not None and schema.__flexible__)


def decode_request(
    frame: bytes | memoryview, schema: type[Any]
) -> tuple[RequestHeader, Any]:
    """Decode a whole request frame (without the 4-byte size prefix) into header and body."""
    header = parse_request_header(frame, schema.__flexible__)
    try:
        body, size = schema_reader(schema)(frame, header.body_offset)
    except Exception as error:
        raise MalformedRequestError(f"cannot decode {schema.__name__}: {error}") from error
    if header.body_offset + size > len(frame):
        raise MalformedRequestError("request body runs past the frame")
    # Trailing bytes are ignored, as Kafka does: librdkafka's Metadata v12 sends some.
    return header, body


def response_header_bytes(correlation_id: int, api_key: int, flexible: bool) -> bytes:
    """Response header v0 (correlation id) or v1 (plus an empty tagged-field section).

    ApiVersions always answers with header v0 so clients can parse it before negotiating.
    """
    if flexible and api_key != API_VERSIONS_KEY:
        return _INT32.pack(correlation_id) + b"\x00"
    return _INT32.pack(correlation_id)


def encode_response(correlation_id: int, response: Any) -> bytes:
    """Encode a kio response dataclass into a complete frame, size prefix included."""
    header = response_header_bytes(correlation_id, response.__api_key__, response.__flexible__)
    return encode_frame((response,), header)


def frame_bytes(payload_parts: list[bytes]) -> bytes:
    """Prefix already-encoded parts with their total size."""
    total = sum(len(part) for part in payload_parts)
    return _INT32.pack(total) + b"".join(payload_parts)


class FileSlice(Protocol):
    """A byte range of an open file, sent with ``os.sendfile`` (storage's FileRegion fits)."""

    @property
    def fd(self) -> int: ...

    @property
    def position(self) -> int: ...

    @property
    def size(self) -> int: ...


@dataclass(slots=True)
class PreEncodedResponse:
    """A response body already encoded by hand: bytes and file slices, in wire order.

    The connection adds the size prefix and response header; ``flexible`` selects header v1.
    """

    api_key: int
    flexible: bool
    body_parts: list[bytes | FileSlice]
    error_code: int = 0
    #: Called once the response was sent or dropped (e.g. closes file descriptors).
    release: Callable[[], None] | None = None
    #: Where ``throttle_time_ms`` (int32) sits in ``body_parts[0]``; None: this version has none.
    throttle_at: int | None = None

    def body_size(self) -> int:
        return sum(len(part) if isinstance(part, bytes) else part.size for part in self.body_parts)
