"""Small helpers the e2e suite uses to drive a real cluster: kubectl, helm, polling, Kafka access.

Brokers advertise their in-cluster DNS names, which a client outside the cluster cannot resolve
or reach. ``KafkaTunnel`` makes them reachable from the test runner the way a person debugging
would: one ``kubectl port-forward`` per broker pod, each on its own loopback address
(127.0.0.2, 127.0.0.3, ...), and an ``/etc/hosts`` line mapping the advertised name to that
address. A supervisor thread follows pods as they are deleted, recreated, added or removed.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.clients import confluent_admin
from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
HOSTS_FILE = Path("/etc/hosts")
HOSTS_MARKER = "# headrace-e2e"
BROKER_SELECTOR = "app.kubernetes.io/component=broker"

def run(*args: str, timeout: float = 120, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def kubectl(*args: str, timeout: float = 120, stdin: str | None = None) -> str:
    return run("kubectl", *args, timeout=timeout, stdin=stdin).stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def helm(*args: str, timeout: float = 600) -> str:
    return run("helm", *args, timeout=timeout).stdout


def apply(manifest: dict[str, Any], namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))


#: What a probe of a cluster mid-change raises: a failed kubectl, a half-written answer.
TRANSIENT = (AssertionError, subprocess.SubprocessError, json.JSONDecodeError)


def condition(resource: dict[str, Any], kind: str) -> str | None:
    for entry in resource.get("status", {}).get("conditions", []):
        if entry["type"] == kind:
            return str(entry["status"])
    return None


def broker_pods(namespace: str, cluster: str) -> list[dict[str, Any]]:
    pods = kubectl_json("get", "pods", "-n", namespace, "-l",
                        f"{BROKER_SELECTOR},app.kubernetes.io/instance={cluster}")
    return list(pods["items"])


def pod_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def _free_port(address: str) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, 9092))
        except OSError:
            return False
    return True


@dataclass
class _Forward:
    pod: str
    uid: str
    address: str
    process: subprocess.Popen[bytes]


@dataclass
class KafkaTunnel:
    """Make every broker of ``cluster`` reachable under its advertised name from this machine."""

    namespace: str
    cluster: str
    kafka_port: int = 9092
    _forwards: dict[str, _Forward] = field(default_factory=dict)
    _addresses: dict[str, str] = field(default_factory=dict)  # pod name -> loopback address
    _hosts: dict[str, str] = field(default_factory=dict)  # advertised host -> address
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _written: dict[str, str] | None = None  # what /etc/hosts holds for us now

    def __enter__(self) -> KafkaTunnel:
        self.refresh()
        self._thread = threading.Thread(target=self._supervise, name="kafka-tunnel", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        with self._lock:
            for forward in self._forwards.values():
                forward.process.terminate()
            for forward in self._forwards.values():
                forward.process.wait(timeout=10)
            self._forwards.clear()
        self._write_hosts({})

    @property
    def bootstrap_servers(self) -> str:
        with self._lock:
            hosts = sorted(self._hosts)
        assert hosts, "no broker is reachable yet"
        return ",".join(f"{host}:{self.kafka_port}" for host in hosts)

    def _address_for(self, pod: str) -> str:
        if pod not in self._addresses:
            used = set(self._addresses.values())
            for last in range(2, 250):
                candidate = f"127.0.0.{last}"
                if candidate not in used and _free_port(candidate):
                    self._addresses[pod] = candidate
                    break
            else:
                raise AssertionError("no free loopback address for a port-forward")
        return self._addresses[pod]

    def _learn_advertised_hosts(self, pods: dict[str, dict[str, Any]]) -> dict[str, str]:
        """Ask the brokers (by loopback address, which needs no name) what they advertise."""
        advertised: dict[str, str] = {}
        for forward in self._forwards.values():
            admin = confluent_admin(f"{forward.address}:{self.kafka_port}",
                                    {"socket.timeout.ms": 5000})
            try:
                metadata = admin.list_topics(timeout=10)
            except Exception:  # a broker mid-restart: try the next one
                continue
            for broker in metadata.brokers.values():
                for name, pod in pods.items():
                    hostnames = {name, pod["spec"].get("hostname", name)}
                    if (broker.host == pod.get("status", {}).get("podIP")
                            or broker.host.split(".")[0] in hostnames):
                        address = self._addresses.get(name)
                        if address:
                            advertised[broker.host] = address
            break
        return advertised

    def refresh(self) -> None:
        """Start forwards for new or recreated ready pods, stop those for vanished pods."""
        pods = {pod["metadata"]["name"]: pod for pod in broker_pods(self.namespace, self.cluster)}
        with self._lock:
            for name in list(self._forwards):
                forward = self._forwards[name]
                pod = pods.get(name)
                stale = (pod is None or pod["metadata"]["uid"] != forward.uid
                         or not pod_ready(pod) or forward.process.poll() is not None)
                if stale:
                    forward.process.terminate()
                    forward.process.wait(timeout=10)
                    del self._forwards[name]
            for name, pod in pods.items():
                if name in self._forwards or not pod_ready(pod):
                    continue
                address = self._address_for(name)
                process = subprocess.Popen(
                    ["kubectl", "port-forward", "-n", self.namespace, "--address", address,
                     f"pod/{name}", f"{self.kafka_port}:{self.kafka_port}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self._forwards[name] = _Forward(name, pod["metadata"]["uid"], address, process)
                eventually(functools.partial(_listening, address, self.kafka_port), timeout=30,
                           interval=0.2, message=f"port-forward to {name}", retry_on=TRANSIENT)
            self._hosts.update(self._learn_advertised_hosts(pods))
            live = {forward.address for forward in self._forwards.values()}
            self._hosts = {host: address for host, address in self._hosts.items()
                           if address in live}
            hosts = dict(self._hosts)
        self._write_hosts(hosts)

    def _supervise(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.refresh()
            except (AssertionError, subprocess.SubprocessError, json.JSONDecodeError):
                continue  # the API server may be briefly busy; try again next round

    def _write_hosts(self, hosts: dict[str, str]) -> None:
        if hosts == self._written:
            return
        self._written = dict(hosts)
        kept = [line for line in HOSTS_FILE.read_text().splitlines()
                if not line.endswith(HOSTS_MARKER)]
        added = [f"{address} {host} {HOSTS_MARKER}" for host, address in sorted(hosts.items())]
        content = "\n".join([*kept, *added]) + "\n"
        if os.access(HOSTS_FILE, os.W_OK):
            HOSTS_FILE.write_text(content)
        else:
            sudo = shutil.which("sudo")
            assert sudo, "the e2e suite must be able to edit /etc/hosts (root or sudo)"
            run(sudo, "-n", "tee", str(HOSTS_FILE), stdin=content)
