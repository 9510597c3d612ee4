"""Consumer lag, computed one way for the HTTP API and for ``/metrics``: the leaders' high
watermarks (ListOffsets to each leader, through the :class:`~headrace.core.routing.PartitionRouter`)
minus the group's committed offsets, for every partition the group committed or is assigned.

:class:`LagMonitor` refreshes the lag of the groups this broker coordinates in the background
(every ``interval`` seconds, one batched offsets call per refresh, at most ``max_partitions``
partitions), so a scrape only reads the last figures and never waits on other brokers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from headrace.core.routing import Offsets, PartitionKey, PartitionRouter
from headrace.groups.coordinator import GroupCoordinator
from headrace.groups.views import GroupDescription, MemberDescription

log = logging.getLogger(__name__)

#: How often the coordinator recomputes its groups' lag for /metrics.
DEFAULT_LAG_REFRESH_SECONDS = 5.0
#: Bound on the partitions (summed over groups) one refresh asks offsets for.
DEFAULT_MAX_LAG_PARTITIONS = 10_000


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed_offset: int
    log_end_offset: int
    lag: int
    member_id: str | None
    instance_id: str | None
    client_id: str | None


def lag_partitions(description: GroupDescription, committed: dict[PartitionKey, int]
                   ) -> tuple[list[PartitionKey], dict[PartitionKey, MemberDescription]]:
    """The partitions a group's lag covers (committed or assigned), and their owners."""
    owners: dict[PartitionKey, MemberDescription] = {}
    for member in description.members:
        for key in member.assigned_partitions:
            owners[key] = member
    return sorted(set(committed) | set(owners)), owners


def lags_from(group: str, description: GroupDescription, committed: dict[PartitionKey, int],
              ends: dict[PartitionKey, Offsets | Exception]) -> list[PartitionLag]:
    """Lag per partition; partitions whose high watermark is unknown are left out."""
    keys, owners = lag_partitions(description, committed)
    lags = []
    for key in keys:
        end = ends.get(key)
        if not isinstance(end, Offsets):
            continue
        offset = committed.get(key, -1)
        owner = owners.get(key)
        lags.append(PartitionLag(
            group=group, topic=key[0], partition=key[1],
            committed_offset=offset, log_end_offset=end.high_watermark,
            lag=max(0, end.high_watermark - offset) if offset >= 0 else end.high_watermark,
            member_id=owner.member_id if owner else None,
            instance_id=owner.group_instance_id if owner else None,
            client_id=owner.client_id if owner else None,
        ))
    return lags


class LagMonitor:
    """The last computed lag of every group this broker coordinates (for ``/metrics``)."""

    def __init__(self, coordinator: GroupCoordinator, partitions: PartitionRouter, *,
                 interval: float = DEFAULT_LAG_REFRESH_SECONDS,
                 max_partitions: int = DEFAULT_MAX_LAG_PARTITIONS) -> None:
        self.coordinator = coordinator
        self.partitions = partitions
        self.interval = interval
        self.max_partitions = max_partitions
        #: group -> (topic, partition) -> lag, as of the last refresh.
        self.lag: dict[str, dict[PartitionKey, int]] = {}
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Recompute every coordinated group's lag: one offsets call for all partitions."""
        coordinator = self.coordinator
        wanted: dict[str, tuple[GroupDescription, dict[PartitionKey, int]]] = {}
        keys: set[PartitionKey] = set()
        for overview in coordinator.list_groups():
            group = overview.group_id
            description = coordinator.describe_any_protocol(group)
            committed = {k: c.offset for k, c in coordinator.committed_offsets(group).items()}
            covered, _ = lag_partitions(description, committed)
            if len(keys) + len(covered) > self.max_partitions:
                log.warning("consumer lag covers only %d groups: over %d partitions",
                            len(wanted), self.max_partitions)
                break
            wanted[group] = (description, committed)
            keys.update(covered)
        ends: dict[PartitionKey, Offsets | Exception] = dict(await self.partitions.offsets(keys))
        self.lag = {
            group: {(lag.topic, lag.partition): lag.lag
                    for lag in lags_from(group, description, committed, ends)}
            for group, (description, committed) in wanted.items()
        }

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("consumer lag refresh failed")
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="consumer-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = ["LagMonitor", "PartitionLag", "lag_partitions", "lags_from"]
