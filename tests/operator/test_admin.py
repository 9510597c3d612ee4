"""``KafkaClusterAdmin`` against a real broker: what the operator's reads do to the cluster."""

from __future__ import annotations

from pathlib import Path

from headrace.server.broker import Broker, BrokerConfig
from headrace_operator.admin import KafkaClusterAdmin


async def test_looking_up_a_missing_topic_does_not_auto_create_it(tmp_path: Path) -> None:
    """The Topic reconcile asks whether its topic exists before creating it with the operator's
    placement; that question must not make the broker auto-create the topic with its defaults
    (one partition), which the operator then grew and reconfigured instead of creating it."""
    broker = Broker(BrokerConfig(data_dir=tmp_path, kafka_port=0, http_host=None,
                                 offsets_topic_partitions=1))
    await broker.start()
    admin = KafkaClusterAdmin(f"127.0.0.1:{broker.kafka_port}")
    try:
        assert broker.config.auto_create_topics  # the broker would create it if asked to
        assert await admin.topic("not-yet-created") is None
        assert "not-yet-created" not in broker.topics.topics()
        assert await admin.topic("not-yet-created") is None
    finally:
        await admin.close()
        await broker.stop()
