"""The transaction state machine (KIP-98), pure: what each request does to one transactional
id's metadata, as Kafka's ``TransactionCoordinator`` and ``TransactionMetadata`` decide it.

A transactional id moves Empty → Ongoing (partitions added) → PrepareCommit/PrepareAbort (EndTxn,
persisted before markers go out) → CompleteCommit/CompleteAbort (every marker written) and back
to Ongoing on the next AddPartitionsToTxn. PrepareEpochFence is the in-memory step where an
InitProducerId (or the timeout) finds a transaction still open: the epoch is bumped, which
fences the old producer, and the open transaction is aborted. Dead is an expired id.

Transaction version 2 (KIP-890 part 2, a client that negotiated ``transaction.version`` 2):
EndTxn bumps the epoch, so the markers and every later request carry the new one and a late
write of the finished transaction is fenced; such a client may also abort from Empty or
Complete (only to bump the epoch). When the epoch is exhausted the prepared state names the
next producer id, which the Complete state then takes at epoch 0.

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
                               TxnState.PREPARE_EPOCH_FENCE, TxnState.PREPARE_ABORT}),
    TxnState.ONGOING: frozenset({TxnState.ONGOING, TxnState.PREPARE_COMMIT,
                                 TxnState.PREPARE_ABORT, TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.PREPARE_COMMIT: frozenset({TxnState.COMPLETE_COMMIT}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.COMPLETE_ABORT}),
    # PrepareAbort from Empty/Complete: a transaction version 2 abort that only bumps the epoch.
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.EMPTY, TxnState.ONGOING, TxnState.DEAD,
                                         TxnState.PREPARE_EPOCH_FENCE, TxnState.PREPARE_ABORT}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.EMPTY, TxnState.ONGOING, TxnState.DEAD,
                                        TxnState.PREPARE_EPOCH_FENCE, TxnState.PREPARE_ABORT}),
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
    #: Transaction version 2 at an exhausted epoch: the id the producer continues under.
    next_producer_id: int = NO_PRODUCER_ID
    #: The transaction version the client ended its last transaction with (0/1, or 2).
    client_version: int = 0

    def producer_after_end(self) -> tuple[int, int]:
        """The producer id and epoch an EndTxn v5 answers with (where the client goes on)."""
        if self.next_producer_id != NO_PRODUCER_ID:
            return self.next_producer_id, 0
        return self.producer_id, self.producer_epoch

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
    ``error`` at once (NONE for a retry of an end that already completed). With
    ``needs_new_producer_id`` the caller allocates the id the producer continues under."""

    metadata: TxnMetadata | None
    error: ErrorCode = ErrorCode.none
    needs_new_producer_id: bool = False


def _retried_v2_end(current: TxnMetadata | None, producer_id: int, producer_epoch: int,
                    commit: bool) -> EndDecision | None:
    """Transaction version 2: an EndTxn retried after its answer was lost carries the epoch
    from before the bump."""
    if (current is None or current.producer_id != producer_id
            or producer_epoch != current.producer_epoch - 1 or current.client_version < 2):
        return None
    prepared, done = ((TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT) if commit
                      else (TxnState.PREPARE_ABORT, TxnState.COMPLETE_ABORT))
    if current.state is done:
        return EndDecision(None)
    if current.state is prepared:
        return EndDecision(None, ErrorCode.concurrent_transactions)
    return None


def _prepare(current: TxnMetadata, target: TxnState, now_ms: int, bump: bool,
             **changes: object) -> EndDecision:
    if not bump:
        return EndDecision(current.moved(target, now_ms, **changes))
    # Markers may carry Short.MAX_VALUE; the producer then goes on under a new id.
    exhausted = current.producer_epoch >= MAX_EPOCH
    prepared = current.moved(target, now_ms, producer_epoch=current.producer_epoch + 1,
                             client_version=2, **changes)
    return EndDecision(prepared, needs_new_producer_id=exhausted)


def decide_end(
    current: TxnMetadata | None, producer_id: int, producer_epoch: int, commit: bool,
    now_ms: int, *, bump_epoch: bool = False,
) -> EndDecision:
    """EndTxn; ``bump_epoch`` for a transaction version 2 client (EndTxn v5+)."""
    if bump_epoch:
        retried = _retried_v2_end(current, producer_id, producer_epoch, commit)
        if retried is not None:
            return retried
    error = check_producer(current, producer_id, producer_epoch)
    if error is not ErrorCode.none:
        return EndDecision(None, error)
    assert current is not None
    state = current.state
    if state is TxnState.ONGOING:
        target = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        return _prepare(current, target, now_ms, bump_epoch)
    if bump_epoch and not commit and state.is_complete:
        # Nothing was added, but writes may be in flight: the bump fences them.
        return _prepare(current, TxnState.PREPARE_ABORT, now_ms, True, partitions=frozenset())
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
    done = prepared.moved(target, now_ms, partitions=frozenset())
    if prepared.next_producer_id != NO_PRODUCER_ID:
        return replace(done, producer_id=prepared.next_producer_id, producer_epoch=0,
                       next_producer_id=NO_PRODUCER_ID)
    return done


def timed_out(current: TxnMetadata, now_ms: int) -> bool:
    """An open transaction older than its timeout, which the coordinator aborts."""
    return current.state is TxnState.ONGOING and now_ms - current.start_ms > current.timeout_ms


def expired(current: TxnMetadata, now_ms: int, expiration_ms: int) -> bool:
    """Kafka's ``transactional.id.expiration.ms``: an idle, finished id is forgotten."""
    return current.state.is_complete and now_ms - current.last_update_ms >= expiration_ms


def replace_producer(metadata: TxnMetadata, producer_id: int) -> TxnMetadata:
    """``metadata`` under a newly allocated producer id (epoch 0)."""
    return replace(metadata, producer_id=producer_id, producer_epoch=0)
