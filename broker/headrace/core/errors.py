"""The project's two deliberate failures: a Kafka error code, and an operator's mistake.

Services raise :class:`KafkaError`; handlers turn it into the per-partition/per-topic error code
and message of the response. The HTTP API maps the same codes to status codes. Startup and the
command line raise :class:`UserError`, which ``headrace`` prints as one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line imports UserError and must not pay for kio
    from kio.schema.errors import ErrorCode


class KafkaError(Exception):
    """A failure with a Kafka error code and a human-readable message."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        record_errors: tuple[tuple[int, str], ...] = (),
    ) -> None:
        super().__init__(message or code.name)
        self.code = code
        self.message = message
        #: Produce v8+: (index of the record among its partition's records, what is wrong).
        self.record_errors = record_errors

    def __repr__(self) -> str:
        return f"KafkaError({self.code.name}, {self.message!r})"


class UserError(Exception):
    """A mistake whoever runs ``headrace`` can fix: a busy port, a bad path, flag or value.

    The command line prints it as one line (``headrace: error: …``) and exits 1, never with a
    traceback; the message names what is wrong. Anything else that escapes is a bug.
    """
