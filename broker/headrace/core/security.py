"""Who is asking, and what they ask for: principals and Kafka's ACL vocabulary (resource types,
operations, actions), as plain values for the policies of :mod:`headrace.core.policies`.

Today every connection is :data:`ANONYMOUS`; TLS and SASL listeners will set the principal they
authenticate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Kafka's ``KafkaPrincipal``: a type (``User``) and a name."""

    principal_type: str
    name: str

    def __str__(self) -> str:
        return f"{self.principal_type}:{self.name}"


ANONYMOUS = Principal("User", "ANONYMOUS")

#: The one name of the CLUSTER resource (Kafka's ``kafka-cluster``).
CLUSTER_NAME = "kafka-cluster"


class ResourceType(enum.IntEnum):
    """Kafka's ACL resource types, with their wire codes."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class Operation(enum.IntEnum):
    """Kafka's ACL operations, with their wire codes."""

    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


@dataclass(frozen=True, slots=True)
class Action:
    """One thing a request needs: ``operation`` on the resource ``(resource_type, name)``."""

    operation: Operation
    resource_type: ResourceType
    name: str
