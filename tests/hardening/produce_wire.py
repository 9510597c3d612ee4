"""Raw Produce requests for the hardening tests: any bytes as a partition's records, over a
real socket, answered by kio's decoder (so the response framing is checked too)."""

from __future__ import annotations

import datetime
import sys
from typing import Any

from kio.index import load_request_schema

from tests.server.wire import WireClient


def produce_fields(topic: str, records: bytes, version: int, partition: int = 0) -> dict[str, Any]:
    module = sys.modules[load_request_schema(0, version).__module__]
    return {
        "transactional_id": None,
        "acks": -1,
        "timeout": datetime.timedelta(seconds=5),
        "topic_data": (
            module.TopicProduceData(
                name=topic,
                partition_data=(module.PartitionProduceData(index=partition, records=records),),
            ),
        ),
    }


async def produce(client: WireClient, topic: str, records: bytes, version: int = 9) -> Any:
    """The partition response of a Produce of ``records`` to partition 0 of ``topic``."""
    response = await client.request(0, version, **produce_fields(topic, records, version))
    return response.responses[0].partition_responses[0]


def record_errors(partition_response: Any) -> list[tuple[int, str]]:
    return [
        (int(error.batch_index), str(error.batch_index_error_message))
        for error in partition_response.record_errors
    ]
