"""The broker's client-quota manager: Kafka's ClientQuotaManagers behind the pipeline's quota step.

One object does what Kafka splits over its produce, fetch and request quota managers: it keeps
the quota configs (security records of kind ``"quota"``, so every broker of a cluster sees each
change), resolves which rate each (user, client id) records into (:mod:`.quotas`), records what
the pipeline measured — Produce request bytes against ``producer_byte_rate``, Fetch response
bytes against ``consumer_byte_rate``, handler time against ``request_percentage`` (KIP-124) —
and answers the throttle, the largest any of them asks for. It also answers KIP-612's per-IP
``connection_creation_rate`` for the listeners, and serves DescribeClientQuotas and
AlterClientQuotas (:mod:`.quota_handlers`).

Memory is bounded whatever clients send: a rate exists only for a (user, client id) a quota
applies to, and rates idle for a whole monitored span (whose value is then zero) are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from headrace.core.policies import RequestUsage
from headrace.core.requests import RequestContext
from headrace.observability.quotas import CLIENT_QUOTA_TYPES, QuotaStats
from headrace.security.quotas import (
    CLIENT_ID,
    CONSUMER_BYTE_RATE,
    DEFAULT_WINDOW_NUM,
    DEFAULT_WINDOW_SECONDS,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    USER,
    QuotaEntity,
    QuotaFilter,
    QuotaRequestError,
    SensorKey,
    WindowedRate,
    altered,
    decode_configs,
    encode_values,
    ip_connection_rate,
    record_and_throttle,
    resolve,
    validate_entity,
)
from headrace.security.records import SecurityRecords

log = logging.getLogger(__name__)

KIND = "quota"
PRODUCE_KEY, FETCH_KEY = 0, 1
#: The quota types the throttle metrics name, with the config key each enforces.
QUOTA_TYPES = dict(zip(CLIENT_QUOTA_TYPES,
                       (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE), strict=True))
#: Resolutions kept per (user, client id) before the cache starts over (hostile client ids).
_MAX_RESOLUTIONS = 10_000
#: Records between sweeps for idle rates.
_SWEEP_EVERY = 4096


#: (entity parts, ops): one AlterClientQuotas entry; an op's value None removes the key.
Alteration = tuple[Sequence[tuple[str, str | None]], Sequence[tuple[str, float | None]]]


class ClientQuotaManager:
    """Implements :class:`~headrace.core.policies.QuotaManager` over the stored quota configs."""

    def __init__(
        self,
        records: SecurityRecords,
        *,
        window_num: int = DEFAULT_WINDOW_NUM,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = records
        self.window_num = window_num
        self.window_ms = window_seconds * 1000
        self._clock = clock
        self.stats = QuotaStats()
        self._configs: dict[QuotaEntity, dict[str, float]] = {}
        self._client_quotas = False
        self._resolved: dict[tuple[str, str], dict[str, tuple[SensorKey, float | None]]] = {}
        self._rates: dict[tuple[str, SensorKey], WindowedRate] = {}
        self._since_sweep = 0
        self._reload()
        records.subscribe(self._changed)

    # -- configs

    def _changed(self, kind: str) -> None:
        if kind == KIND:
            self._reload()

    def _reload(self) -> None:
        try:
            configs = decode_configs(self._records.snapshot(KIND))
        except (ValueError, TypeError) as error:  # a hand-edited store: keep the last good
            log.error("ignoring unreadable client-quota records: %s", error)
            return
        self._configs = configs
        self._client_quotas = any(
            set(entity.types()) & {USER, CLIENT_ID} for entity in configs)
        self._resolved.clear()

    @property
    def enabled(self) -> bool:
        """Any user or client-id quota configured (else the pipeline measures nothing)."""
        return self._client_quotas

    def connection_rate(self, host: str) -> float | None:
        """KIP-612: the ``connection_creation_rate`` of ``host`` (None: unlimited)."""
        return ip_connection_rate(self._configs, host) if self._configs else None

    def describe(self, matching: QuotaFilter) -> list[tuple[QuotaEntity, dict[str, float]]]:
        return [(entity, dict(self._configs[entity]))
                for entity in sorted(self._configs, key=QuotaEntity.sort_key)
                if matching.matches(entity)]

    async def alter(self, entries: Sequence[Alteration],
                    validate_only: bool) -> list[str | None]:
        """Apply each entry (all valid entries together, durably); per entry, the reason it
        was refused (INVALID_REQUEST) or None."""
        errors: list[str | None] = []
        changes: dict[str, bytes | None] = {}
        seen: set[QuotaEntity] = set()
        for parts, ops in entries:
            try:
                entity = validate_entity(parts)
                if entity in seen:
                    raise QuotaRequestError(f"Ignoring duplicate entity {entity}")
                seen.add(entity)
                values = altered(entity, self._configs.get(entity, {}), ops)
            except QuotaRequestError as error:
                errors.append(str(error))
                continue
            errors.append(None)
            changes[entity.encode()] = encode_values(values) if values else None
        if changes and not validate_only:
            await self._records.write(KIND, changes)
        return errors

    # -- the pipeline's quota step

    def _resolution(self, ctx: RequestContext) -> dict[str, tuple[SensorKey, float | None]]:
        user, client_id = ctx.principal.name, ctx.client_id or ""
        resolved = self._resolved.get((user, client_id))
        if resolved is None:
            if len(self._resolved) >= _MAX_RESOLUTIONS:
                self._resolved.clear()
            resolved = {key: resolve(self._configs, key, user, client_id)
                        for key in QUOTA_TYPES.values()}
            self._resolved[(user, client_id)] = resolved
        return resolved

    def fetch_bytes_limit(self, ctx: RequestContext) -> int | None:
        bound = self._resolution(ctx)[CONSUMER_BYTE_RATE][1]
        if bound is None:
            return None
        return int(min(bound * (self.window_num - 1) * self.window_ms / 1000, 2**31 - 1))

    def throttle_ms(self, ctx: RequestContext, usage: RequestUsage) -> int:
        resolved = self._resolution(ctx)
        now_ms = int(self._clock() * 1000)
        throttles: dict[str, int] = {}
        if ctx.api_key == PRODUCE_KEY:
            throttles["produce"] = self._charge(
                resolved, PRODUCER_BYTE_RATE, usage.request_bytes, now_ms)
        elif ctx.api_key == FETCH_KEY:
            throttles["fetch"] = self._charge(
                resolved, CONSUMER_BYTE_RATE, usage.response_bytes, now_ms)
        if usage.handler_seconds:
            # Percent of one second: a handler busy 10 ms records 1; Kafka bounds this
            # throttle by one window.
            throttles["request"] = self._charge(
                resolved, REQUEST_PERCENTAGE, usage.handler_seconds * 100, now_ms,
                max_ms=self.window_ms)
        if not throttles:
            return 0
        kind, throttle = max(throttles.items(), key=lambda item: item[1])
        if throttle > 0:
            self.stats.throttled[kind] += 1
            self.stats.throttle_seconds[kind] += throttle / 1000
        return max(throttle, 0)

    def _charge(self, resolved: dict[str, tuple[SensorKey, float | None]], key: str,
                value: float, now_ms: int, max_ms: int | None = None) -> int:
        sensor, bound = resolved[key]
        if bound is None:
            return 0
        rate = self._rates.get((key, sensor))
        if rate is None:
            rate = self._rates[(key, sensor)] = WindowedRate(self.window_num, self.window_ms)
        throttle = record_and_throttle(rate, value, now_ms, bound, max_ms)
        self._since_sweep += 1
        if self._since_sweep >= _SWEEP_EVERY:
            self._sweep(now_ms)  # after recording: the rate just used is not idle
        return throttle

    def _sweep(self, now_ms: int) -> None:
        self._since_sweep = 0
        for name in [name for name, rate in self._rates.items() if rate.idle(now_ms)]:
            del self._rates[name]

    def quota_stats(self) -> QuotaStats:
        return self.stats


__all__ = ["KIND", "QUOTA_TYPES", "Alteration", "ClientQuotaManager"]
