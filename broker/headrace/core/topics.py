"""Topic management with Kafka's rules: name validation, creation, deletion, partitions, configs.

Pure checks (``validate_topic_name``) are separate from :class:`TopicManager`, which applies them
to the storage ``LogManager`` and translates storage errors into :class:`KafkaError` codes.
Internal topics (``__consumer_offsets`` and the like) are flagged so Metadata can mark them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.storage import (
    InvalidConfigError,
    LogConfig,
    LogManagerAPI,
    StorageError,
    TopicMetadata,
)

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
_NIL_UUID = uuid.UUID(int=0)
def topic_name_problem(name: str | None) -> str | None:
    """Why Kafka would reject ``name`` as a topic name, or None if it is legal."""
    if not name:
        return "topic name is empty"
    if name in (".", ".."):
        return f"topic name cannot be {name!r}"
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        return f"topic name is longer than {MAX_TOPIC_NAME_LENGTH} characters"
    if not _LEGAL_NAME.fullmatch(name):
        return f"topic name {name!r} has characters outside [a-zA-Z0-9._-]"
    return None


def validate_topic_name(name: str | None) -> str:
    problem = topic_name_problem(name)
    if problem is not None:
        raise KafkaError(ErrorCode.invalid_topic_exception, problem)
    assert name is not None
    return name


def kafka_error_from_storage(error: StorageError) -> KafkaError:
    """Map a typed storage error to the Kafka error code it names."""
    try:
        code = ErrorCode(error.kafka_error_code)
    except ValueError:
        code = ErrorCode.kafka_storage_error
    return KafkaError(code, str(error) or code.name, tuple(getattr(error, "record_errors", ())))


#: A change of a topic's config overrides: the new overrides from the current ones.
ConfigChange = Callable[[Mapping[str, str]], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A request to create one topic, as CreateTopics or the HTTP API express it."""

    name: str
    partitions: int = -1  # -1: broker default
    replication_factor: int = -1  # -1: broker default
    configs: Mapping[str, str] | None = None


class TopicManager:
    """Creates, deletes and alters topics on the local ``LogManager`` with Kafka's checks.

    ``live_brokers`` tells how many brokers could hold replicas (replication factor check);
    ``on_change`` is called after every successful change (metadata caches, waiters).
    """

    def __init__(
        self,
        logs: LogManagerAPI,
        *,
        default_partitions: int,
        default_replication_factor: int = 1,
        live_brokers: Callable[[], int] = lambda: 1,
        on_change: Callable[[str], None] = lambda name: None,
    ) -> None:
        self._logs = logs
        self.default_partitions = default_partitions
        self.default_replication_factor = default_replication_factor
        self._live_brokers = live_brokers
        self._on_change = on_change

    def topics(self) -> Mapping[str, TopicMetadata]:
        return self._logs.topics()

    def get(self, name: str) -> TopicMetadata | None:
        return self._logs.topic(name)

    def require(self, name: str) -> TopicMetadata:
        topic = self.get(name)
        if topic is None:
            raise KafkaError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        return topic

    def check_spec(self, spec: TopicSpec) -> tuple[int, dict[str, str]]:
        """Validate a creation request; returns (partitions, configs) or raises KafkaError."""
        validate_topic_name(spec.name)
        if self.get(spec.name) is not None:
            raise KafkaError(ErrorCode.topic_already_exists, f"topic {spec.name!r} already exists")
        partitions = self.default_partitions if spec.partitions == -1 else spec.partitions
        if partitions <= 0:
            raise KafkaError(
                ErrorCode.invalid_partitions, f"number of partitions must be >= 1: {partitions}"
            )
        replication = (
            self.default_replication_factor
            if spec.replication_factor == -1
            else spec.replication_factor
        )
        if replication <= 0:
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"replication factor must be >= 1: {replication}",
            )
        live = self._live_brokers()
        if replication > live:
            raise KafkaError(
                ErrorCode.invalid_replication_factor,
                f"replication factor {replication} is larger than the {live} available brokers",
            )
        configs = dict(spec.configs or {})
        try:
            LogConfig.from_kafka_configs(configs, self._logs.default_config)
        except InvalidConfigError as error:
            raise KafkaError(ErrorCode.invalid_config, str(error)) from error
        return partitions, configs

    def create(self, spec: TopicSpec, *, validate_only: bool = False) -> TopicMetadata:
        partitions, configs = self.check_spec(spec)
        if validate_only:
            return TopicMetadata(spec.name, _NIL_UUID, partitions, configs)
        try:
            created = self._logs.create_topic(spec.name, partitions, configs)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error
        self._on_change(spec.name)
        return created

    def delete(self, name: str) -> None:
        self.require(name)
        try:
            self._logs.delete_topic(name)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error
        self._on_change(name)

    def add_partitions(
        self, name: str, total: int, *, validate_only: bool = False
    ) -> TopicMetadata:
        topic = self.require(name)
        if total <= topic.partitions:
            raise KafkaError(
                ErrorCode.invalid_partitions,
                f"topic {name!r} has {topic.partitions} partitions; cannot change to {total}",
            )
        if validate_only:
            return TopicMetadata(name, topic.topic_id, total, topic.configs)
        try:
            updated = self._logs.add_partitions(name, total)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error
        self._on_change(name)
        return updated

    def config(self, name: str) -> LogConfig:
        self.require(name)
        return self._logs.topic_config(name)

    def check_configs(self, name: str, configs: Mapping[str, str]) -> None:
        self.require(name)
        try:
            LogConfig.from_kafka_configs(configs, self._logs.default_config)
        except InvalidConfigError as error:
            raise KafkaError(ErrorCode.invalid_config, str(error)) from error

    async def committed(self, name: str) -> None:
        """Return once the change just made to topic ``name`` (creation, deletion, partitions,
        configs) is stored where the cluster keeps it, or raise the KafkaError that kept it
        out. A lone broker's is stored by the time the change returns; a clustered broker
        writes it to etcd in the background."""

    def update_configs(
        self, name: str, change: ConfigChange, *, validate_only: bool = False
    ) -> None:
        """Replace the topic's overrides with ``change(current overrides)``
        (IncrementalAlterConfigs: a clustered manager applies it to the newest overrides)."""
        self.set_configs(name, change(self.require(name).configs), validate_only=validate_only)

    def set_configs(
        self, name: str, configs: Mapping[str, str], *, validate_only: bool = False
    ) -> None:
        """Replace the topic's overrides with ``configs`` (AlterConfigs semantics)."""
        self.check_configs(name, configs)
        if validate_only:
            return
        try:
            self._logs.alter_topic_configs(name, configs)
        except StorageError as error:
            raise kafka_error_from_storage(error) from error
        self._on_change(name)

