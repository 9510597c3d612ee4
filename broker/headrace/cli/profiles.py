"""Connection profiles: where the client commands connect when no ``--bootstrap-server`` is given.

As rpk and kcat do, a config file names clusters once, so commands need no flags::

    # ~/.config/headrace/config.toml  ($XDG_CONFIG_HOME, or the file HEADRACE_CONFIG names)
    default_profile = "staging"

    [profiles.staging]
    bootstrap = "broker-1.staging:9092,broker-2.staging:9092"
    timeout = 30                                  # seconds (optional)
    properties = { "security.protocol" = "ssl" }  # librdkafka properties (optional)
    # SASL credentials (optional), as rpk's profiles: security.protocol becomes SASL_PLAINTEXT
    # unless the properties say otherwise (SASL_SSL); mechanism defaults to SCRAM-SHA-256.
    sasl = { username = "admin", password = "…", mechanism = "SCRAM-SHA-512" }

Precedence, highest first: ``--bootstrap-server``/``-X``/``--timeout`` flags (and
``--sasl-username``/``--sasl-password``/``--sasl-mechanism``); the ``HEADRACE_BOOTSTRAP`` (and
``HEADRACE_SASL_USERNAME``/``_PASSWORD``/``_MECHANISM``) variables; the profile ``--profile``
(or ``HEADRACE_PROFILE``) names, else the file's ``default_profile``; built-in defaults. A
profile asked for by name must exist.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.core.errors import UserError

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Connection:
    """Where and how a client command connects, after flags, variables and profiles."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    timeout: float = DEFAULT_TIMEOUT
    properties: dict[str, str] = field(default_factory=dict)
    #: The profile it came from ("" when none did), for messages.
    profile: str = ""


def config_path() -> Path:
    """The profiles file: ``$HEADRACE_CONFIG``, else ``$XDG_CONFIG_HOME/headrace/config.toml``."""
    explicit = os.environ.get("HEADRACE_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "headrace" / "config.toml"


def resolve(*, bootstrap: str | None, timeout: float | None, profile: str | None) -> Connection:
    """The connection the flags (None: not given), the environment and the profiles file ask for."""
    path = config_path()
    name = profile or os.environ.get("HEADRACE_PROFILE") or None
    document = _load(path, required=name is not None)
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise UserError(f"{path}: 'profiles' must be a table of [profiles.NAME] sections")
    if name is None:
        default = document.get("default_profile")
        if default is not None and not isinstance(default, str):
            raise UserError(f"{path}: default_profile must be a profile name")
        name = default
    chosen: dict[str, Any] = {}
    if name is not None:
        if name not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise UserError(f"no profile {name!r} in {path} (profiles: {known})")
        chosen = profiles[name]
        if not isinstance(chosen, dict):
            raise UserError(f"{path}: [profiles.{name}] must be a table")
    return Connection(
        bootstrap=(bootstrap or os.environ.get("HEADRACE_BOOTSTRAP")
                   or _string(chosen, "bootstrap", path, name) or DEFAULT_BOOTSTRAP),
        timeout=timeout if timeout is not None else _timeout(chosen, path, name),
        properties={**_properties(chosen, path, name), **_sasl(chosen, path, name)},
        profile=name or "",
    )


DEFAULT_SASL_MECHANISM = "SCRAM-SHA-256"


def sasl_properties(username: str, password: str, mechanism: str | None,
                    properties: dict[str, str]) -> dict[str, str]:
    """librdkafka properties that authenticate as ``username`` (SASL_PLAINTEXT unless
    ``properties`` already name a SASL_* protocol, e.g. SASL_SSL)."""
    protocol = properties.get("security.protocol", "")
    return {
        "security.protocol": protocol if protocol.upper().startswith("SASL_")
        else "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism or properties.get("sasl.mechanism", DEFAULT_SASL_MECHANISM),
        "sasl.username": username,
        "sasl.password": password,
    }


def _sasl(profile: dict[str, Any], path: Path, name: str | None) -> dict[str, str]:
    table = profile.get("sasl")
    if table is None:
        return {}
    if not isinstance(table, dict) or not all(
            isinstance(table.get(key), str) and table.get(key) for key in ("username", "password")):
        raise UserError(f"{path}: profiles.{name}.sasl must be a table with username and "
                        "password (and optionally mechanism)")
    mechanism = table.get("mechanism")
    if mechanism is not None and not isinstance(mechanism, str):
        raise UserError(f"{path}: profiles.{name}.sasl.mechanism must be a string")
    return sasl_properties(table["username"], table["password"], mechanism,
                           _properties(profile, path, name))


def _load(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise UserError(f"--profile given but there is no profiles file {path}") from None
        return {}
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: {error}") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None


def _string(profile: dict[str, Any], key: str, path: Path, name: str | None) -> str | None:
    value = profile.get(key)
    if value is not None and not (isinstance(value, str) and value):
        raise UserError(f"{path}: profiles.{name}.{key} must be a non-empty string")
    return value


def _timeout(profile: dict[str, Any], path: Path, name: str | None) -> float:
    value = profile.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise UserError(f"{path}: profiles.{name}.timeout must be a number of seconds > 0")
    return float(value)


def _properties(profile: dict[str, Any], path: Path, name: str | None) -> dict[str, str]:
    value = profile.get("properties", {})
    if not isinstance(value, dict):
        raise UserError(f"{path}: profiles.{name}.properties must be a table")
    return {str(key): str(item).lower() if isinstance(item, bool) else str(item)
            for key, item in value.items()}
