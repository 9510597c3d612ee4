"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and offset retention.

The state machine decides whether a commit may be applied and holds the offsets; this module
writes them to ``__consumer_offsets`` first (an offset is applied only once the log holds it),
answers fetches from memory, and expires old offsets as Kafka does (KIP-211).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from headrace.groups.model import CommittedOffset, Group, GroupState, TopicPartition
from headrace.groups.persistence import Entries, GroupLog
from headrace.groups.records import GroupKey, OffsetKey, OffsetValue
from headrace.groups.state import GroupStateMachine

log = logging.getLogger(__name__)


#: (group, generation or member epoch, member id, instance id) -> whether the commit may apply
CommitValidator = Callable[[str, int, str, str | None], ErrorCode]


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


class OffsetBook:
    """The offset APIs of the groups this broker coordinates."""

    def __init__(
        self,
        machine: GroupStateMachine,
        group_log: GroupLog,
        *,
        max_metadata_bytes: int,
        retention_ms: int,
        wall_clock_ms: Callable[[], int],
        validate_commit: CommitValidator | None = None,
        keeps_offsets: Callable[[str], bool] = lambda group_id: False,
    ) -> None:
        self._machine = machine
        #: classic generations, or (the coordinator's) KIP-848 member epochs as well
        self._validate_commit = validate_commit or machine.validate_commit
        #: groups whose offsets never expire (a consumer-protocol group with members)
        self._keeps_offsets = keeps_offsets
        self._log = group_log
        self._max_metadata_bytes = max_metadata_bytes
        self._retention_ms = retention_ms
        self._wall_clock_ms = wall_clock_ms

    async def commit(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        commits: list[OffsetCommit],
    ) -> dict[TopicPartition, ErrorCode]:
        error = self._log.ownership_error(group_id)
        if error is ErrorCode.none:
            error = self._validate_commit(
                group_id, generation_id, member_id, group_instance_id
            )
        if error is not ErrorCode.none:
            return {(c.topic, c.partition): error for c in commits}
        results, accepted = self._accepted(commits)
        if accepted:
            write_error = await self._log.write(group_id, _entries(group_id, accepted))
            for commit, committed in accepted:
                if write_error is ErrorCode.none:
                    self._machine.apply_offset(
                        group_id, commit.topic, commit.partition, committed
                    )
                results[(commit.topic, commit.partition)] = write_error
        return results

    async def commit_transactional(
        self,
        group_id: str,
        producer: tuple[int, int],
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        commits: list[OffsetCommit],
    ) -> dict[TopicPartition, ErrorCode]:
        """TxnOffsetCommit: write the offsets as ``producer``'s (id, epoch) pending ones; they
        become visible when its COMMIT marker reaches the group's partition."""
        error = self._log.ownership_error(group_id)
        if error is ErrorCode.none:
            error = self._machine.validate_txn_commit(
                group_id, generation_id, member_id, group_instance_id
            )
        if error is not ErrorCode.none:
            return {(c.topic, c.partition): error for c in commits}
        results, accepted = self._accepted(commits)
        if accepted:
            write_error = await self._log.write(
                group_id, _entries(group_id, accepted), producer=producer
            )
            if write_error is ErrorCode.none:
                pending = self._log.pending_txn.setdefault((group_id, producer[0]), {})
                for commit, committed in accepted:
                    pending[(commit.topic, commit.partition)] = committed
            for commit, _committed in accepted:
                results[(commit.topic, commit.partition)] = write_error
        return results

    def _accepted(
        self, commits: list[OffsetCommit]
    ) -> tuple[dict[TopicPartition, ErrorCode], list[tuple[OffsetCommit, CommittedOffset]]]:
        """The commits whose metadata fits (stamped now), and the errors of those that do not."""
        results: dict[TopicPartition, ErrorCode] = {}
        accepted: list[tuple[OffsetCommit, CommittedOffset]] = []
        now = self._wall_clock_ms()
        for commit in commits:
            metadata = commit.metadata or ""
            if len(metadata.encode()) > self._max_metadata_bytes:
                results[(commit.topic, commit.partition)] = ErrorCode.offset_metadata_too_large
                continue
            accepted.append(
                (commit, CommittedOffset(commit.offset, commit.leader_epoch, metadata, now))
            )
        return results, accepted

    def fetch(
        self, group_id: str, partitions: list[TopicPartition] | None
    ) -> tuple[ErrorCode, dict[TopicPartition, CommittedOffset | None]]:
        """Committed offsets for the partitions asked for (None: all the group has)."""
        error = self._log.ownership_error(group_id)
        if error is not ErrorCode.none:
            return error, {}
        committed = self._machine.committed(group_id)
        if partitions is None:
            return ErrorCode.none, dict(sorted(committed.items()))
        return ErrorCode.none, {tp: committed.get(tp) for tp in partitions}

    async def delete(
        self, group_id: str, partitions: list[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        error = self._log.ownership_error(group_id)
        if error is not ErrorCode.none:
            return error, {}
        group = self._machine.groups.get(group_id)
        if group is None:
            return ErrorCode.group_id_not_found, {}
        subscribed = self._machine.subscribed_topics(group_id)
        if subscribed is None:
            return ErrorCode.non_empty_group, {}
        results: dict[TopicPartition, ErrorCode] = {}
        to_delete: list[TopicPartition] = []
        for topic, partition in partitions:
            if topic in subscribed:
                results[(topic, partition)] = ErrorCode.group_subscribed_to_topic
            else:
                results[(topic, partition)] = ErrorCode.none
                if (topic, partition) in group.offsets:
                    to_delete.append((topic, partition))
        if to_delete:
            write_error = await self._log.write(
                group_id, [(OffsetKey(group_id, t, p), None) for t, p in to_delete]
            )
            if write_error is not ErrorCode.none:
                return write_error, {}
            for topic, partition in to_delete:
                self._machine.apply_offset(group_id, topic, partition, None)
        return ErrorCode.none, results

    # -------------------------------------------------------------------- retention

    async def expire(self) -> dict[str, list[TopicPartition]]:
        """Apply offset retention now: tombstone expired offsets, and drop Empty groups left
        with none (Kafka turns them Dead). Returns what expired, per group."""
        now = self._wall_clock_ms()
        expired: dict[str, list[TopicPartition]] = {}
        for group_id, group in list(self._machine.groups.items()):
            if (
                self._log.ownership_error(group_id) is not ErrorCode.none
                or self._keeps_offsets(group_id)
            ):
                continue
            gone = expired_offsets(
                group, self._log.empty_since_ms(group), now, self._retention_ms
            )
            if not gone:
                continue
            entries: Entries = [(OffsetKey(group_id, t, p), None) for t, p in gone]
            drop_group = len(gone) == len(group.offsets)
            if drop_group:
                entries.append((GroupKey(group_id), None))
            if await self._log.write(group_id, entries) is not ErrorCode.none:
                continue
            for topic, partition in gone:
                self._machine.apply_offset(group_id, topic, partition, None)
            if drop_group and self._machine.delete_group(group_id) is ErrorCode.none:
                self._log.forget_empty_since(group_id)
            expired[group_id] = gone
        return expired

    async def run_retention(self, interval_ms: int) -> None:
        """Expire offsets every ``interval_ms``, for ever (the coordinator cancels it)."""
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                expired = await self.expire()
                if expired:
                    log.info("offset retention expired %d offset(s) of %d group(s)",
                             sum(map(len, expired.values())), len(expired))
            except Exception:  # retention must keep running whatever one pass hits
                log.exception("offset retention pass failed")


def expired_offsets(
    group: Group, empty_since_ms: int | None, now_ms: int, retention_ms: int
) -> list[TopicPartition]:
    """Kafka's offset retention (KIP-211), on wall-clock milliseconds.

    Offsets of a group with members never expire. A group that has had members loses all its
    offsets once it has been Empty for ``retention_ms``; an offsets-only group (simple
    consumers, admin tools) loses each offset ``retention_ms`` after it was committed.
    """
    if group.state is not GroupState.EMPTY or group.members:
        return []
    if group.protocol_type is None:
        return sorted(
            tp for tp, c in group.offsets.items() if c.commit_timestamp_ms + retention_ms <= now_ms
        )
    if empty_since_ms is not None and empty_since_ms + retention_ms <= now_ms:
        return sorted(group.offsets)
    return []


def _entries(group_id: str, accepted: list[tuple[OffsetCommit, CommittedOffset]]) -> Entries:
    """The ``__consumer_offsets`` records of accepted commits."""
    return [
        (
            OffsetKey(group_id, commit.topic, commit.partition),
            OffsetValue(c.offset, c.leader_epoch, c.metadata, c.commit_timestamp_ms),
        )
        for commit, c in accepted
    ]
