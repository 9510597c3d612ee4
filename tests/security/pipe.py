"""Requests through a broker's pipeline as any principal from any host, without a socket: what
the ACL matrix needs (every listener today authenticates User:ANONYMOUS)."""

from __future__ import annotations

import io
import os
import struct
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32

from headrace.app import BrokerApp
from headrace.core.requests import Session
from headrace.core.security import Principal


def session(principal: str, host: str = "10.0.0.1") -> Session:
    kind, _, name = principal.partition(":")
    return Session("PLAINTEXT", host, Principal(kind, name))


async def call(app: BrokerApp, who: Session, api_key: int, version: int, **fields: Any) -> Any:
    """One request of ``who`` through ``app``'s pipeline; the decoded response (None: none)."""
    schema = load_request_schema(api_key, version)
    header_cls = schema.__header_schema__
    buffer = io.BytesIO()
    entity_writer(header_cls)(buffer, header_cls(
        request_api_key=i16(api_key), request_api_version=i16(version),
        correlation_id=i32(7), client_id="acl-matrix"))
    entity_writer(schema)(buffer, schema(**fields))
    out = await app.pipeline.process(buffer.getvalue(), who)
    if out is None:
        return None
    try:
        frame = b"".join(
            part if isinstance(part, bytes) else os.pread(part.fd, part.size, part.position)
            for part in out.parts)
    finally:
        out.done()
    (size,) = struct.unpack_from(">i", frame)
    assert size == len(frame) - 4
    response_schema = load_response_schema(api_key, version)
    offset = 8 + (1 if response_schema.__flexible__ and api_key != 18 else 0)
    response, _ = entity_reader(response_schema)(frame, offset)
    return response
