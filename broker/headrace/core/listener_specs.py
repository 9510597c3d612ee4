"""Kafka's listener syntax, parsed and checked without any I/O.

``--listener NAME=PROTOCOL://HOST:PORT`` (or Kafka's own ``PROTOCOL://HOST:PORT``, where the
name is the protocol), ``--advertised-listener NAME=HOST:PORT`` (or ``HOST:PORT`` for the first
listener) and ``--inter-broker-listener NAME`` are turned into :class:`ListenerConfig` values
here, and :func:`check_listeners` refuses the combinations Kafka refuses (two listeners of one
name or one port, an advertised or inter-broker name that is no listener's), so an operator's
mistake is one clear line before anything binds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from headrace.core.config import ListenerConfig, SecurityProtocol

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_PROTOCOLS = ", ".join(protocol.value for protocol in SecurityProtocol)


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` → (host, port); an empty host is every interface."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host.strip("[]") or "0.0.0.0", number


def listener_name(text: str) -> str:
    """A listener name, upper-cased as Kafka normalises it."""
    if not _NAME.fullmatch(text):
        raise ValueError(f"bad listener name {text!r} (letters, digits, '_' and '-')")
    return text.upper()


def parse_listener(text: str) -> ListenerConfig:
    """``NAME=PROTOCOL://HOST:PORT`` or ``PROTOCOL://HOST:PORT`` → a listener."""
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = "", text
    protocol, sep, address = rest.partition("://")
    if not sep:
        raise ValueError(f"expected NAME=PROTOCOL://HOST:PORT, got {text!r}")
    try:
        security = SecurityProtocol(protocol.upper())
    except ValueError:
        raise ValueError(
            f"unknown security protocol {protocol!r} in {text!r} (one of {_PROTOCOLS})"
        ) from None
    host, port = parse_host_port(address)
    return ListenerConfig(listener_name(name or security.value), security, host, port)


def format_listener(listener: ListenerConfig) -> str:
    """The inverse of :func:`parse_listener`."""
    host = f"[{listener.host}]" if ":" in listener.host else listener.host
    return f"{listener.name}={listener.security_protocol.value}://{host}:{listener.port}"


def parse_advertised(text: str) -> tuple[str | None, str, int]:
    """``NAME=HOST:PORT`` (or Kafka's ``NAME://HOST:PORT``) → (name, host, port); a bare
    ``HOST:PORT`` has no name (it is the first listener's)."""
    for separator in ("://", "="):
        name, sep, address = text.partition(separator)
        if sep and _NAME.fullmatch(name):
            host, port = parse_host_port(address)
            return listener_name(name), host, port
    host, port = parse_host_port(text)
    return None, host, port


def check_listeners(
    listeners: Iterable[ListenerConfig],
    *,
    advertised: Mapping[str, object] = {},
    inter_broker: str | None = None,
) -> None:
    """Raise ValueError for what Kafka refuses in ``listeners`` and its companions."""
    names: set[str] = set()
    addresses: set[tuple[str, int]] = set()
    for listener in listeners:
        if listener.name in names:
            raise ValueError(f"listener {listener.name} is configured twice")
        names.add(listener.name)
        address = (listener.host, listener.port)
        if listener.port and address in addresses:
            raise ValueError(f"two listeners on {listener.host}:{listener.port}")
        addresses.add(address)
    if not names:
        raise ValueError("no Kafka listener configured")
    for name in advertised:
        if name not in names:
            raise ValueError(f"advertised listener {name} is not a listener "
                             f"(listeners: {', '.join(sorted(names))})")
    if inter_broker is not None and inter_broker not in names:
        raise ValueError(f"inter-broker listener {inter_broker} is not a listener "
                         f"(listeners: {', '.join(sorted(names))})")
