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
import time
from collections.abc import Callable
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


class DenialAudit:
    """One audit line per authorization denial, rate-limited: a client retrying a denied
    request in a loop must not flood the log. A token bucket allows ``burst`` lines at once and
    ``per_second`` after; the lines it drops are counted and reported by the next one."""

    def __init__(self, logger: logging.Logger | None = None, *, per_second: float = 10.0,
                 burst: int = 50, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)
        self._rate = per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()
        #: Denials not logged since the last line.
        self.suppressed = 0

    def denied(self, actor: Actor, operation: str, resource: str, api: str) -> None:
        """``actor`` may not ``operation`` (READ…) ``resource`` (``topic:orders``…) in ``api``."""
        if not self._log.isEnabledFor(logging.INFO):
            return
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            self.suppressed += 1
            return
        self._tokens -= 1
        suppressed, self.suppressed = self.suppressed, 0
        more = f" ({suppressed} more denials not logged)" if suppressed else ""
        self._log.info(
            "denied %s on %s by %s from %s via %s (%s)%s", operation, resource,
            actor.principal, actor.client, actor.listener, api, more,
            extra={"audit": True, "action": "authorize", "result": "DENIED",
                   "operation": operation, "resource": resource, "api": api,
                   "principal": actor.principal, "client": actor.client,
                   "listener": actor.listener, "suppressed": suppressed},
        )


__all__ = ["AUDIT_LOGGER", "Actor", "AdminAudit", "DenialAudit"]
