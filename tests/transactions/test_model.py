"""The pure transaction state machine and the ``__transaction_state`` record format."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from headrace.transactions import model, records
from headrace.transactions.model import IllegalTransition, TxnMetadata, TxnState

NOW = 1_000_000


def _ongoing() -> TxnMetadata:
    fresh = model.decide_init(None, "t", 60_000, NOW)
    assert isinstance(fresh, model.InitDecision) and fresh.needs_new_producer_id
    started = model.replace_producer(fresh.metadata, 7)
    added = model.decide_add_partitions(started, 7, 0, frozenset({("a", 0)}), NOW + 1)
    assert isinstance(added, TxnMetadata)
    return added


def test_a_transaction_goes_empty_ongoing_prepare_complete() -> None:
    ongoing = _ongoing()
    assert ongoing.state is TxnState.ONGOING and ongoing.start_ms == NOW + 1
    assert model.decide_add_partitions(ongoing, 7, 0, frozenset({("a", 0)}), NOW) is None
    end = model.decide_end(ongoing, 7, 0, True, NOW + 2)
    assert end.metadata is not None and end.metadata.state is TxnState.PREPARE_COMMIT
    done = model.complete(end.metadata, NOW + 3)
    assert done.state is TxnState.COMPLETE_COMMIT and not done.partitions
    # A retried EndTxn of what completed is answered NONE; the opposite outcome is refused.
    assert model.decide_end(done, 7, 0, True, NOW).error is ErrorCode.none
    assert model.decide_end(done, 7, 0, False, NOW).error is ErrorCode.invalid_txn_state


def test_requests_while_markers_go_out_are_asked_to_retry() -> None:
    end = model.decide_end(_ongoing(), 7, 0, False, NOW)
    assert end.metadata is not None
    prepared = end.metadata
    assert model.decide_add_partitions(prepared, 7, 0, frozenset({("b", 0)}), NOW) is (
        ErrorCode.concurrent_transactions)
    assert model.decide_init(prepared, "t", 1000, NOW) is ErrorCode.concurrent_transactions
    assert model.decide_end(prepared, 7, 0, False, NOW).error is (
        ErrorCode.concurrent_transactions)


def test_init_on_an_open_transaction_fences_and_aborts_it() -> None:
    ongoing = _ongoing()
    decision = model.decide_init(ongoing, "t", 60_000, NOW)
    assert isinstance(decision, model.InitDecision) and decision.abort_first
    assert decision.metadata.state is TxnState.PREPARE_ABORT
    assert decision.metadata.producer_epoch == 1
    # The old epoch is now fenced everywhere.
    assert model.check_producer(decision.metadata, 7, 0) is ErrorCode.producer_fenced
    assert model.check_producer(decision.metadata, 8, 1) is (
        ErrorCode.invalid_producer_id_mapping)


def test_epoch_exhaustion_takes_a_new_producer_id() -> None:
    worn = TxnMetadata("t", 7, model.MAX_EPOCH, 1000, TxnState.COMPLETE_COMMIT)
    decision = model.decide_init(worn, "t", 1000, NOW)
    assert isinstance(decision, model.InitDecision) and decision.needs_new_producer_id


def test_timeouts_and_expiry() -> None:
    ongoing = _ongoing()
    assert not model.timed_out(ongoing, NOW + 60_000)
    assert model.timed_out(ongoing, NOW + 60_002)
    assert not model.expired(ongoing, NOW + 10**12, 1000)  # open: never expires
    done = model.complete(model.fence(ongoing, NOW), NOW)
    assert model.expired(done, NOW + 1000, 1000)


def test_illegal_transitions_raise() -> None:
    with pytest.raises(IllegalTransition):
        _ongoing().moved(TxnState.COMPLETE_COMMIT, NOW)


def test_transaction_log_value_round_trips() -> None:
    value = TxnMetadata("tx", 42, 3, 60_000, TxnState.PREPARE_COMMIT,
                        frozenset({("a", 0), ("a", 2), ("b", 1)}), 10, 20)
    key = records.encode_key("tx")
    assert records.decode_key(key) == "tx"
    assert records.decode_value("tx", records.encode_value(value)) == value
    with pytest.raises(records.TxnRecordError):
        records.decode_value("tx", b"\x00\x09garbage")
