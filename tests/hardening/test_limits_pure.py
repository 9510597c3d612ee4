"""The limit mechanisms on their own: the JSON depth check, the request budget, connection
slots and the flags that configure them."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re

import pytest

from headrace.cli.broker import add_arguments
from headrace.core.config import default_connection_limits
from headrace.server.limits import ConnectionSlots, RequestBudget, parse_ip_overrides
from headrace.web.json_body import nests_too_deep


def _depth_outside_strings(text: str) -> int:
    depth = deepest = 0
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _random_json(rng: random.Random, depth: int) -> object:
    """A value nested exactly ``depth`` deep along one spine, with small side branches and
    strings full of brackets and escapes."""
    leaves: list[object] = [1, "a[[{", "x", None, "]]", 'q"[[', "\\", '\\"]']
    value: object = rng.choice(leaves)
    for _ in range(depth):
        siblings = [rng.choice(leaves) for _ in range(rng.randint(0, 2))]
        if rng.random() < 0.5:
            value = [*siblings, value]
        else:
            value = {"k[": value, **{f"s{i}]": v for i, v in enumerate(siblings)}}
    return value


def test_the_depth_check_agrees_with_a_plain_count() -> None:
    rng = random.Random(14)
    for _ in range(2000):
        text = json.dumps(_random_json(rng, rng.randint(0, 40)))
        depth = _depth_outside_strings(text)
        for limit in {max(depth - 1, 0), depth, 3, 20}:
            assert nests_too_deep(text.encode(), limit) == (depth > limit), (text, limit)
    # Brackets in strings that would hide the real depth from a count that ignores strings.
    assert nests_too_deep(b'["]", [[1]], "["]', 2)
    assert not nests_too_deep(b'["[[[", "\\\\", ["]]]"]]', 2)


@pytest.mark.parametrize("body", [
    b"[" * 4_000_000 + b"]" * 4_000_000,
    (b"[" * 128 + b"]" * 128) * 31_000,
    b"[" + (b"[" * 17 + b"]" * 17) * 230_000 + b"]",
])
def test_the_depth_check_is_exact_on_crafted_shapes(body: bytes) -> None:
    expected = _depth_outside_strings(body.decode()) > 128
    assert nests_too_deep(body) == expected


async def test_the_budget_pauses_takers_in_order_and_resumes_them() -> None:
    budget = RequestBudget(100)
    assert budget.try_take(60)
    order: list[str] = []

    async def take(name: str, size: int) -> None:
        await budget.take(size)
        order.append(name)

    big = asyncio.create_task(take("big", 80))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 10))  # fits, but queues behind "big"
    await asyncio.sleep(0)
    assert order == [] and budget.waiting == 2
    assert not budget.try_take(1)  # nobody jumps the queue
    budget.release(60)
    await asyncio.gather(big, small)
    assert order == ["big", "small"] and budget.used == 90
    budget.release(90)
    assert budget.try_take(500)  # larger than the whole budget, admitted alone
    cancelled = asyncio.create_task(budget.take(1))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    budget.release(500)
    assert budget.used == 0 and budget.waiting == 0
    assert RequestBudget(None).try_take(1 << 40)


def test_connection_slots_count_per_address_and_in_total() -> None:
    slots = ConnectionSlots(3, 2, {"10.0.0.9": 3})
    assert slots.refusal("10.0.0.1") is None
    assert slots.refusal("10.0.0.1") is None
    assert "max.connections.per.ip=2" in str(slots.refusal("10.0.0.1"))
    assert slots.refusal("10.0.0.9") is None
    assert "max.connections=3" in str(slots.refusal("10.0.0.9"))
    slots.release("10.0.0.1")
    assert slots.refusal("10.0.0.9") is None
    assert slots.total == 3


def test_flags_parse_kafka_conventions_and_refuse_nonsense() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = parser.parse_args([])
    assert defaults.max_request_bytes == 100 * 1024 * 1024
    assert defaults.queued_max_request_bytes == 100 * 1024 * 1024
    assert defaults.connections_max_idle_ms == 600_000
    assert defaults.max_connections is None and defaults.http_max_connections is None
    args = parser.parse_args(["--queued-max-request-bytes", "-1",
                              "--connections-max-idle-ms", "-1",
                              "--max-connections-per-ip-overrides", "10.1.1.1:5,[::1]:2",
                              "--max-request-bytes", "2048"])
    assert args.queued_max_request_bytes is None and args.connections_max_idle_ms is None
    assert args.max_connections_per_ip_overrides == {"10.1.1.1": 5, "::1": 2}
    assert args.max_request_bytes == 2048  # the old name still works
    for bad in (["--max-connections", "0"], ["--http-header-timeout-ms", "soon"],
                ["--max-connections-per-ip-overrides", "nohost"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    with pytest.raises(ValueError, match="HOST:COUNT"):
        parse_ip_overrides("a:b")


def test_default_connection_limits_split_the_descriptors() -> None:
    assert default_connection_limits(1024) == (512, 256)
    assert default_connection_limits(20) == (16, 16)
