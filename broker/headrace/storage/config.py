"""Per-topic log configuration, parsed from and rendered to Kafka's topic config names.

One immutable ``LogConfig`` per partition; the broker default is overridden per topic by the
string configs a client sends in CreateTopics / AlterConfigs (``segment.bytes`` and so on).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from headrace.storage.errors import InvalidConfigError

TimestampType = Literal["CreateTime", "LogAppendTime"]

_LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1

# Kafka topic configs we accept and hand back unchanged but do not act on (yet).
PASSTHROUGH_TOPIC_CONFIGS: frozenset[str] = frozenset(
    {
        "compression.type",
        "file.delete.delay.ms",
        "follower.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        "message.downconversion.enable",
        "message.format.version",
        "message.timestamp.difference.max.ms",
        "preallocate",
        "segment.index.bytes",
        "segment.jitter.ms",
        "unclean.leader.election.enable",
        "local.retention.bytes",
        "local.retention.ms",
        "remote.storage.enable",
    }
)


@dataclass(frozen=True)
class LogConfig:
    """Everything that governs one partition log; defaults are Kafka's broker defaults."""

    segment_bytes: int = 1024**3
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000  # -1 = keep forever
    retention_bytes: int = -1  # -1 = no size limit
    max_message_bytes: int = 1_048_588
    message_timestamp_type: TimestampType = "CreateTime"
    # CreateTime only: how far a record's timestamp may lie before / after the broker's clock
    # (Kafka 4's defaults: no bound into the past, one hour into the future).
    message_timestamp_before_max_ms: int = _LONG_MAX
    message_timestamp_after_max_ms: int = 3_600_000
    flush_messages: int | None = None  # fsync after this many records; None = leave it to the OS
    flush_ms: int | None = None  # fsync when the last fsync is older than this
    index_interval_bytes: int = 4096
    cleanup_policy: str = "delete"  # "delete", "compact" or "compact,delete"
    # Compaction (see cleaner.py): how long tombstones stay readable after their first cleaning,
    # how old a record must be before it may be compacted, the age that forces a cleaning
    # (None = never), and the share of dirty bytes that triggers one.
    delete_retention_ms: int = 24 * 3600 * 1000
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int | None = None
    min_cleanable_dirty_ratio: float = 0.5
    min_insync_replicas: int = 1
    # Accepted Kafka configs the engine stores but does not interpret, as sorted (key, value).
    passthrough: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        for key, attr, low in _RANGES:
            value = getattr(self, attr)
            if value is not None and value < low:
                raise InvalidConfigError(f"{key}: {value} is below the minimum {low}")
        if self.segment_bytes > _INT_MAX:  # index positions are int32, as in Kafka
            raise InvalidConfigError(f"segment.bytes: {self.segment_bytes} is above {_INT_MAX}")
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise InvalidConfigError(
                f"message.timestamp.type: {self.message_timestamp_type!r} is not "
                "CreateTime or LogAppendTime"
            )
        if not 0.0 <= self.min_cleanable_dirty_ratio <= 1.0:
            raise InvalidConfigError(
                f"min.cleanable.dirty.ratio: {self.min_cleanable_dirty_ratio} is not in [0, 1]"
            )
        policies = set(self.cleanup_policy.split(","))
        if not policies or not policies <= {"delete", "compact"}:
            raise InvalidConfigError(f"cleanup.policy: {self.cleanup_policy!r} is not valid")

    # Cached (a frozen dataclass keeps its __dict__): appends ask on every write.
    @functools.cached_property
    def deletes_by_retention(self) -> bool:
        """Whether time/size retention applies (cleanup.policy contains ``delete``)."""
        return "delete" in self.cleanup_policy.split(",")

    @functools.cached_property
    def compacts(self) -> bool:
        """Whether the log cleaner compacts this log (cleanup.policy contains ``compact``)."""
        return "compact" in self.cleanup_policy.split(",")

    @classmethod
    def from_kafka_configs(
        cls, configs: Mapping[str, str], base: LogConfig | None = None
    ) -> LogConfig:
        """Apply Kafka topic config strings on top of ``base`` (default: Kafka defaults).

        Raises InvalidConfigError naming the key for unknown keys and bad values.
        """
        if not configs and base is not None:  # the common case, once per new topic: a copy
            return base  # would cost ~20 us, thousands of times for one auto-creating request
        changes: dict[str, Any] = {}
        passthrough = dict((base or cls()).passthrough)
        for key, raw in configs.items():
            if key in PASSTHROUGH_TOPIC_CONFIGS:
                passthrough[key] = raw
                continue
            spec = _KAFKA_KEYS.get(key)
            if spec is None:
                raise InvalidConfigError(f"{key}: unknown topic config")
            attr, parse = spec
            try:
                changes[attr] = parse(raw)
            except ValueError as exc:
                raise InvalidConfigError(f"{key}: invalid value {raw!r} ({exc})") from None
        changes["passthrough"] = tuple(sorted(passthrough.items()))
        return dataclasses.replace(base or cls(), **changes)

    def to_kafka_configs(self) -> dict[str, str]:
        """Every config as Kafka names and strings (None renders as Kafka's Long.MAX)."""
        out = {
            "segment.bytes": str(self.segment_bytes),
            "segment.ms": str(self.segment_ms),
            "retention.ms": str(self.retention_ms),
            "retention.bytes": str(self.retention_bytes),
            "max.message.bytes": str(self.max_message_bytes),
            "message.timestamp.type": self.message_timestamp_type,
            "message.timestamp.before.max.ms": str(self.message_timestamp_before_max_ms),
            "message.timestamp.after.max.ms": str(self.message_timestamp_after_max_ms),
            "flush.messages": _long_or_max(self.flush_messages),
            "flush.ms": _long_or_max(self.flush_ms),
            "index.interval.bytes": str(self.index_interval_bytes),
            "cleanup.policy": self.cleanup_policy,
            "min.insync.replicas": str(self.min_insync_replicas),
            "delete.retention.ms": str(self.delete_retention_ms),
            "min.compaction.lag.ms": str(self.min_compaction_lag_ms),
            "max.compaction.lag.ms": _long_or_max(self.max_compaction_lag_ms),
            "min.cleanable.dirty.ratio": str(self.min_cleanable_dirty_ratio),
        }
        out.update(self.passthrough)
        return out


