"""``headrace transactions``: list and describe transactions, like ``kafka-transactions.sh``.

librdkafka's admin API has no transaction calls, so this speaks the Kafka protocol itself
(kio requests over :class:`~headrace.cluster.wire.BrokerConnection`): ``list`` asks every
broker of the cluster (ListTransactions: each answers for the ids it coordinates), ``describe``
finds the coordinator (FindCoordinator key type 1) and asks it (DescribeTransactions).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from headrace.cli.kafka_tools import (
    CliError,
    add_connection_arguments,
    at_bootstrap,
    broker_request,
    emit,
    print_table,
    run_guarded,
)

NAME = "transactions"
HELP = "List and describe transactions (their state, producer, partitions)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every transactional id the brokers coordinate")
    listing.add_argument("--state", action="append", default=[],
                         help="only these states (Ongoing, PrepareCommit, ...; repeatable)")
    add_connection_arguments(listing)
    describe = actions.add_parser("describe", help="one transactional id in detail")
    describe.add_argument("transactional_id", metavar="TRANSACTIONAL-ID")
    add_connection_arguments(describe)


def run(args: argparse.Namespace) -> int:
    return run_guarded(lambda a: asyncio.run(at_bootstrap(a, _action)), args)


async def _action(args: argparse.Namespace, host: str, port: int) -> int:
    from kio.schema.describe_transactions.v0 import request as describe_v0
    from kio.schema.errors import ErrorCode
    from kio.schema.find_coordinator.v3 import request as find_v3
    from kio.schema.list_transactions.v0 import request as list_v0
    from kio.schema.metadata.v1 import request as metadata_v1
    from kio.schema.types import TransactionalId
    from kio.serial.errors import SerialError
    from kio.static.primitive import i8

    if args.action == "list":
        metadata = await broker_request(host, port, metadata_v1.MetadataRequest(topics=()),
                                  args.timeout)
        rows: list[dict[str, Any]] = []
        for broker in metadata.brokers:
            answer = await broker_request(
                broker.host, int(broker.port), list_v0.ListTransactionsRequest(
                    state_filters=tuple(args.state), producer_id_filters=()), args.timeout)
            if answer.error_code != ErrorCode.none:
                code = ErrorCode(answer.error_code).name.upper()
                raise CliError(f"broker {broker.node_id}: {code}")
            rows.extend(
                {"transactional_id": s.transactional_id, "coordinator": int(broker.node_id),
                 "producer_id": int(s.producer_id), "state": s.transaction_state}
                for s in answer.transaction_states
            )
        rows.sort(key=lambda row: row["transactional_id"])
        emit(args, rows, lambda: print_table(
            rows, ["transactional_id", "coordinator", "producer_id", "state"]))
        return 0
    found = await broker_request(host, port, find_v3.FindCoordinatorRequest(
        key=args.transactional_id, key_type=i8(1)), args.timeout)
    if found.error_code != ErrorCode.none:
        raise CliError(f"no coordinator for {args.transactional_id}: "
                       f"{ErrorCode(found.error_code).name.upper()}")
    try:
        answer = await broker_request(found.host, int(found.port),
                                describe_v0.DescribeTransactionsRequest(
            transactional_ids=(TransactionalId(args.transactional_id),)), args.timeout)
    except SerialError:
        # kio cannot read the start time -1 Kafka sends for an id with no transaction yet:
        # its state is all there is to show.
        listed = await broker_request(found.host, int(found.port), list_v0.ListTransactionsRequest(
            state_filters=(), producer_id_filters=()), args.timeout)
        entries = [e for e in listed.transaction_states
                   if e.transactional_id == args.transactional_id]
        if not entries:
            raise CliError(f"{args.transactional_id}: TRANSACTIONAL_ID_NOT_FOUND") from None
        brief = {"transactional_id": entries[0].transactional_id,
                 "coordinator": int(found.node_id), "state": entries[0].transaction_state,
                 "producer_id": int(entries[0].producer_id)}
        emit(args, brief, lambda: print_table([brief], list(brief)))
        return 0
    state = answer.transaction_states[0]
    if state.error_code != ErrorCode.none:
        raise CliError(f"{args.transactional_id}: {ErrorCode(state.error_code).name.upper()}")
    row = {
        "transactional_id": state.transactional_id, "coordinator": int(found.node_id),
        "state": state.transaction_state, "producer_id": int(state.producer_id),
        "producer_epoch": int(state.producer_epoch),
        "timeout_ms": int(state.transaction_timeout.total_seconds() * 1000),
        "start": state.transaction_start_time.isoformat() if state.transaction_state in (
            "Ongoing", "PrepareCommit", "PrepareAbort") else None,
        "partitions": [f"{t.topic}-{p}" for t in state.topics for p in t.partitions],
    }
    emit(args, row, lambda: print_table([row], list(row)))
    return 0
