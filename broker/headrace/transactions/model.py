"""The transaction state machine (KIP-98), pure: what each request does to one transactional
id's metadata, as Kafka's ``TransactionCoordinator`` and ``TransactionMetadata`` decide it.

A transactional id moves Empty → Ongoing (partitions added) → PrepareCommit/PrepareAbort (EndTxn,
persisted before markers go out) → CompleteCommit/CompleteAbort (every marker written) and back
to Ongoing on the next AddPartitionsToTxn. PrepareEpochFence is the in-memory step where an
InitProducerId (or the timeout) finds a transaction still open: the epoch is bumped, which
fences the old producer, and the open transaction is aborted. Dead is an expired id.

Every decision returns either an error code or the metadata to persist; the coordinator writes
it to ``__transaction_state`` and only then makes it current, so a crash never exposes a state
that was not durable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from kio.schema.errors import ErrorCode

#: Kafka's limit: an epoch this high gets a new producer id instead of a bump.
MAX_EPOCH = 32766  # Short.MaxValue - 1
NO_PRODUCER_ID = -1
NO_EPOCH = -1

TopicPartition = tuple[str, int]


class TxnState(enum.IntEnum):
    """Kafka's ``TransactionState`` ids, as stored in ``__transaction_state``."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def is_prepared(self) -> bool:
        return self in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)

    @property
    def is_complete(self) -> bool:
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


