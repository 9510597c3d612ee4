"""A small asyncio Kubernetes REST client for the objects the operator owns.

kopf watches the custom resources and patches their status; the owned objects (StatefulSets,
Services, ConfigMaps, PDBs, Pods, Nodes) need plain get/list/create/patch/delete, which this module
does over aiohttp with the credentials of the ``kubernetes`` package's configuration (in-cluster
service account, or a kubeconfig). Keeping it to these verbs avoids the generated clients' startup
discovery and their blocking I/O inside the operator's event loop.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp

Obj = dict[str, Any]

#: (apiVersion, kind) -> URL plural of every kind the operator touches.
PLURALS: dict[tuple[str, str], str] = {
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Pod"): "pods",
    ("v1", "Node"): "nodes",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("headrace.io/v1alpha1", "Cluster"): "clusters",
    ("headrace.io/v1alpha1", "Topic"): "topics",
}
_CLUSTER_SCOPED = {"Node"}


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class KubeConfig:
    server: str
    token: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True

    @classmethod
    def load(cls, kubeconfig: str | None = None, context: str | None = None) -> KubeConfig:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if kubeconfig is None:
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration)
            else:
                raise config.ConfigException("kubeconfig given")
        except config.ConfigException:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration)
        token = configuration.api_key.get("authorization") or configuration.api_key.get(
            "BearerToken")
        if token and token.lower().startswith("bearer "):
            token = token[7:]
        return cls(server=configuration.host.rstrip("/"), token=token,
                   ca_file=configuration.ssl_ca_cert, cert_file=configuration.cert_file,
                   key_file=configuration.key_file, verify=bool(configuration.verify_ssl))


def object_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    plural = PLURALS[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace and kind not in _CLUSTER_SCOPED:
        prefix += f"/namespaces/{namespace}"
    return f"{prefix}/{plural}" + (f"/{name}" if name else "")


class Kube:
    """get/list/create/patch/delete of owned objects; one aiohttp session per operator."""

    def __init__(self, config: KubeConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if not self.config.server.startswith("https"):
            return False
        if not self.config.verify:
            return False
        context = ssl.create_default_context(cafile=self.config.ca_file)
        if self.config.cert_file:
            context.load_cert_chain(self.config.cert_file, self.config.key_file)
        return context

    async def _request(self, method: str, path: str, body: Any = None,
                       content_type: str = "application/json",
                       params: dict[str, str] | None = None) -> Obj | None:
        if self._session is None:
            headers = {"Accept": "application/json"}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            self._session = aiohttp.ClientSession(
                headers=headers, connector=aiohttp.TCPConnector(ssl=self._ssl()),
                timeout=aiohttp.ClientTimeout(total=30))
        async with self._session.request(
                method, self.config.server + path, json=body, params=params,
                headers={"Content-Type": content_type}) as response:
            if response.status == 404 and method == "GET":
                return None
            payload = await response.json(content_type=None) if response.content_length != 0 \
                else None
            if response.status >= 400:
                message = payload.get("message") if isinstance(payload, dict) else payload
                raise KubeError(response.status, str(message))
            return payload if isinstance(payload, dict) else {}

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> Obj | None:
        return await self._request("GET", object_path(api_version, kind, namespace, name))

    async def list(self, api_version: str, kind: str, namespace: str | None,
                   labels: dict[str, str] | None = None) -> list[Obj]:
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} \
            if labels else None
        result = await self._request("GET", object_path(api_version, kind, namespace),
                                     params=params)
        items: list[Obj] = list((result or {}).get("items") or [])
        if labels:  # filter client-side too: correct even where a server ignores the selector
            items = [i for i in items
                     if all(((i.get("metadata") or {}).get("labels") or {}).get(k) == v
                            for k, v in labels.items())]
        return items

    async def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        result = await self._request(
            "POST", object_path(obj["apiVersion"], obj["kind"], meta.get("namespace")), obj)
        return result or {}

    async def patch(self, api_version: str, kind: str, namespace: str | None, name: str,
                    patch: Obj, subresource: str | None = None) -> Obj:
        path = object_path(api_version, kind, namespace, name)
        if subresource:
            path += f"/{subresource}"
        result = await self._request("PATCH", path, patch,
                                     content_type="application/merge-patch+json")
        return result or {}

    async def delete(self, api_version: str, kind: str, namespace: str | None,
                     name: str) -> None:
        try:
            await self._request("DELETE", object_path(api_version, kind, namespace, name))
        except KubeError as error:
            if error.status != 404:
                raise

    async def apply(self, obj: Obj) -> str:
        """Create ``obj`` or merge-patch its labels, annotations and spec/data.

        Returns "created", "updated" or "unchanged". A merge patch only replaces the fields the
        operator owns, so fields set by other controllers survive.
        """
        meta = obj["metadata"]
        existing = await self.get(obj["apiVersion"], obj["kind"], meta.get("namespace"),
                                  meta["name"])
        if existing is None:
            await self.create(obj)
            return "created"
        patch: Obj = {}
        for key in ("spec", "data"):
            if key in obj and not _contains(existing.get(key), obj[key]):
                patch[key] = obj[key]
        existing_meta = existing.get("metadata") or {}
        for key in ("labels", "annotations", "ownerReferences"):
            if key in meta and not _contains(existing_meta.get(key), meta[key]):
                patch.setdefault("metadata", {})[key] = meta[key]
        if not patch:
            return "unchanged"
        await self.patch(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"],
                         patch)
        return "updated"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _contains(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` already has every field of ``wanted`` (server defaults may add more)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(_contains(actual.get(k), v)
                                                for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(
            _contains(a, w) for a, w in zip(actual, wanted, strict=True))
    return bool(actual == wanted)
