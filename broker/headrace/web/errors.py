"""HTTP error bodies: every 4xx/5xx is ``{"error_code": <int>, "message": "..."}``.

Error codes follow Confluent REST Proxy's habit of an HTTP status followed by two digits
(``40401`` unknown topic), so clients written for it can branch on them; docs/http-api.md lists
them. Kafka errors raised by the broker services map here too, keeping one vocabulary for both
front ends.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode

from headrace.core.errors import KafkaError

MALFORMED_JSON = 40001
INVALID_FIELD = 40002
INVALID_KAFKA_REQUEST = 40003
OFFSET_OUT_OF_RANGE = 40004
FORBIDDEN = 40301
UNKNOWN_TOPIC = 40401
UNKNOWN_PARTITION = 40402
UNKNOWN_CONSUMER_INSTANCE = 40403
UNKNOWN_CLUSTER = 40404
UNKNOWN_GROUP = 40405
UNKNOWN_CONFIG = 40406
NO_ROUTE = 40400
METHOD_NOT_ALLOWED = 40500
REQUEST_TIMEOUT = 40801
TOPIC_EXISTS = 40901
CONSUMER_INSTANCE_EXISTS = 40902
BODY_TOO_LARGE = 41301
RECORD_TOO_LARGE = 41302
UNSUPPORTED_MEDIA_TYPE = 41500
INVALID_RECORD = 42201
INTERNAL_ERROR = 50001
NOT_LEADER = 50301
GROUPS_UNAVAILABLE = 50302


class ApiError(Exception):
    """Raised by handlers; the error middleware renders it as the JSON error body."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def from_kafka_error(error: KafkaError) -> ApiError:
    """The HTTP rendering of a broker service error, named in Kafka's terms."""
    code = error.code
    message = f"{code.name.upper()}: {error.message or code.name}"
    if code is ErrorCode.unknown_topic_or_partition:
        about_partition = "partition" in (error.message or "")
        return ApiError(404, UNKNOWN_PARTITION if about_partition else UNKNOWN_TOPIC, message)
    if code is ErrorCode.topic_already_exists:
        return ApiError(409, TOPIC_EXISTS, message)
    if code in (ErrorCode.message_too_large, ErrorCode.record_list_too_large):
        return ApiError(413, RECORD_TOO_LARGE, message)
    if code is ErrorCode.offset_out_of_range:
        return ApiError(400, OFFSET_OUT_OF_RANGE, message)
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.leader_not_available,
                ErrorCode.kafka_storage_error, ErrorCode.not_enough_replicas,
                ErrorCode.not_enough_replicas_after_append, ErrorCode.request_timed_out,
                ErrorCode.fenced_leader_epoch, ErrorCode.unknown_leader_epoch):
        return ApiError(503, NOT_LEADER, message)
    if code in (ErrorCode.not_coordinator, ErrorCode.coordinator_not_available,
                ErrorCode.coordinator_load_in_progress):
        return ApiError(503, GROUPS_UNAVAILABLE, message)
    if code is ErrorCode.topic_authorization_failed:
        return ApiError(403, FORBIDDEN, message)
    if code is ErrorCode.unknown_server_error:
        return ApiError(500, INTERNAL_ERROR, message)
    return ApiError(400, INVALID_KAFKA_REQUEST, message)


__all__ = ["ApiError", "from_kafka_error"]