#: Which states may follow which (Kafka's ``validPreviousStates``, read forwards).
TRANSITIONS: dict[TxnState, frozenset[TxnState]] = {
    TxnState.EMPTY: frozenset({TxnState.EMPTY, TxnState.ONGOING, TxnState.DEAD,
                               TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.ONGOING: frozenset({TxnState.ONGOING, TxnState.PREPARE_COMMIT,
                                 TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.PREPARE_COMMIT: frozenset({TxnState.COMPLETE_COMMIT}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.COMPLETE_ABORT}),
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.EMPTY, TxnState.ONGOING, TxnState.DEAD,
                                         TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.EMPTY, TxnState.ONGOING, TxnState.DEAD,
                                        TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.PREPARE_EPOCH_FENCE: frozenset({TxnState.PREPARE_ABORT}),
    TxnState.DEAD: frozenset(),
}


class IllegalTransition(ValueError):
    """A bug: the coordinator asked for a move the state machine forbids."""


@dataclass(frozen=True, slots=True)
class TxnMetadata:
    """One transactional id's durable state (Kafka's ``TransactionLogValue`` fields)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: frozenset[TopicPartition] = field(default_factory=frozenset)
    start_ms: int = -1
    last_update_ms: int = -1

    def moved(self, state: TxnState, now_ms: int, **changes: object) -> TxnMetadata:
        if state not in TRANSITIONS[self.state]:
            raise IllegalTransition(f"{self.transactional_id}: {self.state.name} -> {state.name}")
        return replace(self, state=state, last_update_ms=now_ms, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class InitDecision:
    """What InitProducerId does: persist ``metadata`` and answer with its id and epoch; or
    first abort the open transaction (``abort_first``) and ask the client to retry."""

    metadata: TxnMetadata
    abort_first: bool = False
    needs_new_producer_id: bool = False


def decide_init(
    current: TxnMetadata | None,
    transactional_id: str,
    timeout_ms: int,
    now_ms: int,
    *,
    expected_producer_id: int = NO_PRODUCER_ID,
    expected_epoch: int = NO_EPOCH,
) -> InitDecision | ErrorCode:
    """InitProducerId for a transactional id (the caller checked the timeout bound)."""
    if current is None:
        fresh = TxnMetadata(transactional_id, NO_PRODUCER_ID, NO_EPOCH, timeout_ms,
                            last_update_ms=now_ms)
        return InitDecision(replace(fresh, producer_epoch=0), needs_new_producer_id=True)
    if current.state.is_prepared:
        return ErrorCode.concurrent_transactions  # markers going out; the client retries
    if current.state is TxnState.PREPARE_EPOCH_FENCE:
        return ErrorCode.concurrent_transactions
    if expected_producer_id != NO_PRODUCER_ID and (
        expected_producer_id != current.producer_id or expected_epoch != current.producer_epoch
    ):
        # KIP-360: a producer re-initialising names the id/epoch it had; any other is stale.
        return ErrorCode.producer_fenced
    if current.state is TxnState.ONGOING:
        return InitDecision(fence(current, now_ms), abort_first=True)
    if current.producer_epoch >= MAX_EPOCH:
        return InitDecision(
            current.moved(TxnState.EMPTY, now_ms, producer_epoch=0, timeout_ms=timeout_ms,
                          partitions=frozenset(), start_ms=-1),
            needs_new_producer_id=True,
        )
    return InitDecision(
        current.moved(TxnState.EMPTY, now_ms, producer_epoch=current.producer_epoch + 1,
                      timeout_ms=timeout_ms, partitions=frozenset(), start_ms=-1)
    )


def fence(current: TxnMetadata, now_ms: int) -> TxnMetadata:
    """Bump the epoch of an open transaction and prepare its abort (the old producer's
    requests now fail as fenced): PrepareEpochFence → PrepareAbort, persisted as the latter."""
    fenced = current.moved(TxnState.PREPARE_EPOCH_FENCE, now_ms)
    epoch = min(current.producer_epoch + 1, MAX_EPOCH)
    return fenced.moved(TxnState.PREPARE_ABORT, now_ms, producer_epoch=epoch)


def check_producer(
    current: TxnMetadata | None, producer_id: int, producer_epoch: int
) -> ErrorCode:
    """The checks every request after InitProducerId starts with."""
    if current is None or current.state is TxnState.DEAD:
        return ErrorCode.invalid_producer_id_mapping
    if current.producer_id != producer_id:
        return ErrorCode.invalid_producer_id_mapping
    if producer_epoch != current.producer_epoch:
        return ErrorCode.producer_fenced
    return ErrorCode.none


def decide_add_partitions(
    current: TxnMetadata | None,
    producer_id: int,
    producer_epoch: int,
    partitions: frozenset[TopicPartition],
    now_ms: int,
) -> TxnMetadata | ErrorCode | None:
    """AddPartitionsToTxn / AddOffsetsToTxn: the metadata to persist, an error, or None when
    every partition is already part of the ongoing transaction."""
    error = check_producer(current, producer_id, producer_epoch)
    if error is not ErrorCode.none:
        return error
    assert current is not None
    if current.state.is_prepared or current.state is TxnState.PREPARE_EPOCH_FENCE:
        return ErrorCode.concurrent_transactions
    if current.state is TxnState.ONGOING and partitions <= current.partitions:
        return None
    start = current.start_ms if current.state is TxnState.ONGOING else now_ms
    return current.moved(TxnState.ONGOING, now_ms, partitions=current.partitions | partitions,
                         start_ms=start)


@dataclass(frozen=True, slots=True)
class EndDecision:
    """EndTxn: persist ``metadata`` (a Prepare state) and then write markers, or answer
    ``error`` at once (NONE for a retry of an end that already completed)."""

    metadata: TxnMetadata | None
    error: ErrorCode = ErrorCode.none


def decide_end(
    current: TxnMetadata | None, producer_id: int, producer_epoch: int, commit: bool,
    now_ms: int,
) -> EndDecision:
    error = check_producer(current, producer_id, producer_epoch)
    if error is not ErrorCode.none:
        return EndDecision(None, error)
    assert current is not None
    state = current.state
    if state is TxnState.ONGOING:
        target = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        return EndDecision(current.moved(target, now_ms))
    if state is TxnState.COMPLETE_COMMIT:
        return EndDecision(None, ErrorCode.none if commit else ErrorCode.invalid_txn_state)
    if state is TxnState.COMPLETE_ABORT:
        return EndDecision(None, ErrorCode.invalid_txn_state if commit else ErrorCode.none)
    if state is TxnState.PREPARE_COMMIT:
        return EndDecision(
            None, ErrorCode.concurrent_transactions if commit else ErrorCode.invalid_txn_state
        )
    if state is TxnState.PREPARE_ABORT:
        return EndDecision(
            None, ErrorCode.invalid_txn_state if commit else ErrorCode.concurrent_transactions
        )
    return EndDecision(None, ErrorCode.invalid_txn_state)  # Empty, fence, Dead


def complete(prepared: TxnMetadata, now_ms: int) -> TxnMetadata:
    """Every marker of a prepared transaction is written: CompleteCommit/CompleteAbort."""
    target = (TxnState.COMPLETE_COMMIT if prepared.state is TxnState.PREPARE_COMMIT
              else TxnState.COMPLETE_ABORT)
    # The start time stays (Kafka's describe shows when the finished transaction began).
    return prepared.moved(target, now_ms, partitions=frozenset())


def timed_out(current: TxnMetadata, now_ms: int) -> bool:
    """An open transaction older than its timeout, which the coordinator aborts."""
    return current.state is TxnState.ONGOING and now_ms - current.start_ms > current.timeout_ms


def expired(current: TxnMetadata, now_ms: int, expiration_ms: int) -> bool:
    """Kafka's ``transactional.id.expiration.ms``: an idle, finished id is forgotten."""
    return current.state.is_complete and now_ms - current.last_update_ms >= expiration_ms


def replace_producer(metadata: TxnMetadata, producer_id: int) -> TxnMetadata:
    """``metadata`` under a newly allocated producer id (epoch 0)."""
    return replace(metadata, producer_id=producer_id, producer_epoch=0)
