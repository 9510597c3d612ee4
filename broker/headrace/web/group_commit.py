"""Group commit for HTTP produce: batches for one partition that are ready in the same turn of
the event loop are appended to its log in one call.

With several clients posting at once, a busy broker finds a few requests ready on every turn
of its loop (about three on average under the benchmark's eight connections). Each paid the
whole per-append cost -- validation, offset assignment, index upkeep, the write system call,
metrics, the replication bookkeeping -- for its one batch. Here the first batch for a partition
starts a group that closes once the requests ready now have run; the group goes to
``Broker.produce`` as one append of its batches, each still a RecordBatch of its own, in arrival
order, with consecutive offsets (a leader's log assigns them densely). If the log refuses that
shared append for one batch's content (nothing is written then), each batch is appended alone,
so a bad one fails only its own request; any other failure is every batch's answer. A lone
request pays one extra turn of the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.storage import AppendResult

#: ``produce(topic, partition, batches)``: one leader append of one or more RecordBatches.
#: It raises KafkaError for anything that is not a bug (``Broker.produce`` does).
Produce = Callable[[str, int, bytes], Awaitable[AppendResult]]


#: What the log refuses a batch for, by its content, before writing anything of an append.
BATCH_REFUSALS = frozenset({ErrorCode.corrupt_message, ErrorCode.message_too_large,
                            ErrorCode.invalid_record, ErrorCode.record_list_too_large,
                            ErrorCode.invalid_timestamp})


class Appended(NamedTuple):
    """Where one batch of a group landed."""

    base_offset: int
    #: -1 unless the topic stamps records with the time the log appended them.
    log_append_time_ms: int


class _Entry(NamedTuple):
    batch: bytes
    records: int
    outcome: asyncio.Future[Appended]


def group_offsets(result: AppendResult, record_counts: list[int]) -> list[Appended]:
    """Each batch's place in a shared append: the log gave the first batch ``base_offset`` and
    every next one the offset after the records before it."""
    placed = []
    offset = result.base_offset
    for count in record_counts:
        placed.append(Appended(offset, result.log_append_time_ms))
        offset += count
    return placed


class GroupCommit:
    """Appends batches through ``produce``, one call per partition per turn of the loop."""

    def __init__(self, produce: Produce) -> None:
        self._produce = produce
        self._open: dict[tuple[str, int], list[_Entry]] = {}
        self._writes: set[asyncio.Task[None]] = set()  # strong references while they run

    def submit(self, topic: str, partition: int, batch: bytes, records: int
               ) -> asyncio.Future[Appended]:
        """Queue ``batch`` (a RecordBatch of ``records`` records) for the partition, with the
        others submitted in this turn. The future gives where it landed, or raises what
        refused it (a KafkaError as a rule); cancelling it before the turn ends withdraws it.
        A request submits each of its partitions' batches before awaiting any."""
        loop = asyncio.get_running_loop()
        key = (topic, partition)
        group = self._open.get(key)
        if group is None:
            group = self._open[key] = []
            # Runs after every callback ready now: the requests ready in this turn join first.
            loop.call_soon(self._close, key)
        outcome: asyncio.Future[Appended] = loop.create_future()
        group.append(_Entry(batch, records, outcome))
        return outcome

    def _close(self, key: tuple[str, int]) -> None:
        group = self._open.pop(key)
        write = asyncio.get_running_loop().create_task(self._write(key, group))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def _write(self, key: tuple[str, int], group: list[_Entry]) -> None:
        try:
            await self._write_group(*key, [e for e in group if not e.outcome.done()])
        except Exception as error:  # a bug: each request answers it (a 500) rather than wait
            for entry in group:
                _fail(entry.outcome, error)
        finally:  # stopped midway (the broker is shutting down): nobody is left waiting
            for entry in group:
                entry.outcome.cancel()

    async def _write_group(self, topic: str, partition: int, group: list[_Entry]) -> None:
        if len(group) > 1:
            try:
                result = await self._produce(topic, partition,
                                             b"".join(entry.batch for entry in group))
            except KafkaError as error:
                if error.code not in BATCH_REFUSALS:
                    # Not the batches' fault (not the leader, too few replicas, replication
                    # timed out after the write...): each would have met it alone. Appending
                    # them again could write them twice.
                    for entry in group:
                        _fail(entry.outcome, error)
                    return
                # The log refused one batch's content before writing any: each alone, below.
            else:
                placed = group_offsets(result, [entry.records for entry in group])
                for entry, appended in zip(group, placed, strict=True):
                    _settle(entry.outcome, appended)
                return
        for entry in group:  # a lone batch, or each of a group whose shared append failed
            try:
                result = await self._produce(topic, partition, entry.batch)
            except KafkaError as error:
                _fail(entry.outcome, error)
            else:
                _settle(entry.outcome, Appended(result.base_offset, result.log_append_time_ms))


def _settle(outcome: asyncio.Future[Appended], appended: Appended) -> None:
    if not outcome.done():  # its request may have been cancelled meanwhile
        outcome.set_result(appended)


def _fail(outcome: asyncio.Future[Appended], error: Exception) -> None:
    if not outcome.done():
        outcome.set_exception(error)
