"""Fixtures of tests/compat: the real ``headrace broker`` fixtures of tests/clients.

Each module skips as a whole, with the installer's reason, when Apache Kafka's jars or java are
missing (``tests.peers.kafka.kafka_missing_reason``).
"""

from __future__ import annotations

from tests.clients.conftest import broker, fresh_broker, start_broker  # noqa: F401
