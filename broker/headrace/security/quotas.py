"""Kafka's client quotas as plain values and arithmetic: entities, precedence, windowed rates.

Pure (no I/O, no clock): :mod:`headrace.security.quota_manager` applies it to requests. The
semantics are Kafka's (``ClientQuotaManager``, ``Sensor``/``Rate``/``SampledStat``,
``QuotaUtils``, ``ClientQuotaControlManager`` and ``ClientQuotasImage``), re-implemented:

- **Entities** (KIP-13/55, KIP-612): a quota is set on a user, a client id, a user + client id,
  or an IP address, each possibly the type's *default* (``<default>`` in ``kafka-configs``).
  For a (user, client id) the most specific configured entity wins, in Kafka's order:
  user+client, user+default client, user, default user+client, default user+default client,
  default user, client, default client. Each quota key is resolved on its own.
- **Sharing**: the entity that matched decides who shares one rate: a ``user`` quota is shared
  by all of that user's client ids; a default is applied to each user (client) separately.
- **Rate**: the sum recorded in the last ``quota.window.num`` windows of
  ``quota.window.size.seconds``, divided by the time they cover, counting at least
  ``num - 1`` whole windows (so a fresh client is not throttled for its first burst).
- **Throttle**: when the rate O exceeds the bound T over a window W, the client waits
  X = (O - T) / T * W, which brings the rate back to T if it records nothing meanwhile.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

#: Kafka's config type of every key, by the entity kind it may be set on (QuotaConfig).
_LONG, _DOUBLE, _INT = "long", "double", "int"
CLIENT_KEYS: Mapping[str, str] = {
    PRODUCER_BYTE_RATE: _LONG, CONSUMER_BYTE_RATE: _LONG, REQUEST_PERCENTAGE: _DOUBLE,
    CONTROLLER_MUTATION_RATE: _DOUBLE,
}
IP_KEYS: Mapping[str, str] = {CONNECTION_CREATION_RATE: _INT}
_INTEGRAL_MAX = {_LONG: float(2**63 - 1), _INT: float(2**31 - 1)}

#: Kafka's defaults: ``quota.window.num`` and ``quota.window.size.seconds``.
DEFAULT_WINDOW_NUM = 11
DEFAULT_WINDOW_SECONDS = 1


@dataclass(frozen=True, slots=True)
class QuotaEntity:
    """What a quota is set on: (entity type, name) pairs sorted by type; a name of None is the
    type's default (``<default>``)."""

    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def of(cls, parts: Iterable[tuple[str, str | None]]) -> QuotaEntity:
        return cls(tuple(sorted(parts, key=lambda part: part[0])))

    def types(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.parts)

    def sort_key(self) -> tuple[tuple[str, bool, str], ...]:
        """Listing order: by type, then defaults before names."""
        return tuple((kind, name is not None, name or "") for kind, name in self.parts)

    def name(self, kind: str) -> str | None:
        return dict(self.parts)[kind]

    def encode(self) -> str:
        """The record key in :class:`~headrace.security.records.SecurityRecords`."""
        return json.dumps([list(part) for part in self.parts], separators=(",", ":"))

    @classmethod
    def decode(cls, key: str) -> QuotaEntity:
        return cls.of((str(kind), None if name is None else str(name))
                      for kind, name in json.loads(key))

    def __str__(self) -> str:
        return ", ".join(f"{kind}={'<default>' if name is None else name}"
                         for kind, name in self.parts)


def user_client(user: str | None, client_id: str | None, *, default_user: bool = False,
                default_client: bool = False) -> QuotaEntity:
    """The entity with a user and/or a client id part (``default_*``: that part is a default)."""
    parts: list[tuple[str, str | None]] = []
    if user is not None or default_user:
        parts.append((USER, None if default_user else user))
    if client_id is not None or default_client:
        parts.append((CLIENT_ID, None if default_client else client_id))
    return QuotaEntity.of(parts)


#: Every configured quota: entity → key → value.
QuotaConfigs = Mapping[QuotaEntity, Mapping[str, float]]


def encode_values(values: Mapping[str, float]) -> bytes:
    return json.dumps(dict(sorted(values.items()))).encode("utf-8")


