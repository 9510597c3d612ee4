"""How :mod:`tests.peers.node_agent` turns a pod's first container into a local process: the
kubelet's ``$(VAR)`` expansion and downward-API fields, the images' entrypoints, the container's
addresses and mount paths as they are on this host, and the process with its readiness probe."""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
#: Entrypoints of the images the project builds (their Dockerfiles' ENTRYPOINT), by image name.
IMAGE_ENTRYPOINTS: dict[str, list[str]] = {
    "headrace-operator": ["python", "-m", "headrace_operator"],
    "headrace": ["headrace", "broker"],
}
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known variables are replaced, others left as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def image_name(image: str) -> str:
    """``ghcr.io/headrace/headrace-operator:0.1.0`` -> ``headrace-operator``."""
    last = image.rsplit("/", 1)[-1]
    return last.split("@", 1)[0].split(":", 1)[0]


def field_value(pod: Obj, path: str, pod_ip: str) -> str:
    """A downward-API ``fieldRef`` of the forms the kubelet supports."""
    meta = pod["metadata"]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    values = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod_ip, "status.hostIP": "127.0.0.1",
    }
    if path not in values:
        raise ValueError(f"fieldRef {path} is not supported by the node agent")
    return str(values[path])


@dataclass
class RunningPod:
    """One pod's process and what the agent last reported about it."""

    namespace: str
    name: str
    uid: str
    node: str
    ip: str
    directory: Path
    command: list[str]
    env: dict[str, str]
    probe: tuple[str, int] | None  # (path, port) of an httpGet readinessProbe
    failure_threshold: int
    grace: float
    image: str
    container: str
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    ready: bool = False
    failures: int = 0
    started_at: str = ""
    reported: str = ""
    terminating: bool = False
    term_deadline: float = 0.0
    last_probe: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def start(self) -> None:
        log = (self.directory / f"{self.container}.log").open("ab")
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.directory,
                                        stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.started_at = timestamp()
        self.ready = False
        self.failures = 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def reap(self) -> None:
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)

    def probe_ready(self) -> bool:
        """One HTTP GET of the readinessProbe to the pod's address."""
        assert self.probe is not None
        path, port = self.probe
        try:
            with urllib.request.urlopen(f"http://{self.ip}:{port}{path}", timeout=1.0) as answer:
                return bool(200 <= answer.status < 400)
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, limit: int = 3000) -> str:
        path = self.directory / f"{self.container}.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""


def localise(text: str, pod: Obj, ip: str, mounts: Mapping[str, Path]) -> str:
        """Addresses and paths of the container's world, as they are on this host."""
        meta, spec = pod["metadata"], pod["spec"]
        text = text.replace("0.0.0.0:", f"{ip}:")
        if spec.get("subdomain"):
            own = re.escape(f"{spec.get('hostname') or meta['name']}.{spec['subdomain']}."
                            f"{meta['namespace']}.svc")
            text = re.sub(own + r"(\.cluster\.local)?", ip, text)
        for mount_path in sorted(mounts, key=len, reverse=True):
            # A replacement string would read backslashes in the host path as escapes.
            host = str(mounts[mount_path]).replace("\\", "\\\\")
            text = re.sub(rf"(^|[=\s:]){re.escape(mount_path)}(?=/|$|\s)", rf"\g<1>{host}",
                          text)
        return text
