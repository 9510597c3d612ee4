"""A broker process stopped in the middle of creating thousands of topics: SIGTERM is honoured
within seconds, and after kill -9 every acknowledged topic is back, whole, and nothing half-made
is left on disk."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.brokers import BrokerProcess
from tests.support.waiting import eventually

#: Generous: a bound on a shutdown, not a performance figure (see bench/metadata_scale.py).
STOP_TIMEOUT = 20


def _create_in_background(bootstrap: str, names: list[str]) -> threading.Thread:
    def create() -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(n, 1, 1) for n in names],
                                          request_timeout=60).values():
            # The broker goes away mid-request: that is the point.
            with contextlib.suppress(Exception):
                future.result(60)

    thread = threading.Thread(target=create, daemon=True)
    thread.start()
    return thread


def _creation_under_way(data_dir: Path, prefix: str) -> bool:
    return any(p.name.startswith(prefix) for p in data_dir.iterdir())


def _check_whole(data_dir: Path, topics: dict[str, int]) -> None:
    directories = {p.name for p in data_dir.iterdir() if p.is_dir()}
    expected = {f"{name}-{p}" for name, count in topics.items() for p in range(count)}
    assert directories == expected


def _topics(bootstrap: str) -> dict[str, int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def test_sigterm_mid_creation_stops_promptly_and_kill_9_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    broker = BrokerProcess(data_dir).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        acknowledged = [f"acked-{i}" for i in range(200)]
        for future in admin.create_topics([NewTopic(n, 2, 1) for n in acknowledged]).values():
            future.result(60)

        # SIGTERM while a CreateTopics of 3000 topics is being made.
        creating = _create_in_background(broker.bootstrap, [f"big-{i}" for i in range(3000)])
        eventually(lambda: _creation_under_way(data_dir, "big-"), timeout=30, interval=0.005,
                   message="the creation never started")
        assert broker.stop(timeout=STOP_TIMEOUT) == 0
        creating.join(60)

        broker.start()
        topics = _topics(broker.bootstrap)
        assert all(topics[name] == 2 for name in acknowledged)
        _check_whole(data_dir, topics)

        # kill -9 while the next batch is being made.
        creating = _create_in_background(broker.bootstrap, [f"next-{i}" for i in range(3000)])
        eventually(lambda: _creation_under_way(data_dir, "next-"), timeout=30, interval=0.005,
                   message="the creation never started")
        broker.kill()
        creating.join(60)
        broker.start()
        topics = _topics(broker.bootstrap)
        assert all(topics[name] == 2 for name in acknowledged)
        _check_whole(data_dir, topics)
        after = AdminClient({"bootstrap.servers": broker.bootstrap})
        after.create_topics([NewTopic("afterwards", 1, 1)])["afterwards"].result(30)
    finally:
        broker.stop(timeout=STOP_TIMEOUT)
