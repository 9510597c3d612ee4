"""JSON request bodies: one parser for every route, and a nesting limit checked before parsing.

The C parsers (the standard library's and msgspec) recurse once per nesting level and give up
with ``RecursionError`` somewhere near a thousand levels, depending on how deep the stack already
is; a value that barely parsed can then fail when it is encoded again or read back by a consumer.
So bodies are refused with 400 beyond :data:`MAX_JSON_DEPTH` levels, found without recursion and
in C-speed passes: strings are cut out (escaped backslashes and quotes dropped first, so what is
left between quotes is a string), brackets picked out (``bytes.translate``), innermost ``[]``
pairs removed a few times over (each pass lowers the depth by one, and flat data vanishes), and
what is left walked by runs of brackets. About 5-10 ms per MiB; a body with fewer brackets than
the limit costs two ``count`` calls, and a produce body already parsed one value per line is
checked line by line (a line with fewer brackets than the limit cannot be too deep). Crafted
worst cases take up to ~0.7 s for 8 MiB, so bodies past 256 KiB are checked in a worker thread
and the event loop keeps getting turns.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from headrace.web import errors
from headrace.web.errors import ApiError

#: Nesting levels a JSON request body may have (objects and arrays together).
MAX_JSON_DEPTH = 128

_NOT_QUOTE_OR_BRACKET = bytes(range(256)).translate(None, b'[]{}"')
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_RUN = re.compile(rb"\[+|\]+")
#: Leaf-removing passes before walking the runs (flat or wide data is gone after one or two).
_PASSES = 16
#: Bodies up to this size are checked on the event loop (well under a millisecond).
_INLINE_CHECK_BYTES = 256 * 1024


def _nests_deeper(brackets: bytes, limit: int) -> bool:
    """Whether a string of ``[`` and ``]`` nests deeper than ``limit`` (unbalanced input is
    left to the parser to name)."""
    for _ in range(_PASSES):
        if b"[" * (limit + 1) in brackets:
            return True
        reduced = brackets.replace(b"[]", b"")
        if not reduced or len(reduced) == len(brackets):
            return bool(reduced) and _deepest_run_walk(reduced) > limit
        brackets = reduced
        limit -= 1  # removing every leaf pair made the whole one level shallower
        if limit < 0:
            return True
    return _deepest_run_walk(brackets) > limit


def _deepest_run_walk(brackets: bytes) -> int:
    depth = deepest = 0
    for run in _RUN.finditer(brackets):
        length = run.end() - run.start()
        if brackets[run.start()] == 0x5B:  # "["
            depth += length
            deepest = max(deepest, depth)
        else:
            depth -= length
    return deepest


def _outside_strings(body: bytes) -> bytes:
    """The brackets of JSON text ``body`` that are not inside strings, as ``[`` and ``]``."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    quotes_and_brackets = unescaped.translate(_AS_SQUARE, _NOT_QUOTE_OR_BRACKET)
    return b"".join(quotes_and_brackets.split(b'"')[::2])


def nests_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text ``body`` nests objects and arrays deeper than ``limit``."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return _nests_deeper(_outside_strings(body), limit)


def lines_nest_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """:func:`nests_too_deep` for a body known to hold one whole JSON value per line."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return any(line.count(b"[") + line.count(b"{") > limit and nests_too_deep(line, limit)
               for line in body.split(b"\n"))


def too_deep_error() -> ApiError:
    return ApiError(400, errors.MALFORMED_JSON,
                    f"JSON nests deeper than {MAX_JSON_DEPTH} levels of objects and arrays")


async def check_json_depth(body: bytes, *, one_value_per_line: bool = False) -> None:
    """400 when ``body`` nests too deep; every route awaits this before it uses what a JSON
    parser made of the body (``one_value_per_line``: the parser took it as such)."""
    check = lines_nest_too_deep if one_value_per_line else nests_too_deep
    if len(body) <= _INLINE_CHECK_BYTES:
        too_deep = check(body)
    else:
        too_deep = await asyncio.to_thread(check, body)
    if too_deep:
        raise too_deep_error()


async def parse_json(body: bytes) -> Any:
    """A whole request body as one JSON value: 400 naming the problem when it is empty,
    malformed or too deep."""
    if not body.strip():
        raise ApiError(400, errors.MALFORMED_JSON, "request body is empty; a JSON body is needed")
    await check_json_depth(body)
    try:
        return json.loads(body)
    except RecursionError:  # unreachable after the check; kept so it can never be a 500
        raise too_deep_error() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, errors.MALFORMED_JSON, f"malformed JSON: {exc}") from None


__all__ = [
    "MAX_JSON_DEPTH", "check_json_depth", "lines_nest_too_deep", "nests_too_deep", "parse_json",
    "too_deep_error",
]
