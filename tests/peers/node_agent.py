"""A kubelet stand-in for :class:`tests.peers.kube.ControlPlane`: Nodes whose pods run as local
processes, so the operator, its StatefulSets and the brokers meet a real control plane.

:class:`NodeAgent` registers Nodes (zone label ``topology.kubernetes.io/zone``), keeps their
Leases and Ready conditions fresh, provisions a hostPath PersistentVolume pre-bound to every
pending claim, and runs the first container of every pod the scheduler binds to its nodes:

- **Addresses.** Every pod gets its own loopback address (``127.A.B.C``; Linux routes all of
  127/8 to ``lo``), reported as ``podIP``, so pods keep their container ports without clashing.
  The address of a pod name is fixed on first use and kept across restarts, the way a
  StatefulSet pod keeps its DNS name; :meth:`NodeAgent.pod_ip` tells a test (or a bootstrap
  annotation) where a pod will listen before it exists. There is no DNS and no Service proxy:
  in arguments, ``0.0.0.0`` becomes the pod's address and the pod's own name
  (``<hostname>.<subdomain>.<namespace>.svc[.cluster.local]``) becomes its address too.
- **Command.** ``command``/``args`` as the kubelet resolves them: the image's entrypoint when no
  command is given (:data:`IMAGE_ENTRYPOINTS`, by image name), ``$(VAR)`` expansion from the
  container's ``env`` (``value`` and ``fieldRef``; ``configMapKeyRef``). ``headrace`` and
  ``python`` resolve to this checkout's interpreter.
- **Volumes.** A PVC's PV directory, an ``emptyDir`` under the pod's directory, a ConfigMap's
  keys as files; a mount path in an argument or env value is replaced by the host directory.
  The service-account mount becomes a kubeconfig holding a token the TokenRequest API issued
  for the pod's ServiceAccount, named by ``HEADRACE_KUBECONFIG`` (the operator's setting for
  where its credentials are) and ``KUBECONFIG``; ``KUBERNETES_SERVICE_HOST``/``PORT`` name the
  real apiserver (its Service has no endpoints here).
- **Status.** ``Running`` with the container's state and restarts; ``Ready`` follows the
  readinessProbe (HTTP GET to the pod's address, probed every second; ``failureThreshold``
  failures make it not ready); a container with no probe is ready once started. A container
  that exits is restarted (``restartPolicy: Always``). Liveness and startup probes are not run.
- **Deletion.** A pod with a ``deletionTimestamp`` (deleted, evicted, drained) gets SIGTERM, is
  killed after its grace period, and is then removed with ``gracePeriodSeconds: 0``, as the
  kubelet confirms a deletion. A pod removed outright has its process killed.

The agent uses the admin's credentials (not the Node authorizer's) and one thread; every pod's
output goes to ``<directory>/pods/<namespace>_<name>/<container>.log``. The translation of a
container into a process is :mod:`tests.peers.pod_process`.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers.kube import ControlPlane, write_kubeconfig
from tests.peers.pod_process import (
    IMAGE_ENTRYPOINTS,
    RunningPod,
    expand,
    field_value,
    image_name,
    localise,
    micro_timestamp,
    timestamp,
)

ROOT = Path(__file__).resolve().parents[2]
ZONE_LABEL = "topology.kubernetes.io/zone"
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

Obj = dict[str, Any]


@dataclass
class NodeAgent:
    """Nodes ``<prefix>-<zone>-<i>`` (``per_zone`` per zone) whose pods run here; see the
    module docstring. ``start()`` registers them and starts the loop; ``stop()`` kills every
    pod process and deregisters nothing (the control plane goes away with the test)."""

    plane: ControlPlane
    directory: Path
    zones: Sequence[str] = ("zone-a", "zone-b", "zone-c")
    per_zone: int = 1
    prefix: str = "node"
    interval: float = 0.5
    pods: dict[tuple[str, str], RunningPod] = field(default_factory=dict, init=False)
    errors: list[str] = field(default_factory=list, init=False)
    _ips: dict[tuple[str, str], str] = field(default_factory=dict, init=False)
    _ip_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _net: int = field(default_factory=lambda: random.randrange(100, 250), init=False)

    @property
    def nodes(self) -> list[str]:
        return [f"{self.prefix}-{zone}-{i}" for zone in self.zones for i in range(self.per_zone)]

    def zone_of(self, node: str) -> str:
        return node[len(self.prefix) + 1:].rsplit("-", 1)[0]

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> NodeAgent:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._bin = self._write_shims()
        for node in self.nodes:
            self._register(node)
        self._thread = threading.Thread(target=self._loop, name="node-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        for pod in self.pods.values():
            pod.signal(signal.SIGKILL)
            pod.reap()
        self.pods.clear()

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def pod_ip(self, namespace: str, name: str) -> str:
        """The loopback address pod ``name`` has (or will have once it runs here)."""
        with self._ip_lock:
            if (namespace, name) not in self._ips:
                n = len(self._ips) + 2
                self._ips[(namespace, name)] = f"127.{self._net}.{n // 250}.{n % 250 + 1}"
            return self._ips[(namespace, name)]

    def kubeconfig_of(self, namespace: str, name: str) -> Path:
        """The kubeconfig the agent wrote for a running pod's ServiceAccount."""
        pod = self.pods[(namespace, name)]
        return Path(pod.env["HEADRACE_KUBECONFIG"])

    def logs(self) -> str:
        return "\n".join(f"--- pod {p.namespace}/{p.name} (restarts {p.restarts})\n"
                         f"{p.log_tail()}" for p in self.pods.values())

    # -- the API --------------------------------------------------------------------------------

    def _api(self, path: str, *, method: str = "GET", body: object = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        if content_type == "application/json":
            return self.plane.request(path, method=method, body=body)
        request = urllib.request.Request(
            self.plane.server + path, data=json.dumps(body).encode(), method=method,
            headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10,
                                        context=self.plane.ssl_context()) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def _patch(self, path: str, patch: Obj, kind: str = "strategic") -> None:
        status, body = self._api(path, method="PATCH", body=patch,
                                 content_type=f"application/{kind}-merge-patch+json")
        if status >= 400 and status != 404:
            self.errors.append(f"PATCH {path}: {status} {body}")

    # -- nodes ----------------------------------------------------------------------------------

    def _register(self, node: str) -> None:
        resources = {"cpu": "32", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node, "labels": {
                "kubernetes.io/hostname": node, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", ZONE_LABEL: self.zone_of(node)}},
            "status": {"capacity": resources, "allocatable": resources,
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": node}],
                       "conditions": [self._ready_condition()],
                       "nodeInfo": {"kubeletVersion": self.plane.binaries.version}},
        }
        status, answer = self._api("/api/v1/nodes", method="POST", body=body)
        if status not in (201, 409):
            raise RuntimeError(f"cannot register node {node}: {status} {answer}")
        self._renew(node)

    @staticmethod
    def _ready_condition() -> Obj:
        now = timestamp()
        return {"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "node agent is posting ready status", "lastHeartbeatTime": now,
                "lastTransitionTime": now}

    def _renew(self, node: str) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
        spec = {"holderIdentity": node, "leaseDurationSeconds": 40,
                "renewTime": micro_timestamp()}
        status, _ = self._api(path, method="PUT", body={
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": "kube-node-lease"}, "spec": spec})
        if status == 404:
            self._api("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                      method="POST", body={"apiVersion": "coordination.k8s.io/v1",
                                           "kind": "Lease", "metadata": {"name": node},
                                           "spec": spec})
        self._patch(f"/api/v1/nodes/{node}/status",
                    {"status": {"conditions": [self._ready_condition()]}})

    # -- the loop -------------------------------------------------------------------------------

    def _loop(self) -> None:
        last_renew = time.monotonic()
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_renew > 10:
                    for node in self.nodes:
                        self._renew(node)
                    last_renew = time.monotonic()
                self._provision()
                self._sync_pods()
            except Exception as error:
                self.errors.append(f"{type(error).__name__}: {error}")
            self._stop.wait(self.interval)

    def _provision(self) -> None:
        """A hostPath PV pre-bound to each pending claim (a provisioner of one storage class)."""
        status, claims = self._api("/api/v1/persistentvolumeclaims")
        if status != 200:
            return
        for claim in claims["items"]:
            meta, spec = claim["metadata"], claim["spec"]
            if spec.get("volumeName") or claim.get("status", {}).get("phase") == "Bound":
                continue
            name = f"pv-{meta['uid']}"
            path = self.directory / "volumes" / f"{meta['namespace']}_{meta['name']}"
            path.mkdir(parents=True, exist_ok=True)
            self._api("/api/v1/persistentvolumes", method="POST", body={
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": spec.get("storageClassName") or "",
                    "hostPath": {"path": str(path), "type": "Directory"},
                    "claimRef": {"namespace": meta["namespace"], "name": meta["name"],
                                 "uid": meta["uid"]},
                }})

    def _sync_pods(self) -> None:
        status, listed = self._api("/api/v1/pods")
        if status != 200:
            return
        mine = set(self.nodes)
        seen: set[tuple[str, str]] = set()
        for pod in listed["items"]:
            if pod["spec"].get("nodeName") not in mine:
                continue
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            running = self.pods.get(key)
            if running is not None and running.uid != pod["metadata"]["uid"]:
                self._finish(running, force=True)  # a new pod of the same name: the old is gone
                running = None
            seen.add(key)
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod, running)
            elif running is None:
                if pod.get("status", {}).get("phase") in (None, "Pending"):
                    self._launch(pod)
            else:
                self._tend(running)
        for key in [k for k in self.pods if k not in seen]:
            self._finish(self.pods[key], force=True)

    # -- one pod --------------------------------------------------------------------------------

    def _launch(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        namespace, name = meta["namespace"], meta["name"]
        ip = self.pod_ip(namespace, name)
        directory = self.directory / "pods" / f"{namespace}_{name}"
        directory.mkdir(parents=True, exist_ok=True)
        container = spec["containers"][0]
        try:
            mounts = self._mounts(pod, container, directory, ip)
            env = self._env(pod, container, ip, mounts)
            command = self._command(pod, container, env, ip, mounts)
        except (ValueError, KeyError, RuntimeError) as error:
            self.errors.append(f"pod {namespace}/{name}: {error}")
            self._patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", {"status": {
                "phase": "Pending", "conditions": [{
                    "type": "ContainersReady", "status": "False", "reason": "AgentError",
                    "message": str(error)}]}})
            return
        probe = None
        readiness = container.get("readinessProbe") or {}
        if "httpGet" in readiness:
            probe = (readiness["httpGet"].get("path", "/"),
                     self._port(container, readiness["httpGet"]["port"]))
        running = RunningPod(
            namespace, name, meta["uid"], spec["nodeName"], ip, directory, command, env, probe,
            int(readiness.get("failureThreshold", 3)),
            float(spec.get("terminationGracePeriodSeconds", 30)), container.get("image", ""),
            container["name"])
        (directory / "command").write_text(shlex.join(command) + "\n")
        running.start()
        self.pods[running.key] = running
        self._report(running)

    @staticmethod
    def _port(container: Obj, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise ValueError(f"no container port named {port}")

    def _mounts(self, pod: Obj, container: Obj, directory: Path, ip: str) -> dict[str, Path]:
        """mountPath -> host directory, with each volume's content written."""
        namespace = pod["metadata"]["namespace"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            target = directory / "volumes" / mount["name"]
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                target = self._claim_path(namespace, claim)
            elif "configMap" in volume:
                target.mkdir(parents=True, exist_ok=True)
                status, config = self._api(
                    f"/api/v1/namespaces/{namespace}/configmaps/{volume['configMap']['name']}")
                if status != 200:
                    raise RuntimeError(f"configmap {volume['configMap']['name']} not found")
                for key, value in (config.get("data") or {}).items():
                    (target / key).write_text(value)
            elif "projected" in volume and mount["mountPath"] == SERVICE_ACCOUNT_MOUNT:
                target.mkdir(parents=True, exist_ok=True)
                self._service_account(pod, target)
            else:  # emptyDir and anything else: a fresh directory
                target.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = target
        return mounts

    def _claim_path(self, namespace: str, claim: str) -> Path:
        status, body = self._api(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
        if status != 200 or not body["spec"].get("volumeName"):
            raise RuntimeError(f"claim {claim} is not bound")
        status, volume = self._api(f"/api/v1/persistentvolumes/{body['spec']['volumeName']}")
        if status != 200 or "hostPath" not in volume["spec"]:
            raise RuntimeError(f"volume of claim {claim} is not a hostPath volume")
        return Path(volume["spec"]["hostPath"]["path"])

    def _service_account(self, pod: Obj, target: Path) -> None:
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        status, answer = self._api(
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
            method="POST", body={
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": 3600, "boundObjectRef": {
                    "apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                    "uid": meta["uid"]}}})
        if status != 201:
            raise RuntimeError(f"no token for serviceaccount {account}: {status} {answer}")
        token = answer["status"]["token"]
        assert self.plane.pki is not None
        (target / "token").write_text(token)
        (target / "namespace").write_text(meta["namespace"])
        (target / "ca.crt").write_bytes(self.plane.pki.ca.cert.read_bytes())
        write_kubeconfig(target / "kubeconfig", self.plane.server, self.plane.pki.ca,
                         user=f"system:serviceaccount:{meta['namespace']}:{account}",
                         token=token, namespace=meta["namespace"])

    def _env(self, pod: Obj, container: Obj, ip: str, mounts: Mapping[str, Path]
             ) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {}
        for var in container.get("env") or []:
            source = var.get("valueFrom")
            if source is None:
                env[var["name"]] = expand(str(var.get("value", "")), env)
            elif "fieldRef" in source:
                env[var["name"]] = field_value(pod, source["fieldRef"]["fieldPath"], ip)
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                _, config = self._api(f"/api/v1/namespaces/{namespace}/configmaps/{ref['name']}")
                env[var["name"]] = str(((config or {}).get("data") or {}).get(ref["key"], ""))
            else:
                raise ValueError(f"env {var['name']}: unsupported valueFrom {sorted(source)}")
        env = {k: localise(v, pod, ip, mounts) for k, v in env.items()}
        port = self.plane.apiserver_port
        base = {
            "PATH": f"{self._bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "broker"), str(ROOT / "operator"),
                                           os.environ.get("PYTHONPATH", "")]),
            "HOME": str(self.directory / "pods" / f"{namespace}_{pod['metadata']['name']}"),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port),
            "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
        }
        if SERVICE_ACCOUNT_MOUNT in mounts:
            kubeconfig = str(mounts[SERVICE_ACCOUNT_MOUNT] / "kubeconfig")
            base["HEADRACE_KUBECONFIG"] = base["KUBECONFIG"] = kubeconfig
        return {**base, **env}

    def _command(self, pod: Obj, container: Obj, env: Mapping[str, str], ip: str,
                 mounts: Mapping[str, Path]) -> list[str]:
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        if not command:
            entrypoint = IMAGE_ENTRYPOINTS.get(image_name(container.get("image", "")))
            if entrypoint is None:
                raise ValueError(f"no entrypoint known for image {container.get('image')}")
            command = entrypoint
        return [localise(expand(part, env), pod, ip, mounts) for part in command + args]

    def _tend(self, pod: RunningPod) -> None:
        if pod.terminating:
            return
        if not pod.alive():
            pod.restarts += 1
            pod.reap()
            pod.start()
        elif time.monotonic() - pod.last_probe >= 1.0:
            pod.last_probe = time.monotonic()
            if pod.probe is None:
                pod.ready = True
            elif pod.probe_ready():
                pod.ready, pod.failures = True, 0
            else:
                pod.failures += 1
                if pod.failures >= pod.failure_threshold or not pod.ready:
                    pod.ready = False
        self._report(pod)

    def _report(self, pod: RunningPod) -> None:
        running = pod.alive()
        state: Obj = ({"running": {"startedAt": pod.started_at}} if running else
                      {"waiting": {"reason": "CrashLoopBackOff"}})
        ready = "True" if pod.ready and running else "False"
        now = timestamp()
        status = {
            "phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}], "startTime": pod.started_at,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "PodReadyToStartContainers", "status": "True",
                 "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
            ],
            "containerStatuses": [{
                "name": pod.container, "image": pod.image, "imageID": f"local://{pod.image}",
                "containerID": f"process://{pod.process.pid if pod.process else 0}",
                "ready": ready == "True", "started": running, "restartCount": pod.restarts,
                "state": state}],
        }
        summary = json.dumps([ready, running, pod.restarts, pod.ip])
        if summary == pod.reported:
            return
        self._patch(f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status",
                    {"status": status})
        pod.reported = summary

    def _terminate(self, pod: Obj, running: RunningPod | None) -> None:
        """A deleted pod: SIGTERM, the grace period, SIGKILL, then confirm the deletion."""
        if running is None:
            self._confirm_deletion(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                   pod["metadata"]["uid"])
            return
        if not running.terminating:
            running.terminating = True
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            running.term_deadline = time.monotonic() + float(
                running.grace if grace is None else grace)
            running.signal(signal.SIGTERM)
        if running.alive() and time.monotonic() < running.term_deadline:
            return
        self._finish(running, force=False)

    def _finish(self, running: RunningPod, *, force: bool) -> None:
        running.signal(signal.SIGKILL)
        running.reap()
        self.pods.pop(running.key, None)
        if not force:
            self._confirm_deletion(running.namespace, running.name, running.uid)

    def _confirm_deletion(self, namespace: str, name: str, uid: str) -> None:
        self._api(f"/api/v1/namespaces/{namespace}/pods/{name}", method="DELETE", body={
            "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid}})

    # -- executables ----------------------------------------------------------------------------

    def _write_shims(self) -> Path:
        """``headrace`` and ``python`` on the pods' PATH: this checkout and this interpreter."""
        directory = self.directory / "bin"
        directory.mkdir(parents=True, exist_ok=True)
        for name, target in (("headrace", f"{shlex.quote(sys.executable)} -m headrace"),
                             ("python", shlex.quote(sys.executable))):
            shim = directory / name
            shim.write_text(f'#!/bin/sh\nexec {target} "$@"\n')
            shim.chmod(0o755)
        return directory


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0,
             diagnostics: Callable[[], str] | None = None) -> Any:
    """Poll ``probe`` every 0.25 s until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            extra = f"\n{diagnostics()}" if diagnostics is not None else ""
            raise AssertionError(f"{what}: not within {timeout}s{extra}")
        time.sleep(0.25)
