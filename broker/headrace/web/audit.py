"""The HTTP side of the audit log: which routes are admin actions, reported by the middleware.

The one middleware (:func:`headrace.web._serve`) calls :func:`audit_http_request` for every
request that is not a GET once its answer is known; routes outside :data:`ADMIN_ROUTES`
(produce, consumer instances' reads) cost one dict lookup. Who: the HTTP API has no
authentication, so the principal is ``User:ANONYMOUS``, with the client's address and the
``HTTP`` listener. The result is ``ok`` or the status and error code the client got.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from headrace.observability.audit import Actor, AdminAudit
from headrace.web import consumers, v3
from headrace.web.context import JSON_BODY

#: (method, route template) → action.
ADMIN_ROUTES: dict[tuple[str, str], str] = {
    ("POST", v3.TOPICS): "topic.create",
    ("DELETE", v3.TOPIC): "topic.delete",
    ("POST", v3.TOPIC_CONFIGS_ALTER): "config.alter",
    ("PUT", v3.TOPIC_CONFIG): "config.alter",
    ("DELETE", v3.TOPIC_CONFIG): "config.reset",
    ("POST", consumers.OFFSETS): "offset.commit",
}

HTTP_ACTOR_PRINCIPAL = "User:ANONYMOUS"
HTTP_LISTENER = "HTTP"


def audit_http_request(audit: AdminAudit, request: web.Request, route: str,
                             response: web.StreamResponse) -> None:
    """One audit line if ``request`` was an admin action."""
    action = ADMIN_ROUTES.get((request.method, route))
    if action is None:
        return
    actor = Actor(HTTP_ACTOR_PRINCIPAL, request.remote or "", HTTP_LISTENER)
    details: dict[str, Any] = {}
    match = request.match_info
    if route == v3.TOPICS:  # the new topic's name is in the body the handler read
        body = request.get(JSON_BODY)
        body = body if isinstance(body, dict) else {}
        name = body.get("topic_name")
        resource = f"topic:{name}" if isinstance(name, str) else "topic:?"
        if body.get("validate_only") is True:
            details["dry_run"] = True
    elif route == consumers.OFFSETS:
        resource = f"group:{match['group_name']} consumer:{match['instance']}"
        body = request.get(JSON_BODY)
        entries = body.get("offsets") if isinstance(body, dict) else None
        # No body: the instance commits what it has consumed.
        details["offsets"] = _offsets(entries) if isinstance(entries, list) else "consumed"
    else:
        resource = f"topic:{match['topic_name']}"
        if "name" in match:
            resource += f" config:{match['name']}"
    audit.record(actor, action, resource, _result(response), **details)


#: Offsets named in one audit line; a commit of more says how many it left out.
MAX_AUDITED_OFFSETS = 20


def _offsets(entries: list[Any]) -> str:
    """``orders:0=42,orders:1=7`` for a commit's body (already validated by the handler)."""
    shown = [f"{e.get('topic')}:{e.get('partition')}={e.get('offset')}"
             for e in entries[:MAX_AUDITED_OFFSETS] if isinstance(e, dict)]
    more = len(entries) - MAX_AUDITED_OFFSETS
    return ",".join(shown) + (f",… ({more} more)" if more > 0 else "")


def _result(response: web.StreamResponse) -> str:
    if response.status < 400:
        return "ok"
    code: object = None
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        try:
            code = json.loads(response.body).get("error_code")
        except (ValueError, AttributeError):
            code = None
    return f"HTTP {response.status}" + (f" error_code {code}" if code is not None else "")


__all__ = ["ADMIN_ROUTES", "audit_http_request"]
