"""kmock's Kubernetes emulator with the gaps that matter to kopf and this operator filled in.

kmock 0.8 (pinned) stores objects and serves list/watch/get/create/patch/delete, but: objects get
no uid, resourceVersion, creationTimestamp or generation; core discovery says ``/v1``; kopf's
Events collide (``generateName`` is ignored) and are never posted (kopf waits for the core
``events`` resource in discovery); custom resources are unknown until declared; and every request
rescans all requests served so far, so it slows down steadily. This subclass stamps the metadata
(generation moves only when ``spec`` changes, as in Kubernetes), names objects from
``generateName``, declares the Headrace CRDs (with the status subresource), ``events`` and
``namespaces``, seeds a ``default`` namespace and keeps only recent requests.
``EmulatedCluster`` runs it on 127.0.0.1 in its own thread and event loop (kopf runs in another
thread) and offers a small synchronous client for the tests.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import kmock
from kmock._internal import enums

from headrace_operator.crds import build_crds
from headrace_operator.kube import object_path

_versions = itertools.count(1)
_KEPT_REQUESTS = 64


class HeadraceEmulator(kmock.KubernetesEmulator):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for crd in build_crds():
            names = crd["spec"]["names"]
            key = kmock.resource(crd["spec"]["group"], crd["spec"]["versions"][0]["name"],
                                 names["plural"])
            self.resources[key] = kmock.ResourceInfo(
                kind=names["kind"], singular=names["singular"], namespaced=True,
                shortnames=names["shortNames"], subresources={"status"},
                verbs={"get", "list", "watch", "create", "patch", "update", "delete"})
        # kopf posts Events only once discovery shows the core v1 events resource.
        for plural, kind in (("events", "Event"), ("namespaces", "Namespace")):
            self.resources[kmock.resource("", "v1", plural)] = kmock.ResourceInfo(
                kind=kind, singular=kind.lower(), namespaced=plural == "events",
                verbs={"get", "list", "watch", "create", "patch", "delete"})
        self.objects[kmock.resource("", "v1", "namespaces"), None, "default"] = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "uid": str(uuid.uuid4())}}

    async def _serve_version(self, request: kmock.Request) -> Any:
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and payload.get("groupVersion") == "/v1":
            payload["groupVersion"] = "v1"  # kmock says "/v1" for the core group
        return payload

    async def _handle(self, request: kmock.Request) -> Any:
        # kmock keeps every request for assertions and scans them all on each new request;
        # these tests assert on objects, so keep only the recent ones (O(1) per request).
        if len(self._requests) > _KEPT_REQUESTS:
            del self._requests[:-_KEPT_REQUESTS]
        data = request.data
        if isinstance(data, dict) and request.resource is not None:
            meta = data.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(_versions))
            if request.action == enums.action.CREATE:
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", datetime.datetime.now(
                    datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
                meta.setdefault("generation", 1)
            elif request.action == enums.action.UPDATE and "spec" in data \
                    and not request.subresource:
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted:
                    current = self.objects[key].raw
                    if current.get("spec") != _merged(current.get("spec"), data["spec"]):
                        meta["generation"] = int(
                            (current.get("metadata") or {}).get("generation") or 1) + 1
        return await super()._handle(request)


def _merged(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return patch
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(base.get(key), value)
    return result


class EmulatedCluster:
    """The emulator on an ephemeral port in a background thread, plus a blocking client."""

    def __init__(self) -> None:
        self.url = ""
        self.emulator: HeadraceEmulator | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with HeadraceEmulator() as emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def start(self) -> EmulatedCluster:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes emulator did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [{"name": "emulator",
                          "context": {"cluster": "emulator", "user": "tester"}}],
        }))
        return path

    # -- a blocking client for test code -----------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None,
              content_type: str = "application/json") -> Any:
        request = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def create(self, obj: dict[str, Any]) -> Any:
        meta = obj["metadata"]
        return self._call("POST", object_path(obj["apiVersion"], obj["kind"],
                                              meta.get("namespace")), obj)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Any:
        return self._call("GET", object_path(api_version, kind, namespace, name))

    def list(self, api_version: str, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        result = self._call("GET", object_path(api_version, kind, namespace))
        return list((result or {}).get("items") or [])

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str,
              patch: dict[str, Any], subresource: str | None = None) -> Any:
        path = object_path(api_version, kind, namespace, name)
        return self._call("PATCH", path + (f"/{subresource}" if subresource else ""), patch,
                          "application/merge-patch+json")

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> Any:
        return self._call("DELETE", object_path(api_version, kind, namespace, name))

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        events = self._call("GET", f"/api/v1/namespaces/{namespace}/events") or {}
        return [e for e in events.get("items") or []
                if (e.get("involvedObject") or {}).get("name") == name]
