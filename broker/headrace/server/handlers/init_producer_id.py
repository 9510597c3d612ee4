"""InitProducerId v0-4 for idempotent producers (transactions are not supported).

Every call allocates a fresh producer id with epoch 0 from the broker's producer-id source (a
durable local allocator, or cluster-wide blocks in etcd); the storage engine tracks the sequence
numbers per producer id. Transactional producers get TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import RequestContext
from headrace.core.responses import OK, build, response_classes
from headrace.server.handlers.binding import BrokerApi

API_KEY = 22


async def handle_init_producer_id(broker: Broker, request: Any, ctx: RequestContext) -> Any:
    module = response_classes(API_KEY, ctx.api_version)
    if request.transactional_id is not None:
        return _failure(module, ErrorCode.transactional_id_authorization_failed)
    try:
        producer_id = await broker.producer_ids.allocate()
    except KafkaError as error:
        return _failure(module, error.code)
    return build(
        module.InitProducerIdResponse,
        error_code=OK,
        producer_id=producer_id,
        producer_epoch=0,
    )


def _failure(module: Any, code: ErrorCode) -> Any:
    return build(
        module.InitProducerIdResponse,
        error_code=code,
        producer_id=-1,
        producer_epoch=-1,
    )


HANDLERS = [BrokerApi(API_KEY, 0, 4, handle_init_producer_id)]
