"""The request pipeline's seams, driven over the wire: a quota manager's throttle reaches every
response shape, an authorizer's denial answers the denied topic's partitions without the
handler, and handlers' contexts carry the session (listener, principal), not the broker."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from headrace.app import BrokerApp
from headrace.core.policies import RequestUsage
from headrace.core.requests import RequestContext
from headrace.core.security import ANONYMOUS, Action, Operation, ResourceType
from headrace.core.topics import TopicSpec
from headrace.server.pipeline import with_throttle
from tests.server.test_wire import fetch_fields, produce_fields, request_module
from tests.server.wire import WireClient, build_batch
from tests.support.brokers import in_process_broker

THROTTLE_MS = 1234


class Throttling:
    """Throttles every request and remembers the contexts it saw."""

    enabled = True

    def __init__(self) -> None:
        self.seen: list[RequestContext] = []
        self.usage: list[RequestUsage] = []

    def fetch_bytes_limit(self, ctx: RequestContext) -> int | None:
        return None

    def throttle_ms(self, ctx: RequestContext, usage: RequestUsage) -> int:
        self.seen.append(ctx)
        self.usage.append(usage)
        return THROTTLE_MS


class DenySecret:
    """Denies everything on the topic ``secret``."""

    enabled = True

    def __init__(self) -> None:
        self.asked: list[Action] = []

    def authorize(self, ctx: RequestContext, actions: Sequence[Action]) -> Sequence[bool]:
        self.asked.extend(actions)
        return [action.name != "secret" for action in actions]


@pytest.fixture
async def piped(tmp_path: Path) -> AsyncIterator[tuple[BrokerApp, Throttling, DenySecret]]:
    quotas, authorizer = Throttling(), DenySecret()
    async with in_process_broker(
        tmp_path / "data", quotas=quotas, authorizer=authorizer
    ) as running:
        for name in ("open", "secret"):
            running.broker.create_topic(TopicSpec(name, 1))
        yield running.app, quotas, authorizer


async def test_the_quota_managers_throttle_reaches_every_response_shape(
    piped: tuple[BrokerApp, Throttling, DenySecret],
) -> None:
    app, quotas, _ = piped
    client = await WireClient.connect(app.kafka_port)
    try:
        expected = datetime.timedelta(milliseconds=THROTTLE_MS)
        metadata = await client.request(3, 12, topics=None, allow_auto_topic_creation=False,
                                        include_topic_authorized_operations=False)
        assert metadata.throttle_time == expected  # a kio dataclass response
        produced = await client.request(0, 9, **produce_fields("open", 0, build_batch([b"x"])))
        assert produced.throttle_time == expected  # hand-framed, flexible
        assert produced.responses[0].partition_responses[0].error_code == ErrorCode.none
        produced_v3 = await client.request(0, 3, **{
            key: value for key, value in produce_fields("open", 0, build_batch([b"y"])).items()
        })
        assert produced_v3.throttle_time == expected  # hand-framed, not flexible
        fetched = await client.request(1, 12, **fetch_fields("open", 0, 0))
        assert fetched.throttle_time == expected  # hand-framed with file slices
        assert fetched.responses[0].partitions[0].high_watermark == 2
    finally:
        await client.close()
    assert {ctx.api_key for ctx in quotas.seen} >= {0, 1, 3}
    assert {(ctx.listener, ctx.principal) for ctx in quotas.seen} == {("PLAINTEXT", ANONYMOUS)}
    assert all(ctx.client_host == "127.0.0.1" for ctx in quotas.seen)
    fetches = [u for ctx, u in zip(quotas.seen, quotas.usage, strict=True) if ctx.api_key == 1]
    assert fetches and all(u.response_bytes > 0 for u in fetches)  # records included
    assert all(u.request_bytes > 0 and u.handler_seconds > 0 for u in quotas.usage)


async def test_a_denied_topic_is_answered_for_each_of_its_partitions(
    piped: tuple[BrokerApp, Throttling, DenySecret],
) -> None:
    app, _, authorizer = piped
    module = request_module(2, 7)
    client = await WireClient.connect(app.kafka_port)
    try:
        response = await client.request(
            2, 7, replica_id=-1, isolation_level=0,
            topics=tuple(
                module.ListOffsetsTopic(name=name, partitions=(
                    module.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1,
                                                timestamp=-1),))
                for name in ("open", "secret")
            ),
        )
    finally:
        await client.close()
    codes = {t.name: t.partitions[0].error_code for t in response.topics}
    assert codes == {"open": ErrorCode.none, "secret": ErrorCode.topic_authorization_failed}
    assert Action(Operation.DESCRIBE, ResourceType.TOPIC, "secret") in authorizer.asked


def test_with_throttle_leaves_versions_without_the_field_alone() -> None:
    from headrace.protocol.codec import PreEncodedResponse

    plain = PreEncodedResponse(0, False, [b"\x00\x00\x00\x00rest"])
    assert with_throttle(plain, 5) is plain  # no throttle_at: nothing patched
    patched = with_throttle(PreEncodedResponse(0, False, [b"ab\x00\x00\x00\x00cd"],
                                               throttle_at=2), 7)
    assert patched.body_parts == [b"ab\x00\x00\x00\x07cd"]
