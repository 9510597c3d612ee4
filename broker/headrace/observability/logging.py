"""Process-wide logging setup shared by every ``headrace`` command: one format per process.

``headrace broker --log-format json --log-level info`` calls :func:`setup`; JSON lines carry the
timestamp, level, logger, message, any ``extra=`` fields and, when tracing is on, the current
trace and span ids, so logs can be joined with traces.

Everything the process reports goes through the one root handler, in the one format: the
broker's loggers, aiohttp's (``aiohttp.server``, ``aiohttp.web``; the access log is off: the HTTP
metrics and spans record requests), asyncio's (uvloop logs there too), Python warnings
(``py.warnings``) and exceptions that end a thread (``headrace.thread``). Nothing in the broker
prints to stdout or stderr directly; the start banner and the audit lines are log records too.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

#: Attributes every LogRecord has; anything else came from ``extra=`` and is emitted as a field.
_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_ids = _current_trace_ids()
        if trace_ids is not None:
            entry["trace_id"], entry["span_id"] = trace_ids
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _current_trace_ids() -> tuple[str, str] | None:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def parse_level(level: str | int) -> int:
    """``"info"``/``"DEBUG"``/``20`` → a logging level; ValueError names a bad one."""
    if isinstance(level, int):
        return level
    resolved = logging.getLevelName(level.upper())
    if not isinstance(resolved, int):
        raise ValueError(f"unknown log level {level!r}")
    return resolved


def setup(level: str | int = "info", log_format: LogFormat = "text",
          stream: TextIO | None = None) -> logging.Handler:
    """Route the root logger to ``stream`` (stderr) in ``log_format``; returns the handler.

    Calling it again replaces the previous handler, so tests and repeated CLI runs don't stack
    handlers.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.set_name("headrace")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "headrace":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    # aiohttp's access log repeats what the HTTP metrics and spans already record.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings.warn → py.warnings, not raw text on stderr
    threading.excepthook = _log_thread_exception
    return handler


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """A thread that dies of an exception is logged in the process's format, not printed."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    logging.getLogger("headrace.thread").error("thread %s failed", name, exc_info=exc_info)


__all__ = ["JsonFormatter", "LogFormat", "parse_level", "setup"]
