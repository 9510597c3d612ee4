"""One exception type that carries a Kafka error code, so services can fail in protocol terms.

Services raise :class:`KafkaError`; handlers turn it into the per-partition/per-topic error code
and message of the response. The HTTP API maps the same codes to status codes.
"""

from __future__ import annotations

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
