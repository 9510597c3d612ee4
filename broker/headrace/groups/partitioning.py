"""Which ``__consumer_offsets`` partition holds a group, and so which broker coordinates it.

Kafka's rule, kept bit for bit so clients and tools that compute it agree:
``abs(java hashCode(group id)) % partitions``.
"""

from __future__ import annotations

OFFSETS_TOPIC = "__consumer_offsets"


def java_string_hashcode(value: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units, wrapped to a signed int32)."""
    result = 0
    encoded = value.encode("utf-16-be")
    for index in range(0, len(encoded), 2):
        result = (31 * result + ((encoded[index] << 8) | encoded[index + 1])) & 0xFFFFFFFF
    return result - (1 << 32) if result & 0x80000000 else result


def offsets_partition_for(group_id: str, partitions: int) -> int:
    """Kafka's ``Utils.abs(groupId.hashCode) % partitions`` (abs(MIN_VALUE) is 0 there)."""
    code = java_string_hashcode(group_id)
    return (0 if code == -(1 << 31) else abs(code)) % partitions
