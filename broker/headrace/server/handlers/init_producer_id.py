"""InitProducerId v0-4 for idempotent producers (transactions are not supported).

Every call allocates a fresh producer id with epoch 0 from the broker's producer-id source (a
durable local allocator, or cluster-wide blocks in etcd); the storage engine tracks the sequence
numbers per producer id. Transactional producers get TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from headrace.core.broker import Broker
from headrace.core.errors import KafkaError
from headrace.core.requests import KafkaApi, RequestContext
from headrace.core.responses import OK, build
from headrace.server.handlers.binding import BrokerApi

if TYPE_CHECKING:
    from headrace.core.api_types import InitProducerIdRequests, InitProducerIdResponses

INIT_PRODUCER_ID: KafkaApi[InitProducerIdRequests, InitProducerIdResponses] = KafkaApi(22)


async def handle_init_producer_id(
    broker: Broker, request: InitProducerIdRequests, ctx: RequestContext
) -> InitProducerIdResponses:
    response = INIT_PRODUCER_ID.response(ctx.api_version)
    if request.transactional_id is not None:
        return _failure(response, ErrorCode.transactional_id_authorization_failed)
    try:
        producer_id = await broker.producer_ids.allocate()
    except KafkaError as error:
        return _failure(response, error.code)
    return build(
        response,
        error_code=OK,
        producer_id=producer_id,
        producer_epoch=0,
    )


def _failure(
    response: type[InitProducerIdResponses], code: ErrorCode
) -> InitProducerIdResponses:
    return build(
        response,
        error_code=code,
        producer_id=-1,
        producer_epoch=-1,
    )


HANDLERS = (BrokerApi(INIT_PRODUCER_ID, 0, 4, handle_init_producer_id),)
