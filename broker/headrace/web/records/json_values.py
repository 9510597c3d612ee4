"""Splitting request bodies into JSON values: whole bodies, and bodies streamed in chunks.

A produce body holds one JSON value per line as a rule (NDJSON), but values separated by any
whitespace or commas are taken too. Values are parsed by the standard library's parser without
its NaN/Infinity extension: records must hold real JSON.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from headrace.web.json_body import nests_too_deep


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
    except (ValueError, RecursionError):
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
        except RecursionError:  # callers check the depth first; never a 500 regardless
            return values, buffer[position:], "malformed JSON: nested too deeply"
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
        #: A value nested deeper than the limit arrived: nothing after it is taken.
        self.too_deep = False

    @property
    def pending_chars(self) -> int:
        """Characters received but not yet part of a complete value."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Any]:
        """The values completed by ``chunk``. Past the nesting limit, the values on the lines
        before the deep one, with ``too_deep`` set: the stream ends there."""
        self._buffer += self._decoder.decode(chunk)
        if nests_too_deep(self._buffer.encode()):
            self.too_deep = True
            lines = self._buffer.split("\n")
            self._buffer = ""
            for index, line in enumerate(lines):
                if nests_too_deep(line.encode()):  # the lines before it are whole
                    values, _, _ = split_json_values("\n".join(lines[:index]), complete=True)
                    return values
            return []  # a deep value spread over lines: nothing before it is known whole
        values, self._buffer, _ = split_json_values(self._buffer)
        return values

    def finish(self) -> str | None:
        """None when the body ended cleanly, else what is wrong with its tail."""
        self._buffer += self._decoder.decode(b"", final=True)
        if not self._buffer.strip():
            return None
        _, _, problem = split_json_values(self._buffer)
        return problem or "truncated JSON at end of body"