def decode_configs(records: Mapping[str, bytes]) -> dict[QuotaEntity, dict[str, float]]:
    """The ``"quota"`` records of the security store as configs."""
    return {QuotaEntity.decode(key): {str(k): float(v) for k, v in json.loads(value).items()}
            for key, value in records.items()}


# -- precedence (Kafka's DefaultQuotaCallback) -------------------------------------------------

@dataclass(frozen=True, slots=True)
class SensorKey:
    """Who shares one rate: Kafka's quota metric tags (``""``: not part of the key)."""

    user: str
    client_id: str


_DEFAULT = object()  # a default entity part in the lookups below
_ABSENT = object()  # no part of that type


def _entity(user: object, client: object) -> QuotaEntity:
    parts: list[tuple[str, str | None]] = []
    for kind, value in ((USER, user), (CLIENT_ID, client)):
        if value is _DEFAULT:
            parts.append((kind, None))
        elif value is not _ABSENT:
            parts.append((kind, str(value)))
    return QuotaEntity.of(parts)


def sensor_key(has_quota: Callable[[QuotaEntity], bool], user: str, client_id: str) -> SensorKey:
    """The rate a (user, client id) records into for one quota key: the first configured
    entity in Kafka's precedence order decides which part of the pair keys it."""
    both = SensorKey(user, client_id)
    for entity, key in (
        (_entity(user, client_id), both),
        (_entity(user, _DEFAULT), both),
        (_entity(user, _ABSENT), SensorKey(user, "")),
        (_entity(_DEFAULT, client_id), both),
        (_entity(_DEFAULT, _DEFAULT), both),
        (_entity(_DEFAULT, _ABSENT), SensorKey(user, "")),
    ):
        if has_quota(entity):
            return key
    return SensorKey("", client_id)


def quota_bound(quota_of: Callable[[QuotaEntity], float | None], key: SensorKey) -> float | None:
    """The bound of a sensor: its most specific configured entity's value (None: unlimited)."""
    if key.user and key.client_id:
        candidates = [_entity(key.user, key.client_id), _entity(key.user, _DEFAULT),
                      _entity(_DEFAULT, key.client_id), _entity(_DEFAULT, _DEFAULT)]
    elif key.user:
        candidates = [_entity(key.user, _ABSENT), _entity(_DEFAULT, _ABSENT)]
    elif key.client_id:
        candidates = [_entity(_ABSENT, key.client_id), _entity(_ABSENT, _DEFAULT)]
    else:
        return None
    for entity in candidates:
        bound = quota_of(entity)
        if bound is not None:
            return bound
    return None


def resolve(configs: QuotaConfigs, quota_key: str, user: str,
            client_id: str) -> tuple[SensorKey, float | None]:
    """(the sensor, its bound) of ``quota_key`` for a (user, client id)."""

    def quota_of(entity: QuotaEntity) -> float | None:
        values = configs.get(entity)
        return None if values is None else values.get(quota_key)

    key = sensor_key(lambda entity: quota_of(entity) is not None, user, client_id)
    return key, quota_bound(quota_of, key)


def ip_connection_rate(configs: QuotaConfigs, host: str) -> float | None:
    """KIP-612: an IP's ``connection_creation_rate``: its own entity, else the IP default."""
    for name in (host, None):
        values = configs.get(QuotaEntity.of([(IP, name)]))
        if values is not None and CONNECTION_CREATION_RATE in values:
            return values[CONNECTION_CREATION_RATE]
    return None


# -- the windowed rate (Kafka's Rate over a SampledStat) ---------------------------------------

@dataclass(slots=True)
class _Sample:
    start_ms: int
    last_event_ms: int
    value: float = 0.0
    events: int = 0

    def reset(self, now_ms: int) -> None:
        self.start_ms = self.last_event_ms = now_ms
        self.value = 0.0
        self.events = 0


