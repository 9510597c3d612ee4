"""The transaction APIs ask the pipeline's authorizer for WRITE on the transactional id (and
CLUSTER_ACTION for broker-to-broker markers), as Kafka does."""

from __future__ import annotations

import datetime
from pathlib import Path

from kio.schema.errors import ErrorCode

from headrace.core.topics import TopicSpec
from tests.server.test_pipeline import DenySecret
from tests.server.test_wire import request_module
from tests.server.wire import WireClient
from tests.support.brokers import in_process_broker


async def test_a_denied_transactional_id_is_refused(tmp_path: Path) -> None:
    authorizer = DenySecret()
    async with in_process_broker(tmp_path / "data", authorizer=authorizer) as running:
        client = await WireClient.connect(running.broker.kafka_port)
        try:
            for transactional_id, expected in (
                ("secret", ErrorCode.transactional_id_authorization_failed),
                ("open", ErrorCode.none),
            ):
                answer = await client.request(
                    22, 4, transactional_id=transactional_id,
                    transaction_timeout=datetime.timedelta(seconds=10),
                    producer_id=-1, producer_epoch=-1,
                )
                assert answer.error_code == expected, transactional_id
        finally:
            await client.close()
    assert any(a.name == "secret" and a.resource_type.name == "TRANSACTIONAL_ID"
               for a in authorizer.asked)


async def test_a_denied_txn_offset_commit_stages_no_offset(tmp_path: Path) -> None:
    async with in_process_broker(tmp_path / "data", authorizer=DenySecret()) as running:
        running.broker.create_topic(TopicSpec("w", 1))
        client = await WireClient.connect(running.broker.kafka_port)
        module = request_module(28, 3)
        try:
            answer = await client.request(
                28, 3, transactional_id="secret", group_id="g", producer_id=1,
                producer_epoch=0, generation_id=-1, member_id="", group_instance_id=None,
                topics=(module.TxnOffsetCommitRequestTopic(
                    name="w", partitions=(module.TxnOffsetCommitRequestPartition(
                        partition_index=0, committed_offset=5, committed_leader_epoch=-1,
                        committed_metadata=""),)),))
        finally:
            await client.close()
        assert answer.topics[0].partitions[0].error_code == (
            ErrorCode.transactional_id_authorization_failed)
        assert not running.app.groups.has_pending_offset("g", "w", 0)
