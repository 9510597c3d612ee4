"""The cluster metadata records kept in etcd, their JSON encoding and the key layout.

Pure data: no etcd client here, so the controller's decisions can be computed and tested on
plain values. Every record is a small JSON object under one root prefix (default ``/headrace``):

=====================================  ===========================================================
``<root>/brokers/ids/<id>``            :class:`BrokerRegistration`, attached to the broker's lease
``<root>/brokers/seen/<id>``           :class:`SeenBroker`: the incarnation the controller last
                                       accounted for (detects restarts and wiped disks)
``<root>/cluster_id``                  the cluster id every broker reports (set by the first)
``<root>/producer_id_block``           the first producer id not yet handed to any broker
``<root>/controller``                  :class:`ControllerRecord`, attached to the controller's lease
``<root>/controller_epoch``            the last controller epoch handed out (monotonic)
``<root>/topics/<name>``               :class:`TopicRecord` (id, assignment, configs)
``<root>/partitions/<name>/<p>``       :class:`PartitionState` (leader, epochs, ISR)
=====================================  ===========================================================
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

NO_LEADER = -1
DEFAULT_ROOT = "/headrace"


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """A live broker, as it announces itself.

    ``broker_epoch`` is the etcd revision at which the registration was created (assigned by the
    store, 0 until then): a restarted broker always gets a larger one. ``log_dir_id`` is stored
    in the broker's data directory, so a wiped disk shows up as a new id. ``shutting_down`` is
    set on controlled shutdown so the controller moves leadership away first. ``host``/``port``
    are the inter-broker listener's; ``endpoints`` every listener's, by name (empty from a
    broker that registered before listeners had names: host/port is its only one).
    """

    broker_id: int
    host: str
    port: int
    rack: str | None
    log_dir_id: str
    incarnation: str
    http_port: int | None = None
    broker_epoch: int = 0
    shutting_down: bool = False
    endpoints: dict[str, tuple[str, int]] = field(default_factory=dict)

    def endpoint(self, listener: str | None) -> tuple[str, int] | None:
        """The (host, port) on ``listener`` (None: the inter-broker one); None if it has none."""
        if listener is None or not self.endpoints:
            return self.host, self.port
        return self.endpoints.get(listener)

    def to_json(self) -> bytes:
        data = {
            "broker_id": self.broker_id,
            "host": self.host,
            "port": self.port,
            "rack": self.rack,
            "log_dir_id": self.log_dir_id,
            "incarnation": self.incarnation,
            "http_port": self.http_port,
            "shutting_down": self.shutting_down,
            "endpoints": {name: [host, port] for name, (host, port) in self.endpoints.items()},
        }
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, broker_epoch: int) -> BrokerRegistration:
        data = json.loads(raw)
        return cls(
            broker_id=int(data["broker_id"]),
            host=str(data["host"]),
            port=int(data["port"]),
            rack=data.get("rack"),
            log_dir_id=str(data["log_dir_id"]),
            incarnation=str(data["incarnation"]),
            http_port=data.get("http_port"),
            broker_epoch=broker_epoch,
            shutting_down=bool(data.get("shutting_down", False)),
            endpoints={str(name): (str(address[0]), int(address[1]))
                       for name, address in data.get("endpoints", {}).items()},
        )


@dataclass(frozen=True, slots=True)
class SeenBroker:
    """The incarnation of a broker that the partition states currently account for."""

    broker_epoch: int
    log_dir_id: str

    def to_json(self) -> bytes:
        data = {"broker_epoch": self.broker_epoch, "log_dir_id": self.log_dir_id}
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SeenBroker:
        data = json.loads(raw)
        return cls(broker_epoch=int(data["broker_epoch"]), log_dir_id=str(data["log_dir_id"]))


@dataclass(frozen=True, slots=True)
class ControllerRecord:
    broker_id: int
    epoch: int

    def to_json(self) -> bytes:
        return json.dumps({"broker_id": self.broker_id, "epoch": self.epoch}).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ControllerRecord:
        data = json.loads(raw)
        return cls(broker_id=int(data["broker_id"]), epoch=int(data["epoch"]))


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """A topic: its id, the replica assignment per partition (first = preferred leader), configs."""

    name: str
    topic_id: str
    assignment: Mapping[int, tuple[int, ...]]
    configs: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = {
            "name": self.name,
            "topic_id": self.topic_id,
            "assignment": {str(p): list(r) for p, r in sorted(self.assignment.items())},
            "configs": dict(sorted(self.configs.items())),
        }
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TopicRecord:
        data = json.loads(raw)
        return cls(
            name=str(data["name"]),
            topic_id=str(data["topic_id"]),
            assignment={int(p): tuple(int(b) for b in r) for p, r in data["assignment"].items()},
            configs={str(k): str(v) for k, v in data.get("configs", {}).items()},
        )

    @property
    def unclean_leader_election(self) -> bool:
        return self.configs.get("unclean.leader.election.enable", "false").lower() == "true"

    @property
    def min_insync_replicas(self) -> int:
        return int(self.configs.get("min.insync.replicas", "1"))


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Leadership and ISR of one partition (Kafka's LeaderAndIsr / PartitionRegistration).

    ``leader_broker_epoch`` is the broker epoch of the leader when it was elected: a leader that
    restarted (new broker epoch) must not resume leading until the controller re-elects it, since
    its log may have lost an unflushed tail. ``partition_epoch`` increases on every change and is
    what compare-and-swap updates are fenced on. ``adding``/``removing`` describe an ongoing
    reassignment (KIP-455): ``replicas`` is then the union of old and new.
    """

    topic: str
    partition: int
    replicas: tuple[int, ...]
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    partition_epoch: int = 0
    leader_broker_epoch: int = -1
    adding: tuple[int, ...] = ()
    removing: tuple[int, ...] = ()

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "topic": self.topic,
            "partition": self.partition,
            "replicas": list(self.replicas),
            "leader": self.leader,
            "leader_epoch": self.leader_epoch,
            "isr": list(self.isr),
            "partition_epoch": self.partition_epoch,
            "leader_broker_epoch": self.leader_broker_epoch,
        }
        if self.adding or self.removing:
            data["adding"] = list(self.adding)
            data["removing"] = list(self.removing)
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> PartitionState:
        data = json.loads(raw)
        return cls(
            topic=str(data["topic"]),
            partition=int(data["partition"]),
            replicas=tuple(int(b) for b in data["replicas"]),
            leader=int(data["leader"]),
            leader_epoch=int(data["leader_epoch"]),
            isr=tuple(int(b) for b in data["isr"]),
            partition_epoch=int(data.get("partition_epoch", 0)),
            leader_broker_epoch=int(data.get("leader_broker_epoch", -1)),
            adding=tuple(int(b) for b in data.get("adding", ())),
            removing=tuple(int(b) for b in data.get("removing", ())),
        )

    def with_changes(self, **changes: Any) -> PartitionState:
        """A copy with ``changes`` applied and the partition epoch bumped."""
        return replace(self, partition_epoch=self.partition_epoch + 1, **changes)


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Everything a broker needs to answer Metadata, as last seen from etcd."""

    brokers: Mapping[int, BrokerRegistration]
    controller: ControllerRecord | None
    topics: Mapping[str, TopicRecord]
    partitions: Mapping[tuple[str, int], PartitionState]
    seen: Mapping[int, SeenBroker]
    revision: int = 0


def parse_metadata_url(url: str) -> list[tuple[str, int]]:
    """``etcd://HOST:PORT[,HOST:PORT]`` → endpoints, in the order to try them."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "etcd":
        raise ValueError(f"metadata URL must start with etcd://, got {url!r}")
    endpoints: list[tuple[str, int]] = []
    for item in parsed.netloc.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bad etcd endpoint {item!r} in {url!r} (want HOST:PORT)")
        endpoints.append((host.strip("[]"), int(port)))
    if not endpoints:
        raise ValueError(f"no etcd endpoint in {url!r}")
    return endpoints


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The etcd key layout under one root prefix."""

    root: str = DEFAULT_ROOT

    def _key(self, *parts: str) -> bytes:
        return "/".join((self.root.rstrip("/"), *parts)).encode()

    @property
    def prefix(self) -> bytes:
        return self.root.rstrip("/").encode() + b"/"

    def broker(self, broker_id: int) -> bytes:
        return self._key("brokers", "ids", str(broker_id))

    def seen(self, broker_id: int) -> bytes:
        return self._key("brokers", "seen", str(broker_id))

    @property
    def cluster_id(self) -> bytes:
        return self._key("cluster_id")

    @property
    def producer_id_block(self) -> bytes:
        return self._key("producer_id_block")

    @property
    def controller(self) -> bytes:
        return self._key("controller")

    @property
    def controller_epoch(self) -> bytes:
        return self._key("controller_epoch")

    def topic(self, name: str) -> bytes:
        return self._key("topics", name)

    def partition(self, topic: str, partition: int) -> bytes:
        return self._key("partitions", topic, str(partition))

    def partitions_of(self, topic: str) -> bytes:
        return self._key("partitions", topic) + b"/"

    def classify(self, key: bytes) -> tuple[str, tuple[str, ...]]:
        """``(kind, parts)`` of a key under the root, e.g. ``("partition", ("t", "0"))``."""
        rest = key[len(self.prefix):].decode().split("/")
        match rest:
            case ["brokers", "ids", broker_id]:
                return "broker", (broker_id,)
            case ["brokers", "seen", broker_id]:
                return "seen", (broker_id,)
            case ["controller"]:
                return "controller", ()
            case ["controller_epoch"]:
                return "controller_epoch", ()
            case ["topics", name]:
                return "topic", (name,)
            case ["partitions", name, partition]:
                return "partition", (name, partition)
        return "unknown", tuple(rest)
