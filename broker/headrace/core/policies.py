"""What the request pipeline consults around every request: the authorizer and the quota manager.

The pipeline (:mod:`headrace.server.pipeline`) is their only caller — handlers never ask — as
Kafka's ``KafkaApis`` consults its ``Authorizer`` and ``QuotaManager``s. Today :class:`AllowAll`
permits everything and :class:`NoQuotas` never throttles; ACLs and client quotas plug in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from headrace.core.requests import RequestContext
from headrace.core.security import Action


class Authorizer(Protocol):
    """Decides each :class:`Action` of a request for its principal and host."""

    #: False: the pipeline skips working out a request's actions (allow-all costs nothing).
    enabled: bool

    def authorize(self, ctx: RequestContext, actions: Sequence[Action]) -> Sequence[bool]:
        """One answer per action, in order: True allowed."""


class AllowAll:
    """No authorization: every principal may do everything (the embedded default)."""

    enabled = False

    def authorize(self, ctx: RequestContext, actions: Sequence[Action]) -> Sequence[bool]:
        return [True] * len(actions)


@dataclass(frozen=True, slots=True)
class RequestUsage:
    """What one answered request cost, as the pipeline measured it for the quota manager."""

    #: The request frame's size (Produce quotas count it).
    request_bytes: int
    #: The response's size, records included (Fetch quotas count it).
    response_bytes: int
    #: Event-loop time spent running the handler (request-percentage quotas count it; 0 for
    #: what Kafka exempts, such as acks=0 Produce).
    handler_seconds: float


class QuotaManager(Protocol):
    """Kafka's client quotas: how long a response is throttled (``throttle_time_ms``).

    The pipeline measures and the manager decides; with ``enabled`` False (no quota
    configured) the pipeline measures nothing and never asks.
    """

    @property
    def enabled(self) -> bool: ...

    def fetch_bytes_limit(self, ctx: RequestContext) -> int | None:
        """Most bytes a consumer Fetch may return before it is certain to be throttled
        (Kafka caps the request's ``max_bytes`` with it); None: no limit."""

    def throttle_ms(self, ctx: RequestContext, usage: RequestUsage) -> int:
        """Record the request's usage and return the throttle its response carries (0: none);
        the connection then reads nothing more from the client for that long (KIP-219)."""


class NoQuotas:
    """No quotas: never throttles."""

    enabled = False

    def fetch_bytes_limit(self, ctx: RequestContext) -> int | None:
        return None

    def throttle_ms(self, ctx: RequestContext, usage: RequestUsage) -> int:
        return 0
