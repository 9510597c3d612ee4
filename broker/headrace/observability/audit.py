"""The audit log: one line per admin action, whoever asked and however they asked.

Admin actions (creating and deleting topics, changing configs, adding partitions, deleting
records or groups, resetting or committing offsets through the HTTP API, moving replicas) reach
the broker through two front ends; each finds them in its request pipeline — the Kafka
pipeline's audit step (:mod:`headrace.server.audit`) and the HTTP middleware
(:mod:`headrace.web.audit`) — and reports them here, so no handler logs its own.

A line says who (principal, client address, listener), what (action and resource) and the
result (``ok`` or the error), on the ``headrace.audit`` logger at INFO; with
``--log-format json`` those are fields of the JSON object, so the audit trail can be filtered
out of the broker's log (``logger == "headrace.audit"``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

AUDIT_LOGGER = "headrace.audit"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked: the principal, the client's address and the listener it came through."""

    principal: str
    client: str
    listener: str


class AdminAudit:
    """Writes the audit lines; cheap enough to call once per admin request."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def record(self, actor: Actor, action: str, resource: str, result: str,
               **details: Any) -> None:
        """``action`` (``topic.create``…) on ``resource`` (``topic:orders``…) ended in
        ``result`` (``ok`` or the error); ``details`` are extra fields (``dry_run``…)."""
        if not self._log.isEnabledFor(logging.INFO):
            return
        extra = "".join(f" {key}={value}" for key, value in details.items())
        self._log.info(
            "%s %s by %s from %s via %s: %s%s", action, resource, actor.principal,
            actor.client, actor.listener, result, extra,
            extra={"audit": True, "action": action, "resource": resource, "result": result,
                   "principal": actor.principal, "client": actor.client,
                   "listener": actor.listener, **details},
        )


__all__ = ["AUDIT_LOGGER", "Actor", "AdminAudit"]
