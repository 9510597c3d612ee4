"""argparse types shared by the commands, so a bad value is argparse's usage error (exit 2).

argparse also applies a ``type`` to a string default, so a flag whose default comes from a
``HEADRACE_*`` variable is checked the same way: defaults are given as strings for that reason.
"""

from __future__ import annotations

import argparse

from headrace.observability.logging import parse_level


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    return _bounded_int(text, 1)


def non_negative_int(text: str) -> int:
    """An integer ≥ 0."""
    return _bounded_int(text, 0)


def _bounded_int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (seconds, usually)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def log_level(text: str) -> str:
    """A logging level name (``debug`` … ``critical``), case-insensitive."""
    try:
        parse_level(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r} (use debug, info, warning, error or critical)") from None
    return text.lower()


class RepeatedList(argparse.Action):
    """A repeatable flag whose ``type`` parses a comma-separated list: the flags' lists join,
    and replace (not extend) the default, which comes from a ``HEADRACE_*`` variable."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        given: list[object] = getattr(namespace, f"_{self.dest}_given", [])
        if not given:
            current = ()
        given.append(values)
        setattr(namespace, f"_{self.dest}_given", given)
        assert isinstance(values, tuple) and isinstance(current, tuple)  # type parses a list
        setattr(namespace, self.dest, current + values)