def _long_or_max(value: int | None) -> str:
    return str(_LONG_MAX if value is None else value)


def _parse_int(raw: str) -> int:
    return int(raw.strip())


def _parse_optional_long(raw: str) -> int | None:
    value = int(raw.strip())
    return None if value >= _LONG_MAX else value


def _parse_ratio(raw: str) -> float:
    return float(raw.strip())


def _parse_timestamp_type(raw: str) -> str:
    if raw not in ("CreateTime", "LogAppendTime"):
        raise ValueError("must be CreateTime or LogAppendTime")
    return raw


def _parse_cleanup_policy(raw: str) -> str:
    parts = sorted({p.strip() for p in raw.split(",") if p.strip()})
    if not parts or not set(parts) <= {"delete", "compact"}:
        raise ValueError("must be delete, compact or compact,delete")
    return ",".join(parts)


_KAFKA_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "segment.bytes": ("segment_bytes", _parse_int),
    "segment.ms": ("segment_ms", _parse_int),
    "retention.ms": ("retention_ms", _parse_int),
    "retention.bytes": ("retention_bytes", _parse_int),
    "max.message.bytes": ("max_message_bytes", _parse_int),
    "message.timestamp.type": ("message_timestamp_type", _parse_timestamp_type),
    "message.timestamp.before.max.ms": ("message_timestamp_before_max_ms", _parse_int),
    "message.timestamp.after.max.ms": ("message_timestamp_after_max_ms", _parse_int),
    "flush.messages": ("flush_messages", _parse_optional_long),
    "flush.ms": ("flush_ms", _parse_optional_long),
    "index.interval.bytes": ("index_interval_bytes", _parse_int),
    "cleanup.policy": ("cleanup_policy", _parse_cleanup_policy),
    "min.insync.replicas": ("min_insync_replicas", _parse_int),
    "delete.retention.ms": ("delete_retention_ms", _parse_int),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", _parse_int),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", _parse_optional_long),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _parse_ratio),
}

# (Kafka key, attribute, minimum) checked in __post_init__.
_RANGES: tuple[tuple[str, str, int], ...] = (
    ("segment.bytes", "segment_bytes", 14),
    ("segment.ms", "segment_ms", 1),
    ("retention.ms", "retention_ms", -1),
    ("retention.bytes", "retention_bytes", -1),
    ("max.message.bytes", "max_message_bytes", 0),
    ("message.timestamp.before.max.ms", "message_timestamp_before_max_ms", 0),
    ("message.timestamp.after.max.ms", "message_timestamp_after_max_ms", 0),
    ("flush.messages", "flush_messages", 1),
    ("flush.ms", "flush_ms", 0),
    ("index.interval.bytes", "index_interval_bytes", 0),
    ("min.insync.replicas", "min_insync_replicas", 1),
    ("delete.retention.ms", "delete_retention_ms", 0),
    ("min.compaction.lag.ms", "min_compaction_lag_ms", 0),
    ("max.compaction.lag.ms", "max_compaction_lag_ms", 1),
)
