"""Transaction API details over a real socket (kio requests, exact versions): ListOffsets with
read_committed, PRODUCER_FENCED vs INVALID_PRODUCER_EPOCH by version, KIP-447 fencing of
TxnOffsetCommit, and KIP-890 verification of a transactional Produce."""

from __future__ import annotations

import datetime
from pathlib import Path

from kio.schema.errors import ErrorCode

from headrace.core.topics import TopicSpec
from headrace.groups.model import JoinProtocol, JoinRequest
from tests.server.test_wire import produce_fields, request_module
from tests.server.wire import WireClient
from tests.support.brokers import in_process_broker
from tests.transactions.test_partition_state import _txn_batch

SECOND = datetime.timedelta(seconds=1)


async def test_transaction_api_details(tmp_path: Path) -> None:
    async with in_process_broker(tmp_path / "data",
                                 group_initial_rebalance_delay_ms=0) as running:
        broker, app = running.broker, running.app
        broker.create_topic(TopicSpec("w", 1))
        client = await WireClient.connect(broker.kafka_port)
        try:
            init = await client.request(22, 4, transactional_id="tx",
                                        transaction_timeout=SECOND * 30,
                                        producer_id=-1, producer_epoch=-1)
            pid, epoch = int(init.producer_id), int(init.producer_epoch)

            # KIP-890 part 1: a partition not added to the transaction refuses its batch.
            refused = await client.request(0, 9, **{
                **produce_fields("w", 0, _txn_batch([b"early"], 0, pid=pid)),
                "transactional_id": "tx"})
            assert refused.responses[0].partition_responses[0].error_code == (
                ErrorCode.invalid_txn_state)
            added = await client.request(
                24, 3, v3_and_below_transactional_id="tx", v3_and_below_producer_id=pid,
                v3_and_below_producer_epoch=epoch,
                v3_and_below_topics=(request_module(24, 3).AddPartitionsToTxnTopic(
                    name="w", partitions=(0,)),))
            result = added.results_by_topic_v3_and_below[0].results_by_partition[0]
            assert result.partition_error_code == ErrorCode.none
            accepted = await client.request(0, 9, **{
                **produce_fields("w", 0, _txn_batch([b"a", b"b"], 0, pid=pid)),
                "transactional_id": "tx"})
            assert accepted.responses[0].partition_responses[0].error_code == ErrorCode.none

            # ListOffsets latest: the high watermark, or the LSO for read_committed.
            module = request_module(2, 7)
            for isolation, expected in ((0, 2), (1, 0)):
                wanted = module.ListOffsetsTopic(name="w", partitions=(module.ListOffsetsPartition(
                    partition_index=0, timestamp=-1, current_leader_epoch=-1),))
                listed = await client.request(2, 7, replica_id=-1, isolation_level=isolation,
                                              topics=(wanted,))
                assert listed.topics[0].partitions[0].offset == expected, isolation

            # KIP-447: a member unknown to the group is fenced from TxnOffsetCommit.
            await app.groups.join_group(JoinRequest(
                group_id="g", member_id="", group_instance_id=None, client_id="c",
                client_host="h", session_timeout_ms=30_000, rebalance_timeout_ms=30_000,
                protocol_type="consumer", protocols=(JoinProtocol("range", b""),),
                require_known_member_id=False))
            commit_module = request_module(28, 3)
            fenced = await client.request(
                28, 3, transactional_id="tx", group_id="g", producer_id=pid,
                producer_epoch=epoch, generation_id=1, member_id="a-zombie",
                group_instance_id=None, topics=(commit_module.TxnOffsetCommitRequestTopic(
                    name="w", partitions=(commit_module.TxnOffsetCommitRequestPartition(
                        partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                        committed_metadata=""),)),))
            assert fenced.topics[0].partitions[0].error_code == ErrorCode.unknown_member_id

            # A newer incarnation fences the old epoch: PRODUCER_FENCED from EndTxn v2 (KIP-588),
            # INVALID_PRODUCER_EPOCH before.
            for _ in range(3):  # the first re-init aborts the open transaction: retried
                again = await client.request(22, 4, transactional_id="tx",
                                             transaction_timeout=SECOND * 30,
                                             producer_id=-1, producer_epoch=-1)
                if again.error_code == ErrorCode.none:
                    break
                assert again.error_code == ErrorCode.concurrent_transactions
                await app.transactions.wait_idle()
            assert again.error_code == ErrorCode.none and int(again.producer_epoch) > epoch
            for version, expected_error in ((1, ErrorCode.invalid_producer_epoch),
                                            (3, ErrorCode.producer_fenced)):
                ended = await client.request(26, version, transactional_id="tx",
                                             producer_id=pid, producer_epoch=epoch,
                                             committed=True)
                assert ended.error_code == expected_error, version
        finally:
            await client.close()
