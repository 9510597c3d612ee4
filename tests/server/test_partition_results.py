"""The one per-item error loop (``each``) and its per-partition and per-topic variants."""

from __future__ import annotations

import asyncio

import pytest
from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.core.requests import RequestContext, Session
from headrace.core.responses import by_topic, each, partition_results
from headrace.core.security import ResourceType


def _ctx(denied: frozenset[tuple[int, str]] = frozenset()) -> RequestContext:
    return RequestContext(2, 7, 1, "test", Session("PLAINTEXT", "127.0.0.1"), denied=denied)


def test_each_answers_every_item_and_fails_only_the_ones_that_raise() -> None:
    async def answer(item: int) -> str:
        if item % 2:
            raise KafkaError(ErrorCode.invalid_request, f"odd {item}")
        return f"ok {item}"

    results = asyncio.run(each(range(4), answer, lambda item, e: f"{item}: {e.message}"))
    assert results == ("ok 0", "1: odd 1", "ok 2", "3: odd 3")


def test_each_lets_other_exceptions_through() -> None:
    async def answer(item: int) -> int:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        asyncio.run(each([1], answer, lambda item, e: 0))


Results = tuple[tuple[str, tuple[str, ...]], ...]


def _run(
    ctx: RequestContext, check: object = None
) -> tuple[Results, list[tuple[str, int]]]:
    """Partitions 0 and 2 answer, partition 1 raises; returns (results, answered calls)."""
    calls: list[tuple[str, int]] = []

    async def answer(topic: str, partition: int) -> str:
        calls.append((topic, partition))
        if partition == 1:
            raise KafkaError(ErrorCode.not_leader_or_follower, "moved")
        return f"{partition}=ok"

    def failed(topic: str, partition: int, error: KafkaError) -> str:
        return f"{partition}={error.code.name}"

    result = asyncio.run(partition_results(
        ctx, [("a", [0, 1]), ("b", [0]), ("c", [2])], answer=answer, failed=failed,
        topic=lambda name, parts: (name, parts), check=check,  # type: ignore[arg-type]
    ))
    return result, calls


def test_partition_results_fails_each_partition_on_its_own() -> None:
    assert _run(_ctx())[0] == (
        ("a", ("0=ok", "1=not_leader_or_follower")), ("b", ("0=ok",)), ("c", ("2=ok",)),
    )


def test_a_denied_topic_fails_all_its_partitions_without_answering_them() -> None:
    result, calls = _run(_ctx(frozenset({(int(ResourceType.TOPIC), "a")})))
    assert result[0] == ("a", ("0=topic_authorization_failed", "1=topic_authorization_failed"))
    assert result[1] == ("b", ("0=ok",))
    assert ("a", 0) not in calls


def test_a_topic_the_check_refuses_fails_all_its_partitions() -> None:
    async def check(topic: str) -> None:
        if topic == "b":
            raise KafkaError(ErrorCode.unknown_topic_or_partition, topic)

    result, calls = _run(_ctx(), check)
    assert result[1] == ("b", ("0=unknown_topic_or_partition",))
    assert result[2] == ("c", ("2=ok",))
    assert ("b", 0) not in calls


def test_by_topic_groups_keyed_results_in_first_seen_order() -> None:
    keyed = [(("b", 0), "b0"), (("a", 1), "a1"), (("b", 2), "b2")]
    assert by_topic(keyed, lambda name, parts: (name, parts)) == (
        ("b", ("b0", "b2")), ("a", ("a1",)),
    )
