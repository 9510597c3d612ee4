"""What the request pipeline consults around every request: the authorizer and the quota manager.

The pipeline (:mod:`headrace.server.pipeline`) is their only caller — handlers never ask — as
Kafka's ``KafkaApis`` consults its ``Authorizer`` and ``QuotaManager``s. Today :class:`AllowAll`
permits everything and :class:`NoQuotas` never throttles; ACLs and client quotas plug in here.
"""

from __future__ import annotations

from collections.abc import Sequence
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


class QuotaManager(Protocol):
    """Kafka's client quotas: how long a response is throttled (``throttle_time_ms``)."""

    def throttle_ms(self, ctx: RequestContext, request_bytes: int) -> int:
        """Record the request and return the throttle its response carries (0: none)."""


class NoQuotas:
    """No quotas: never throttles."""

    def throttle_ms(self, ctx: RequestContext, request_bytes: int) -> int:
        return 0
