"""Everything the operator asks of the brokers, behind one small ``ClusterAdmin`` protocol.

Planners take the plain data these calls return (``BrokerState``, ``ObservedTopic``), so they stay
pure; the reconcilers talk to a ``ClusterAdmin`` (one per cluster, from an ``AdminPool``); tests
can use real brokers or any object with the same methods. ``KafkaClusterAdmin`` speaks the Kafka
admin protocol: confluent-kafka's AdminClient for metadata, topics and configs, and kafka-python
for AlterPartitionReassignments / ListPartitionReassignments (confluent-kafka has no
reassignment API). Both are blocking clients, so calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from headrace_operator.planning import Assignment, BrokerState, ObservedTopic, PartitionState

# Seconds a broker call may take; HEADRACE_OPERATOR_ADMIN_TIMEOUT shortens it (e.g. in tests).
_TIMEOUT_S = float(os.environ.get("HEADRACE_OPERATOR_ADMIN_TIMEOUT", "15"))
_PROBE_TIMEOUT_S = min(_TIMEOUT_S, 3.0)


class AdminError(Exception):
    """A broker-side failure the handler reports as a condition and retries later."""


class ClusterAdmin(Protocol):
    async def describe(self) -> BrokerState: ...

    async def topic(self, name: str) -> ObservedTopic | None: ...

    async def create_topic(self, name: str, assignment: Assignment,
                           config: Mapping[str, str]) -> None: ...

    async def create_partitions(self, name: str, new_partitions: Assignment) -> None: ...

    async def alter_topic_config(self, name: str, set_: Mapping[str, str],
                                 reset: list[str]) -> None: ...

    async def delete_topic(self, name: str) -> None: ...

    async def reassign(self, topic: str, assignment: Assignment) -> None: ...

    async def close(self) -> None: ...


class KafkaClusterAdmin:
    """``ClusterAdmin`` over the Kafka protocol, for one cluster's bootstrap address."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._client = _confluent().AdminClient({"bootstrap.servers": bootstrap_servers,
                                    "socket.timeout.ms": int(_TIMEOUT_S * 1000)})
        self._reassigner: Any = None
        # Worker threads create the kafka-python client on first use; a call still running
        # when ``close`` comes must not leave a fresh one behind (its network thread would
        # retry a gone broker for the rest of the process).
        self._reassigner_lock = threading.Lock()
        self._closed = False

    async def _probe(self) -> None:
        """Fail fast when no bootstrap address accepts a connection.

        librdkafka would otherwise wait out its whole timeout, and its metadata call keeps
        Python's interpreter lock meanwhile, stalling every other reconcile in the process.
        """
        for address in self.bootstrap_servers.split(","):
            host, _, port = address.strip().rpartition(":")
            try:
                _reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host.strip("[]"), int(port)), _PROBE_TIMEOUT_S)
            except (OSError, ValueError, TimeoutError):
                continue
            writer.close()
            return
        raise AdminError(f"cannot reach brokers at {self.bootstrap_servers}")

    async def describe(self) -> BrokerState:
        await self._probe()
        return await asyncio.to_thread(self._describe)

    def _describe(self) -> BrokerState:
        try:
            metadata = self._client.list_topics(timeout=_TIMEOUT_S)
        except Exception as error:  # KafkaException: cluster unreachable
            raise AdminError(f"cannot reach brokers at {self.bootstrap_servers}: {error}") from None
        partitions = [
            PartitionState(name, p.id, tuple(p.replicas), tuple(p.isrs),
                           p.leader if p.leader >= 0 else None)
            for name, topic in metadata.topics.items() if not name.startswith("__")
            for p in topic.partitions.values()
        ]
        return BrokerState(live_brokers=frozenset(metadata.brokers),
                           controller_id=metadata.controller_id
                           if metadata.controller_id >= 0 else None,
                           partitions=tuple(sorted(partitions, key=lambda p: (p.topic,
                                                                               p.partition))),
                           reassigning=self._reassigning())

    def _reassigning(self) -> bool:
        try:
            return bool(self._kafka_python().list_partition_reassignments(
                timeout_ms=int(_TIMEOUT_S * 1000)))
        except Exception:
            # Brokers without the API cannot have a reassignment in progress; other failures
            # may come from stale cached metadata (restarted brokers): start afresh next time.
            self._drop_kafka_python()
            return False

    def _kafka_python(self) -> Any:
        with self._reassigner_lock:
            if self._closed:
                raise AdminError("the cluster admin is closed")
            if self._reassigner is None:
                from kafka.admin import KafkaAdminClient

                self._reassigner = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                                    request_timeout_ms=int(_TIMEOUT_S * 1000))
            return self._reassigner

    async def topic(self, name: str) -> ObservedTopic | None:
        await self._probe()
        try:
            return await asyncio.to_thread(self._topic, name)
        except Exception as error:
            raise AdminError(f"cannot describe topic {name}: {error}") from None

    def _topic(self, name: str) -> ObservedTopic | None:
        ck = _confluent()
        # All topics, not ``topic=name``: librdkafka asks for that one with auto-creation
        # allowed, so probing for a missing topic would make the broker create it with its
        # defaults (one partition, broker-side placement) instead of the operator's plan.
        metadata = self._client.list_topics(timeout=_TIMEOUT_S)
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or not topic.partitions:
            return None
        resource = ck.ConfigResource(ck.ResourceType.TOPIC, name)
        entries = self._client.describe_configs([resource])[resource].result(timeout=_TIMEOUT_S)
        config = {key: entry.value for key, entry in entries.items()
                  if not entry.is_default and entry.value is not None
                  and _source_number(entry.source) in _TOPIC_SET_SOURCES}
        assignment = {p.id: list(p.replicas) for p in topic.partitions.values()}
        return ObservedTopic(dict(sorted(assignment.items())), config)

    async def create_topic(self, name: str, assignment: Assignment,
                           config: Mapping[str, str]) -> None:
        ck = _confluent()
        replicas = [assignment[p] for p in sorted(assignment)]
        # librdkafka wants the partition count alongside an explicit assignment.
        explicit = ck.NewTopic(name, num_partitions=len(replicas), replication_factor=-1,
                               replica_assignment=replicas, config=dict(config))
        try:
            await self._wait(lambda: self._client.create_topics(
                [explicit], operation_timeout=_TIMEOUT_S)[name])
        except AdminError as error:
            if not _assignment_unsupported(error):
                raise
            # Brokers that place replicas themselves (with the same headrace.placement rules)
            # refuse explicit assignments: give them the counts instead.
            counted = ck.NewTopic(name, num_partitions=len(replicas),
                                  replication_factor=len(replicas[0]), config=dict(config))
            await self._wait(lambda: self._client.create_topics(
                [counted], operation_timeout=_TIMEOUT_S)[name])

    async def create_partitions(self, name: str, new_partitions: Assignment) -> None:
        ck = _confluent()
        total = max(new_partitions) + 1
        explicit = ck.NewPartitions(name, total, replica_assignment=[
            new_partitions[p] for p in sorted(new_partitions)])
        try:
            await self._wait(lambda: self._client.create_partitions([explicit])[name])
        except AdminError as error:
            if not _assignment_unsupported(error):
                raise
            counted = ck.NewPartitions(name, total)
            await self._wait(lambda: self._client.create_partitions([counted])[name])

    async def alter_topic_config(self, name: str, set_: Mapping[str, str],
                                 reset: list[str]) -> None:
        ck = _confluent()
        entries = [ck.ConfigEntry(k, v, incremental_operation=ck.AlterConfigOpType.SET)
                   for k, v in set_.items()]
        entries += [ck.ConfigEntry(k, None, incremental_operation=ck.AlterConfigOpType.DELETE)
                    for k in reset]
        resource = ck.ConfigResource(ck.ResourceType.TOPIC, name, incremental_configs=entries)
        await self._wait(lambda: self._client.incremental_alter_configs([resource])[resource])

    async def delete_topic(self, name: str) -> None:
        try:
            await self._wait(lambda: self._client.delete_topics(
                [name], operation_timeout=_TIMEOUT_S)[name])
        except AdminError as error:
            if "UNKNOWN_TOPIC" not in str(error):  # already gone: that is what we wanted
                raise

    async def reassign(self, topic: str, assignment: Assignment) -> None:
        await asyncio.to_thread(self._reassign, topic, assignment)

    def _drop_kafka_python(self) -> None:
        with self._reassigner_lock:
            client, self._reassigner = self._reassigner, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def _reassign(self, topic: str, assignment: Assignment) -> None:
        from kafka import TopicPartition

        try:
            errors = self._kafka_python().alter_partition_reassignments(
                {TopicPartition(topic, p): list(r) for p, r in assignment.items()},
                timeout_ms=int(_TIMEOUT_S * 1000))
        except Exception as error:
            self._drop_kafka_python()  # next attempt starts from fresh metadata
            raise AdminError(f"reassignment of {topic} failed: {error}") from None
        failed = {str(tp): str(e) for tp, e in (errors or {}).items() if e is not None}
        if failed:
            raise AdminError(f"reassignment of {topic} rejected: {failed}")

    async def _wait(self, submit: Callable[[], Any]) -> None:
        """Submit a request and wait for its future; every failure becomes an AdminError."""
        try:
            future = submit()
            await asyncio.to_thread(future.result, _TIMEOUT_S)
        except Exception as error:
            raise AdminError(str(error)) from None

    async def close(self) -> None:
        with self._reassigner_lock:
            self._closed = True
        await asyncio.to_thread(self._drop_kafka_python)


def _assignment_unsupported(error: AdminError) -> bool:
    return "INVALID_REPLICA_ASSIGNMENT" in str(error)


def _confluent() -> Any:
    """confluent_kafka.admin, imported late (heavy) and untyped (its stubs export little)."""
    return importlib.import_module("confluent_kafka.admin")


# Kafka ConfigSource numbers: 1 = set on the topic; 0 = unknown (brokers answering
# DescribeConfigs v0 report no source, and then non-default entries are the topic's own).
_TOPIC_SET_SOURCES = {0, 1}


def _source_number(source: Any) -> int:
    return int(getattr(source, "value", source) or 0)


class AdminPool:
    """One ``ClusterAdmin`` per bootstrap address, kept across reconciles until ``close``."""

    def __init__(self, connect: Callable[[str], ClusterAdmin] = KafkaClusterAdmin) -> None:
        self._connect = connect
        self._admins: dict[str, ClusterAdmin] = {}

    def get(self, bootstrap: str) -> ClusterAdmin:
        if bootstrap not in self._admins:
            self._admins[bootstrap] = self._connect(bootstrap)
        return self._admins[bootstrap]

    async def close(self) -> None:
        admins = list(self._admins.values())
        self._admins.clear()
        for admin in admins:
            await admin.close()
