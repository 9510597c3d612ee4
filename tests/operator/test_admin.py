"""``KafkaClusterAdmin`` against a real broker: what the operator's reads do to the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace_operator.admin import AdminError, KafkaClusterAdmin
from tests.support.brokers import in_process_broker


async def test_looking_up_a_missing_topic_does_not_auto_create_it(tmp_path: Path) -> None:
    """The Topic reconcile asks whether its topic exists before creating it with the operator's
    placement; that question must not make the broker auto-create the topic with its defaults
    (one partition), which the operator then grew and reconfigured instead of creating it."""
    async with in_process_broker(tmp_path) as running:
        broker = running.broker
        admin = KafkaClusterAdmin(running.bootstrap)
        try:
            assert broker.config.auto_create_topics  # the broker would create it if asked to
            assert await admin.topic("not-yet-created") is None
            assert "not-yet-created" not in broker.topics.topics()
            assert await admin.topic("not-yet-created") is None
        finally:
            await admin.close()


async def test_a_closed_admin_starts_no_new_client(tmp_path: Path) -> None:
    """A reassignment call still running when the operator stops must not leave a fresh
    kafka-python client behind: its network thread would retry the gone broker forever."""
    async with in_process_broker(tmp_path) as running:
        admin = KafkaClusterAdmin(running.bootstrap)
        try:
            # A single broker has no reassignment API: the client is opened, asked, and dropped.
            assert (await admin.describe()).reassigning is False
            await admin.close()
            with pytest.raises(AdminError, match="closed"):
                await admin.reassign("t", {0: (0,)})
            assert (await admin.describe()).reassigning is False
            assert admin._reassigner is None
        finally:
            await admin.close()
