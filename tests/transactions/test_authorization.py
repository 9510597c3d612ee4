"""The transaction APIs ask the pipeline's authorizer for WRITE on the transactional id (and
CLUSTER_ACTION for broker-to-broker markers), as Kafka does."""

from __future__ import annotations

import datetime
from pathlib import Path

from kio.schema.errors import ErrorCode

from tests.server.test_pipeline import DenySecret
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