@dataclass(slots=True)
class WindowedRate:
    """Values per second over the last ``samples`` windows of ``window_ms``."""

    samples: int = DEFAULT_WINDOW_NUM
    window_ms: int = DEFAULT_WINDOW_SECONDS * 1000
    _ring: list[_Sample] = field(default_factory=list)
    _current: int = 0
    _last_record_ms: int | None = None

    def record(self, value: float, now_ms: int) -> None:
        sample = self._current_sample(now_ms)
        if now_ms - sample.start_ms >= self.window_ms:
            # One extra slot holds the sample that overlaps the start of the monitored span.
            self._current = (self._current + 1) % (self.samples + 1)
            if self._current >= len(self._ring):
                sample = _Sample(now_ms, now_ms)
                self._ring.append(sample)
            else:
                sample = self._ring[self._current]
                sample.reset(now_ms)
        sample.value += value
        sample.events += 1
        sample.last_event_ms = self._last_record_ms = now_ms

    def _current_sample(self, now_ms: int) -> _Sample:
        if not self._ring:
            self._ring.append(_Sample(now_ms, now_ms))
        return self._ring[self._current]

    def _purge(self, now_ms: int) -> None:
        expire_ms = self.samples * self.window_ms
        for sample in self._ring:
            if now_ms - sample.last_event_ms >= expire_ms:
                sample.reset(now_ms)

    def span_ms(self, now_ms: int) -> int:
        """The time the rate divides by: since the oldest kept sample began, but at least
        ``samples - 1`` whole windows (and at least 1 ms)."""
        self._purge(now_ms)
        oldest = min((s.start_ms for s in self._ring), default=now_ms)
        elapsed = now_ms - oldest
        whole = elapsed // self.window_ms
        if whole < self.samples - 1:
            elapsed += (self.samples - 1 - whole) * self.window_ms
        return max(elapsed, 1)

    def total(self, now_ms: int) -> float:
        self._purge(now_ms)
        return sum(sample.value for sample in self._ring)

    def measure(self, now_ms: int) -> float:
        """Per second."""
        total = self.total(now_ms)
        return total / (self.span_ms(now_ms) / 1000)

    def idle(self, now_ms: int) -> bool:
        """Nothing recorded within the monitored span: the rate is 0 and may be forgotten."""
        last = self._last_record_ms
        return last is None or now_ms - last >= self.samples * self.window_ms


def throttle_ms(observed: float, bound: float, span_ms: int) -> int:
    """Kafka's ``QuotaUtils.throttleTime``: X = (O - T) / T * W, rounded (half up)."""
    return math.floor((observed - bound) / bound * span_ms + 0.5)


def record_and_throttle(rate: WindowedRate, value: float, now_ms: int, bound: float | None,
                        max_ms: int | None = None) -> int:
    """Record ``value`` and return the throttle it earns (0 within the bound); ``max_ms``
    caps it (Kafka bounds request-time and connection-rate throttles by one window)."""
    rate.record(value, now_ms)
    if bound is None:
        return 0
    observed = rate.measure(now_ms)
    if observed <= bound:
        return 0
    delay = throttle_ms(observed, bound, rate.span_ms(now_ms))
    return delay if max_ms is None else min(delay, max_ms)


# -- AlterClientQuotas validation (Kafka's ClientQuotaControlManager) ----------------------------

