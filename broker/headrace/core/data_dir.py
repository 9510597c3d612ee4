"""A data directory belongs to one broker: an exclusive lock and Kafka's ``meta.properties``.

Two brokers appending to the same segment files lose acknowledged records; a data directory
started under another broker id, or joined to another cluster, would serve replicas that are not
its own. So, as Kafka's ``LogManager`` and ``MetaProperties`` do, a broker holds an exclusive
``flock`` on ``<data dir>/.lock`` for its whole life (with its pid in the file, for the error the
next one prints) and keeps ``meta.properties`` (``version``, ``cluster.id``, ``node.id``), written
at first start and checked at every start. A mismatch or a held lock is a :class:`UserError`
naming the directory and both ids, or the other process.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import javaproperties

from headrace.core.errors import UserError

LOCK_FILE = ".lock"
META_FILE = "meta.properties"
#: Where brokers before meta.properties kept the cluster id; adopted once, then removed.
LEGACY_CLUSTER_ID_FILE = "cluster-id"


@dataclass(frozen=True, slots=True)
class MetaProperties:
    """Kafka's meta.properties: version 1 (KRaft) names ``node.id``, version 0 ``broker.id``."""

    cluster_id: str
    node_id: int
    version: int = 1

    def to_properties(self) -> dict[str, str]:
        return {"version": str(self.version), "cluster.id": self.cluster_id,
                "node.id": str(self.node_id)}


def new_cluster_id() -> str:
    """A random id in Kafka's form: a UUID as 22 characters of URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class DataDir:
    """The broker's claim on its data directory; :meth:`claim` it, :meth:`release` on stop."""

    def __init__(self, path: Path, lock_fd: int, node_id: int,
                 meta: MetaProperties | None) -> None:
        self.path = path
        self.node_id = node_id
        self._lock_fd: int | None = lock_fd
        #: None until the first start has written it (a cluster member learns its id from etcd).
        self.meta = meta

    @classmethod
    def claim(cls, path: Path, node_id: int) -> DataDir:
        """Create ``path`` if needed, lock it and check it belongs to broker ``node_id``."""
        _make_directory(path)
        lock_fd = _lock(path)
        try:
            meta = read_meta(path)
            if meta is not None and meta.node_id != node_id:
                raise UserError(
                    f"data dir {path} belongs to broker {meta.node_id} (node.id in "
                    f"{path / META_FILE}), not to --broker-id {node_id}")
            return cls(path, lock_fd, node_id, meta)
        except BaseException:
            os.close(lock_fd)
            raise

    def cluster_id_candidate(self) -> str:
        """The cluster id this directory knows, or a new one (the legacy file's, if any)."""
        if self.meta is not None:
            return self.meta.cluster_id
        with contextlib.suppress(FileNotFoundError):
            legacy = (self.path / LEGACY_CLUSTER_ID_FILE).read_text().strip()
            if legacy:
                return legacy
        return new_cluster_id()

    def adopt_cluster_id(self, cluster_id: str, source: str = "") -> None:
        """Check ``cluster_id`` (the cluster's, from ``source``) is this directory's; write
        meta.properties at first start. A different stored id is a UserError."""
        if self.meta is not None:
            if self.meta.cluster_id != cluster_id:
                where = f" {source}" if source else ""
                raise UserError(
                    f"data dir {self.path} belongs to cluster {self.meta.cluster_id} "
                    f"(cluster.id in {self.path / META_FILE}), but the cluster{where} is "
                    f"{cluster_id}")
            return
        meta = MetaProperties(cluster_id, self.node_id)
        try:
            write_meta(self.path, meta)
        except OSError as error:
            raise UserError(f"cannot write {self.path / META_FILE}: {error.strerror}") from None
        self.meta = meta
        (self.path / LEGACY_CLUSTER_ID_FILE).unlink(missing_ok=True)

    def release(self) -> None:
        """Give the directory up (the kernel also does when the process dies)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _make_directory(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UserError(f"data dir {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create data dir {path}: {error.strerror}") from None


def _lock(path: Path) -> int:
    """An fd holding the exclusive lock on ``path/.lock``, with this pid written in it."""
    lock_path = path / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise UserError(f"cannot write to data dir {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(
            f"data dir {path} is in use by another broker (pid {holder}, holding "
            f"{lock_path})") from None
    except OSError as error:
        os.close(fd)
        raise UserError(f"cannot lock {lock_path}: {error.strerror}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as error:
        os.close(fd)
        raise UserError(f"cannot write to data dir {path}: {error.strerror}") from None
    return fd


def read_meta(path: Path) -> MetaProperties | None:
    """``path/meta.properties``, or None before the first start; a broken file is a UserError."""
    meta_path = path / META_FILE
    try:
        with open(meta_path, encoding="latin-1") as handle:
            properties = javaproperties.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {meta_path}: {error}") from None
    node_id = properties.get("node.id", properties.get("broker.id"))
    cluster_id = properties.get("cluster.id")
    version = properties.get("version", "0")
    if (node_id is None or not node_id.lstrip("-").isdigit() or not cluster_id
            or version not in ("0", "1")):
        raise UserError(
            f"{meta_path} is not a meta.properties this broker understands (it needs version "
            f"0 or 1, cluster.id and node.id or broker.id)")
    return MetaProperties(cluster_id, int(node_id), int(version))


def write_meta(path: Path, meta: MetaProperties) -> None:
    """Write meta.properties durably: a temporary file, fsync, rename, fsync the directory."""
    meta_path = path / META_FILE
    temporary = meta_path.with_name(META_FILE + ".tmp")
    with open(temporary, "w", encoding="latin-1") as handle:
        javaproperties.dump(meta.to_properties(), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, meta_path)
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
