"""kopf handlers: the operator's only kopf code, translating kopf's events into reconciles.

A Cluster or Topic is reconciled on creation, on spec change, on operator start and on a timer
(the timer catches drift and drives multi-step work such as drain-then-shrink and rolling
restarts). Each handler fetches the stored object, takes the resource's lock (reconciles of one
resource never overlap), counts the attempt in the metrics and hands over to
:class:`~headrace_operator.reconcile.Reconciler`, which this module builds at startup with kopf's
event poster and keeps in kopf's per-run ``memo``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf

from headrace_operator import metrics
from headrace_operator.admin import AdminError
from headrace_operator.crds import (
    API_VERSION,
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    GROUP,
    TOPIC_PLURAL,
    VERSION,
)
from headrace_operator.kube import Kube, KubeConfig
from headrace_operator.reconcile import Log, Reconciler

RECONCILE_INTERVAL_S = float(os.environ.get("HEADRACE_OPERATOR_INTERVAL", "15"))


def _post_event(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """A Kubernetes Event on ``obj`` (kopf posts it in the background)."""
    kopf.event(cast(kopf.Body, obj), type=type_, reason=reason, message=message)


def _reconciler(memo: Any) -> Reconciler:
    reconciler: Reconciler = memo.reconciler
    return reconciler


def _lock(memo: Any, kind: str, namespace: str, name: str) -> asyncio.Lock:
    locks: dict[tuple[str, str, str], asyncio.Lock] = memo.locks
    return locks.setdefault((kind, namespace, name), asyncio.Lock())


# -- lifecycle -----------------------------------------------------------------------------------

@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Use ``HEADRACE_KUBECONFIG`` when set (tests, out-of-cluster runs), else kopf's default."""
    path = os.environ.get("HEADRACE_KUBECONFIG")
    if path:
        os.environ["KUBECONFIG"] = path
        info: kopf.ConnectionInfo | None = kopf.login_with_kubeconfig(**kwargs)
        return info
    return kopf.login_via_client(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, logger: Log, **_: Any) -> None:
    settings.peering.standalone = True  # one operator replica (the chart enforces 0 or 1)
    settings.posting.level = logging.INFO
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Per run, in kopf's memo: tests run the operator more than once in a process.
    memo.locks = {}
    memo.reconciler = Reconciler(Kube(KubeConfig.load(os.environ.get("HEADRACE_KUBECONFIG"))),
                                 _post_event)
    port = os.environ.get("HEADRACE_OPERATOR_METRICS_PORT", "8080")
    if port != "off":
        bound = metrics.serve(int(port))
        logger.info("metrics on port %d", bound)


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    await _reconciler(memo).close()


async def _fresh(memo: Any, kind: str, meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The stored object (kopf's body may predate our own last status patch); None if going."""
    fresh = await _reconciler(memo).kube.get(API_VERSION, kind, meta["namespace"], meta["name"])
    if fresh is None or (fresh.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return fresh


# -- Cluster -------------------------------------------------------------------------------------

@kopf.on.resume(GROUP, VERSION, CLUSTER_PLURAL)
@kopf.on.create(GROUP, VERSION, CLUSTER_PLURAL)
@kopf.on.update(GROUP, VERSION, CLUSTER_PLURAL, field="spec")
@kopf.timer(GROUP, VERSION, CLUSTER_PLURAL, interval=RECONCILE_INTERVAL_S, initial_delay=1)
async def cluster_handler(body: kopf.Body, memo: Any, logger: Log, **_: Any) -> None:
    meta = body["metadata"]
    async with _lock(memo, "Cluster", meta["namespace"], meta["name"]):
        fresh = await _fresh(memo, CLUSTER_KIND, meta)
        if fresh is None:
            return
        with metrics.reconciling("Cluster") as outcome:
            outcome.result = await _reconciler(memo).cluster(fresh, logger)


# -- Topic ---------------------------------------------------------------------------------------

@kopf.on.resume(GROUP, VERSION, TOPIC_PLURAL)
@kopf.on.create(GROUP, VERSION, TOPIC_PLURAL)
@kopf.on.update(GROUP, VERSION, TOPIC_PLURAL, field="spec")
@kopf.timer(GROUP, VERSION, TOPIC_PLURAL, interval=RECONCILE_INTERVAL_S, initial_delay=1)
async def topic_handler(body: kopf.Body, memo: Any, logger: Log, **_: Any) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    async with _lock(memo, "Topic", meta["namespace"], meta["name"]):
        fresh = await _fresh(memo, "Topic", meta)
        if fresh is None:
            return
        with metrics.reconciling("Topic") as outcome:
            outcome.result = await _reconciler(memo).topic(fresh, logger)


@kopf.on.delete(GROUP, VERSION, TOPIC_PLURAL)
async def topic_deleted(body: kopf.Body, memo: Any, logger: Log, **_: Any) -> None:
    """Delete the Kafka topic (deletionPolicy delete) or leave it (retain)."""
    meta = body["metadata"]
    async with _lock(memo, "Topic", meta["namespace"], meta["name"]):
        with metrics.reconciling("Topic"):
            try:
                await _reconciler(memo).delete_topic(body, logger)
            except AdminError as error:
                raise kopf.TemporaryError(f"cannot delete topic: {error}", delay=5) from None