class QuotaRequestError(ValueError):
    """An alteration or a describe filter Kafka answers with INVALID_REQUEST (or, with
    ``unsupported``, UNSUPPORTED_VERSION)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def validate_entity(parts: Sequence[tuple[str, str | None]]) -> QuotaEntity:
    if not parts:
        raise QuotaRequestError("Invalid empty client quota entity")
    seen: set[str] = set()
    for kind, name in parts:
        if kind in seen:
            raise QuotaRequestError(f"Invalid client quota entity, duplicate entity entry {kind}")
        seen.add(kind)
        if kind not in ENTITY_TYPES:
            raise QuotaRequestError(f"Unhandled client quota entity type: {kind}")
        if name is not None and not name:
            raise QuotaRequestError(f"Empty {kind} not supported")
    if IP in seen:
        if len(seen) > 1:
            raise QuotaRequestError("Invalid quota entity combination, IP entity should not be "
                                    "combined with User or ClientId")
        name = dict(parts)[IP]
        if name is not None:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                raise QuotaRequestError(f"{name} is not a valid IP") from None
    return QuotaEntity.of(parts)


def validate_value(entity: QuotaEntity, key: str, value: float) -> None:
    keys = IP_KEYS if IP in entity.types() else CLIENT_KEYS
    kind = keys.get(key)
    if kind is None:
        raise QuotaRequestError(f"Invalid configuration key {key}")
    if not value > 0.0:  # also refuses NaN
        raise QuotaRequestError(f"Quota {key} must be greater than 0")
    if kind == _DOUBLE:
        if math.isinf(value):
            raise QuotaRequestError(f"Quota {key} must be finite")
        return
    if value > _INTEGRAL_MAX[kind]:
        raise QuotaRequestError(f"Proposed value for {key} is too large for an {kind.upper()}.")
    if abs(value % 1.0) > 1e-6:
        raise QuotaRequestError(f"{key} cannot be a fractional value.")


def altered(entity: QuotaEntity, current: Mapping[str, float],
            ops: Sequence[tuple[str, float | None]]) -> dict[str, float]:
    """``current`` with ``ops`` applied ((key, value); None removes the key), checked as Kafka
    does: :class:`QuotaRequestError` names the first problem and then nothing applies."""
    values = dict(current)
    seen: set[str] = set()
    for key, value in ops:
        if key in seen:
            raise QuotaRequestError(f"Duplicate quota key {key}")
        seen.add(key)
        if value is None:
            values.pop(key, None)
        else:
            validate_value(entity, key, value)
            values[key] = value
    return values


# -- DescribeClientQuotas filters (Kafka's ClientQuotasImage.describe) ---------------------------

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class QuotaFilter:
    """Entity types that must have a given name (None: the default) and types that must just
    be present; ``strict``: the entity has no other parts."""

    exact: Mapping[str, str | None]
    present: frozenset[str]
    strict: bool

    def matches(self, entity: QuotaEntity) -> bool:
        names = dict(entity.parts)
        if self.strict and len(names) != len(self.exact) + len(self.present):
            return False
        return (all(kind in names and names[kind] == name for kind, name in self.exact.items())
                and all(kind in names for kind in self.present))


def quota_filter(components: Iterable[tuple[str, int, str | None]], strict: bool) -> QuotaFilter:
    """A filter from DescribeClientQuotas components (entity type, match type, match)."""
    exact: dict[str, str | None] = {}
    present: set[str] = set()
    for kind, match_type, match in components:
        if not kind:
            raise QuotaRequestError("Invalid empty entity type.")
        if kind in exact or kind in present:
            raise QuotaRequestError(
                f"Entity type {kind} cannot appear more than once in the filter.")
        if kind not in ENTITY_TYPES:
            raise QuotaRequestError(f"Unsupported entity type {kind}", unsupported=True)
        if match_type == MATCH_EXACT:
            if match is None:
                raise QuotaRequestError(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.")
            exact[kind] = match
        elif match_type == MATCH_DEFAULT:
            if match is not None:
                raise QuotaRequestError(
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
            exact[kind] = None
        elif match_type == MATCH_SPECIFIED:
            if match is not None:
                raise QuotaRequestError(
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
            present.add(kind)
        else:
            raise QuotaRequestError(f"Unknown match type {match_type}")
    named = set(exact) | present
    if IP in named and named & {USER, CLIENT_ID}:
        raise QuotaRequestError("Invalid entity filter component combination. IP filter "
                                "component should not be used with user or clientId filter "
                                "component.")
    return QuotaFilter(exact, frozenset(present), strict)


__all__ = [
    "CLIENT_ID", "CLIENT_KEYS", "CONNECTION_CREATION_RATE", "CONSUMER_BYTE_RATE",
    "CONTROLLER_MUTATION_RATE", "DEFAULT_WINDOW_NUM", "DEFAULT_WINDOW_SECONDS", "ENTITY_TYPES",
    "IP", "IP_KEYS", "MATCH_DEFAULT", "MATCH_EXACT", "MATCH_SPECIFIED", "PRODUCER_BYTE_RATE",
    "REQUEST_PERCENTAGE", "USER", "QuotaConfigs", "QuotaEntity", "QuotaFilter",
    "QuotaRequestError", "SensorKey", "WindowedRate", "altered", "decode_configs",
    "encode_values", "ip_connection_rate", "quota_bound", "quota_filter", "record_and_throttle",
    "resolve", "sensor_key", "throttle_ms", "user_client", "validate_entity", "validate_value",
]
