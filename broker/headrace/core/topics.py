"""Topic management with Kafka's rules: name validation, creation, deletion, partitions, configs.

Pure checks (``validate_topic_name``) are separate from :class:`TopicManager`, which applies them
to the storage ``LogManager`` and translates storage errors (and any other I/O error) into
:class:`KafkaError` codes. Internal topics (``__consumer_offsets`` and the like) are flagged so
Metadata can mark them.

Partition limits are checked before anything is made, so a request for a million partitions is
refused at once: ``max.broker.partitions`` (the name KIP-578 proposes for Kafka; Kafka itself has
no such limit) bounds the partitions one broker holds, and ``max.topic.partitions`` (Headrace's
own: neither Kafka nor Redpanda bounds one topic) the partitions of one topic. A batch of
creations (:meth:`TopicManager.create_many`) makes its directories and writes its metadata on a
worker thread, with one fsync for the whole batch (:mod:`headrace.core.topic_batches`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError
from headrace.core.gc_pauses import LONG_LIVED
from headrace.storage import (
    InvalidConfigError,
    LogConfig,
    LogManagerAPI,
    NewPartitions,
    StorageError,
    TopicMetadata,
)

log = logging.getLogger(__name__)

MAX_TOPIC_NAME_LENGTH = 249
#: Kafka's proposed ``max.broker.partitions`` (KIP-578): partitions one broker may hold.
DEFAULT_MAX_BROKER_PARTITIONS = 100_000
#: ``max.topic.partitions``: partitions one topic may have (Headrace's own limit).
DEFAULT_MAX_TOPIC_PARTITIONS = 10_000
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


@contextlib.contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Turn storage and I/O errors of a topic change into the KafkaError a client gets."""
    try:
        yield
    except StorageError as error:
        raise kafka_error_from_storage(error) from error
    except OSError as error:
        log.warning("%s failed: %s", doing, error)
        raise KafkaError(ErrorCode.kafka_storage_error, f"{doing} failed: {error}") from error


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
        max_broker_partitions: int = DEFAULT_MAX_BROKER_PARTITIONS,
        max_topic_partitions: int = DEFAULT_MAX_TOPIC_PARTITIONS,
    ) -> None:
        self._logs = logs
        self.default_partitions = default_partitions
        self.default_replication_factor = default_replication_factor
        self.max_broker_partitions = max_broker_partitions
        self.max_topic_partitions = max_topic_partitions
        #: Names of the batches create_many is making, each with its batch's end.
        self._in_flight: dict[str, asyncio.Future[None]] = {}
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

    def check_spec(self, spec: TopicSpec, *, planned: int = 0) -> tuple[int, dict[str, str]]:
        """Validate a creation request; returns (partitions, configs) or raises KafkaError.

        ``planned``: partitions earlier entries of the same batch will add to this broker."""
        validate_topic_name(spec.name)
        if self.get(spec.name) is not None:
            raise KafkaError(ErrorCode.topic_already_exists, f"topic {spec.name!r} already exists")
        if self._logs.creating(spec.name):
            raise KafkaError(
                ErrorCode.topic_already_exists, f"topic {spec.name!r} is being created")
        partitions = self.default_partitions if spec.partitions == -1 else spec.partitions
        if partitions <= 0:
            raise KafkaError(
                ErrorCode.invalid_partitions, f"number of partitions must be >= 1: {partitions}"
            )
        self.check_partition_limits(partitions, partitions, planned=planned)
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

    def check_partition_limits(self, total: int, added: int, *, planned: int = 0) -> None:
        """Refuse a topic of ``total`` partitions, ``added`` of them new on this broker, when
        it passes ``max.topic.partitions`` or this broker's ``max.broker.partitions``."""
        if total > self.max_topic_partitions:
            raise KafkaError(
                ErrorCode.invalid_partitions,
                f"{total} partitions is more than max.topic.partitions "
                f"({self.max_topic_partitions})",
            )
        held = self._logs.partition_count() + planned
        if held + added > self.max_broker_partitions:
            raise KafkaError(
                ErrorCode.policy_violation,
                f"{added} more partitions would make {held + added} on this broker, more than "
                f"max.broker.partitions ({self.max_broker_partitions})",
            )

    def create(self, spec: TopicSpec, *, validate_only: bool = False) -> TopicMetadata:
        partitions, configs = self.check_spec(spec)
        if validate_only:
            return TopicMetadata(spec.name, _NIL_UUID, partitions, configs)
        with storage_errors(f"creating topic {spec.name!r}"):
            created = self._logs.create_topic(spec.name, partitions, configs)
        self._on_change(spec.name)
        return created

    async def create_many(
        self, specs: Sequence[TopicSpec], *, validate_only: bool = False
    ) -> list[TopicMetadata | KafkaError]:
        """Create a batch of topics (CreateTopics, auto-creation): each entry checked on its
        own, the valid ones made together off the event loop with one metadata fsync; one
        result per spec, in order. A storage failure fails the whole batch (nothing made)."""

        results: list[TopicMetadata | KafkaError] = []
        batch: list[NewPartitions] = []
        names: set[str] = set()
        planned = 0
        for spec in specs:
            try:
                if spec.name in names:  # the first entry creates it
                    raise KafkaError(ErrorCode.topic_already_exists,
                                     f"topic {spec.name!r} already exists")
                partitions, configs = self.check_spec(spec, planned=planned)
            except KafkaError as error:
                results.append(error)
                continue
            names.add(spec.name)
            planned += partitions
            meta = TopicMetadata(
                spec.name, _NIL_UUID if validate_only else uuid.uuid4(), partitions, configs)
            results.append(meta)
            if not validate_only:
                batch.append(NewPartitions(meta))
        if not batch:
            return results
        failure = await self._make_logs(batch)
        made = {entry.meta.name for entry in batch}
        for index, result in enumerate(results):
            if isinstance(result, TopicMetadata) and result.name in made:
                if failure is not None:
                    results[index] = failure
                else:
                    self._on_change(result.name)
        return results

    async def _make_logs(self, batch: Sequence[NewPartitions]) -> KafkaError | None:
        """Make ``batch``'s local logs together off the event loop, its names in flight
        meanwhile (:meth:`creations_done`); the error every topic of the batch answers with
        if that fails, else None."""
        from headrace.core.topic_batches import run_creation

        finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for entry in batch:
            self._in_flight[entry.meta.name] = finished
        try:
            with storage_errors(f"creating {len(batch)} topics"):
                await run_creation(self._logs.begin_creation(batch))
        except KafkaError as error:
            return error
        except Exception as error:  # a bug must not take the connection down with it
            log.exception("creating %d topics failed", len(batch))
            return KafkaError(ErrorCode.unknown_server_error, f"creating topics: {error!r}")
        finally:
            finished.set_result(None)
            for entry in batch:
                if self._in_flight.get(entry.meta.name) is finished:
                    del self._in_flight[entry.meta.name]
        return None

    async def creations_done(self, names: Sequence[str]) -> None:
        """Wait until the batches of :meth:`create_many` making any of ``names`` have ended."""
        pending = {self._in_flight[n] for n in names if n in self._in_flight}
        if pending:
            await asyncio.wait(pending)

    def delete(self, name: str) -> None:
        self.require(name)
        with storage_errors(f"deleting topic {name!r}"):
            self._logs.delete_topic(name)
        LONG_LIVED.thaw()  # its objects may form cycles the frozen generation would keep
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
        self.check_partition_limits(total, total - topic.partitions)
        if validate_only:
            return TopicMetadata(name, topic.topic_id, total, topic.configs)
        with storage_errors(f"adding partitions to topic {name!r}"):
            updated = self._logs.add_partitions(name, total)
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
        with storage_errors(f"changing the configs of topic {name!r}"):
            self._logs.alter_topic_configs(name, configs)
        self._on_change(name)

