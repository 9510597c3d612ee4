"""How ``headrace consume`` prints a record: ``text``, ``json`` or a kcat-style format string.

A format string is kcat's ``-f``: ``%k`` key, ``%v`` (or kcat's ``%s``) value, ``%t`` topic,
``%p`` partition, ``%o`` offset, ``%T`` timestamp (ms), ``%h`` headers (``name=value`` joined by
``,``), ``%K``/``%S`` key/value length (-1 for null), ``%%`` a percent sign; ``\\n``, ``\\r``,
``\\t``, ``\\\\`` and ``\\xHH`` escapes. As in kcat nothing is appended: end it with ``\\n``.
The string is compiled once, when the flag is parsed, so a typo is a usage error.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What a directive prints for one confluent-kafka Message.
Field = Callable[[Any], str]


def _text(data: bytes | None) -> str:
    return "" if data is None else data.decode("utf-8", errors="replace")


def _length(data: bytes | None) -> str:
    return "-1" if data is None else str(len(data))


def _headers(message: Any) -> str:
    return ",".join(f"{name}={_text(value)}" for name, value in (message.headers() or []))


DIRECTIVES: dict[str, Field] = {
    "k": lambda m: _text(m.key()),
    "v": lambda m: _text(m.value()),
    "s": lambda m: _text(m.value()),
    "t": lambda m: str(m.topic()),
    "p": lambda m: str(m.partition()),
    "o": lambda m: str(m.offset()),
    "T": lambda m: str(m.timestamp()[1]),
    "h": _headers,
    "K": lambda m: _length(m.key()),
    "S": lambda m: _length(m.value()),
}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}
_TOKEN = re.compile(r"%(.?)|\\x([0-9a-fA-F]{2})|\\(.?)|[^%\\]+", re.DOTALL)


@dataclass(frozen=True, slots=True)
class FormatString:
    """A compiled format string: literal text and fields, in order."""

    source: str
    parts: tuple[str | Field, ...]

    def render(self, message: Any) -> str:
        return "".join(part if isinstance(part, str) else part(message) for part in self.parts)


def parse_format(text: str) -> str | FormatString:
    """The ``--format`` flag: ``text``, ``json`` or a format string (argparse type)."""
    if text in ("text", "json"):
        return text
    if "%" not in text:
        raise argparse.ArgumentTypeError(
            f"expected text, json or a format string such as '%k %v\\n', got {text!r}")
    parts: list[str | Field] = []
    for match in _TOKEN.finditer(text):
        directive, hex_code, escape = match.groups()
        if directive is not None:
            if directive == "%":
                parts.append("%")
            elif directive in DIRECTIVES:
                parts.append(DIRECTIVES[directive])
            else:
                known = " ".join(f"%{d}" for d in DIRECTIVES)
                raise argparse.ArgumentTypeError(
                    f"unknown directive %{directive} in {text!r} (known: {known} %%)")
        elif hex_code is not None:
            parts.append(chr(int(hex_code, 16)))
        elif escape is not None:
            parts.append(_ESCAPES.get(escape, "\\" + escape))
        else:
            parts.append(match.group(0))
    return FormatString(text, tuple(parts))


def render(message: Any, output: str | FormatString, *, print_key: bool = False,
           key_separator: str = "\t") -> str:
    """One record as ``output`` says; ``text`` and ``json`` end with a newline."""
    if isinstance(output, FormatString):
        return output.render(message)
    if output == "json":
        return json.dumps({
            "topic": message.topic(), "partition": message.partition(),
            "offset": message.offset(), "timestamp": message.timestamp()[1],
            "key": text_or_base64(message.key()), "value": text_or_base64(message.value()),
            "headers": [{"name": n, "value": text_or_base64(v)}
                        for n, v in (message.headers() or [])],
        }, ensure_ascii=False) + "\n"
    value = _text(message.value())
    if print_key:
        return _text(message.key()) + key_separator + value + "\n"
    return value + "\n"


def text_or_base64(data: bytes | None) -> Any:
    """UTF-8 text as a string, other bytes as ``{"base64": ...}`` (None stays None)."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def bytes_from_json(value: Any, what: str) -> bytes | None:
    """The inverse of :func:`text_or_base64` (for ``produce --input json``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except ValueError:
            raise ValueError(f"{what}: invalid base64") from None
    raise ValueError(f"{what} must be a string, null or {{\"base64\": ...}}")
