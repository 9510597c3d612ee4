"""Consumed records as JSON: the v2 consumer's records and the live stream's events.

Keys and values render as base64 (``binary``), parsed JSON (``json``, text if it is not JSON)
or UTF-8 text (``string``); headers always as base64.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

from headrace.record import Record

#: Renderings of consumed keys/values (v2 consumer ``format``, stream ``format`` parameter).
RecordFormat = Literal["binary", "json", "string"]
RECORD_FORMATS: tuple[RecordFormat, ...] = ("binary", "json", "string")


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


def render_record(topic: str, partition: int, record: Record,
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
