"""Pure parts of the server: topic name rules, producer-id allocation, the API registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.core.producer_ids import ProducerIdAllocator
from headrace.core.requests import ApiHandler, ApiRegistry, RequestContext
from headrace.core.topics import topic_name_problem


@pytest.mark.parametrize("name", ["a", "orders.v1", "A-b_c.9", "x" * 249, "__consumer_offsets"])
def test_legal_topic_names(name: str) -> None:
    assert topic_name_problem(name) is None


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 250, "a b", "a/b", "é", None])
def test_illegal_topic_names(name: str | None) -> None:
    assert topic_name_problem(name) is not None


async def test_producer_ids_are_never_reused_across_restarts(tmp_path: Path) -> None:
    first = ProducerIdAllocator(tmp_path, block_size=10)
    issued = [await first.allocate() for _ in range(15)]
    assert issued == list(range(15))
    second = ProducerIdAllocator(tmp_path, block_size=10)  # "restart" mid-block
    later = [await second.allocate() for _ in range(3)]
    assert min(later) >= 20 > max(issued)
    assert len(set(issued + later)) == 18


def test_corrupt_producer_id_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "producer-id-block").write_text("banana")
    with pytest.raises(RuntimeError):
        ProducerIdAllocator(tmp_path)


async def _handle(request: object, ctx: RequestContext) -> None:
    return None


def test_registry_lookup_respects_version_ranges() -> None:
    registry = ApiRegistry([ApiHandler(3, 0, 12, _handle), ApiHandler(0, 3, 9, _handle)])
    assert registry.lookup(0, 3) is not None
    assert registry.lookup(0, 2) is None
    assert registry.lookup(0, 10) is None
    assert registry.lookup(42, 0) is None
    assert registry.supported() == [(0, 3, 9), (3, 0, 12)]
    registry.register(ApiHandler(0, 3, 7, _handle))
    assert registry.lookup(0, 8) is None
    with pytest.raises(ValueError):
        registry.register(ApiHandler(1, 5, 4, _handle))
