"""Which topics a consumer group reads: names and KIP-848's server-side regular expressions.

Members subscribe by topic names or by one regular expression, which the coordinator (not
the client, as in the classic protocol) matches against the cluster's topics, so a topic
created later that matches is picked up on the group's next heartbeat. Kafka evaluates
these with RE2/J; Headrace with Google's RE2 (``google-re2``): the same syntax, and matching
takes linear time, so a hostile pattern cannot stall the event loop. A pattern must match a
whole topic name (RE2/J's ``matches()``), and internal topics are never matched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sized
from functools import lru_cache
from typing import Any, Protocol

import re2  # type: ignore[import-untyped]


class TopicInfo(Protocol):
    @property
    def topic_id(self) -> uuid.UUID: ...

    @property
    def partitions(self) -> Sized: ...

    @property
    def is_internal(self) -> bool: ...


class TopicCatalog(Protocol):
    """The cluster's topics as the coordinator sees them (the broker's metadata view)."""

    def topic_names(self) -> list[str]: ...

    def topic(self, name: str) -> TopicInfo | None: ...


class InvalidRegex(ValueError):
    pass


#: RE2's memory budget per compiled pattern: bounds what one client's pattern can cost.
_RE2_MAX_MEMORY = 1 << 20


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _RE2_MAX_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        message = error.args[0] if error.args else error
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        raise InvalidRegex(f"invalid regular expression {pattern!r}: {message}") from None


def check_regex(pattern: str) -> str | None:
    """None when ``pattern`` compiles, else the message to answer with."""
    try:
        compile_regex(pattern)
    except InvalidRegex as error:
        return str(error)
    return None


def matches(pattern: str, topic: str) -> bool:
    return compile_regex(pattern).fullmatch(topic) is not None


def resolve(
    names: Iterable[str], patterns: Iterable[str], catalog: TopicCatalog
) -> dict[str, tuple[str, int]]:
    """name -> (topic id hex, partition count) of every existing topic named or matched."""
    resolved: dict[str, tuple[str, int]] = {}
    for name in names:
        info = catalog.topic(name)
        if info is not None:
            resolved[name] = (info.topic_id.hex, len(info.partitions))
    wanted = [p for p in set(patterns) if p]
    if wanted:
        for name in catalog.topic_names():
            if name in resolved or not any(matches(p, name) for p in wanted):
                continue
            info = catalog.topic(name)
            if info is not None and not info.is_internal:
                resolved[name] = (info.topic_id.hex, len(info.partitions))
    return resolved
