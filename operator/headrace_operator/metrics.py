"""Prometheus metrics about the operator's own work, served on their own port.

One registry per process (not the global default) so tests can start several operators, and a
``reconciling`` context manager so handlers count attempts, durations and errors the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILE_TOTAL = Counter(
    "headrace_operator_reconcile_total", "Reconciliations by resource kind and result.",
    ["kind", "result"], registry=REGISTRY)
RECONCILE_DURATION = Histogram(
    "headrace_operator_reconcile_duration_seconds", "Time spent reconciling one resource.",
    ["kind"], registry=REGISTRY, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RECONCILE_ERRORS = Counter(
    "headrace_operator_reconcile_errors_total", "Reconciliations that raised an error.",
    ["kind"], registry=REGISTRY)


class Outcome:
    """What a reconcile reports as its result label; "success" unless set otherwise."""

    def __init__(self) -> None:
        self.result = "success"


@contextmanager
def reconciling(kind: str) -> Iterator[Outcome]:
    outcome = Outcome()
    started = time.monotonic()
    try:
        yield outcome
    except BaseException:
        RECONCILE_ERRORS.labels(kind=kind).inc()
        outcome.result = "error"
        raise
    finally:
        RECONCILE_DURATION.labels(kind=kind).observe(time.monotonic() - started)
        RECONCILE_TOTAL.labels(kind=kind, result=outcome.result).inc()


#: The port ``serve`` bound (0 until then), for logs and tests.
bound_port = 0


def serve(port: int, host: str = "0.0.0.0") -> int:
    """Serve ``/metrics``; port 0 picks a free port. Returns the bound port."""
    global bound_port
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    bound_port = int(server.server_port)
    return bound_port
