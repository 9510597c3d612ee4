"""The OpenAPI 3 document served at ``/openapi.json``.

Written as data next to the routes it describes; a test compares its paths and methods with the
app's router so the two cannot drift, and schemathesis fuzzes the running API against it.
"""

from __future__ import annotations

from typing import Any

from headrace import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON = "application/json"


def _error_responses(*statuses: int) -> dict[str, Any]:
    reasons = {400: "Bad request", 404: "Not found", 409: "Conflict", 413: "Body too large",
               503: "Unavailable", 403: "Forbidden", 415: "Unsupported media type",
               422: "Invalid records"}
    return {str(status): {"description": reasons[status],
                          "content": {_JSON: {"schema": _ERROR}}} for status in statuses}


def _ok(description: str, schema: dict[str, Any] | None = None, status: int = 200
        ) -> dict[str, Any]:
    if schema is None:
        return {str(status): {"description": description}}
    return {str(status): {"description": description, "content": {_JSON: {"schema": schema}}}}


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": schema}}}


def _op(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, tag: str = "v3") -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        operation["requestBody"] = body
    if params:
        operation["parameters"] = params
    return operation


def _list_of(ref: str) -> dict[str, Any]:
    return {"type": "object", "required": ["data"],
            "properties": {"kind": {"type": "string"},
                           "data": {"type": "array", "items": {"$ref": ref}}}}


_OBJECT = {"type": "object"}
_CLUSTER = [_path_param("cluster_id")]
_TOPIC = [*_CLUSTER, _path_param("topic_name")]
_GROUP = [*_CLUSTER, _path_param("consumer_group_id")]
_INSTANCE = [_path_param("group_name"), _path_param("instance")]
_PARTITION_LIST = {
    "type": "object", "required": ["partitions"],
    "properties": {"partitions": {"type": "array", "items": {
        "type": "object", "required": ["topic", "partition"],
        "properties": {"topic": {"type": "string"},
                       "partition": {"type": "integer", "minimum": 0}}}}},
}
_OFFSET_LIST = {
    "type": "object", "required": ["offsets"],
    "properties": {"offsets": {"type": "array", "items": {
        "type": "object", "required": ["topic", "partition", "offset"],
        "properties": {"topic": {"type": "string"},
                       "partition": {"type": "integer", "minimum": 0},
                       "offset": {"type": "integer", "minimum": 0},
                       "metadata": {"type": "string"}}}}},
}

_V2_HEADERS = {"type": "array", "items": {
    "type": "object", "required": ["key"],
    "properties": {"key": {"type": "string"},
                   "value": {"type": ["string", "null"], "description": "base64"}}}}


def _v2_records(data: dict[str, Any]) -> dict[str, Any]:
    """A v2 produce request whose keys and values take the ``data`` schema."""
    return {"type": "object", "required": ["records"], "additionalProperties": False,
            "properties": {"records": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "properties": {"key": data, "value": data,
                               "partition": {"type": ["integer", "null"], "minimum": 0},
                               "headers": _V2_HEADERS,
                               "timestamp": {"type": ["integer", "null"], "minimum": 0,
                                             "description": "milliseconds since the epoch"}},
            }}}}


_V2_OFFSETS = {"type": "object", "required": ["offsets"], "properties": {
    "offsets": {"type": "array", "items": {"type": "object", "properties": {
        "partition": {"type": ["integer", "null"]}, "offset": {"type": ["integer", "null"]},
        "error_code": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]}}}},
    "key_schema_id": {"type": "null"}, "value_schema_id": {"type": "null"}}}


def _v2_produce(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    text = {"type": ["string", "null"]}
    return {"post": {
        "summary": summary, "tags": ["v2"], "parameters": params,
        "requestBody": {"required": True, "content": {
            "application/vnd.kafka.binary.v2+json": {"schema": _v2_records(text)},
            "application/vnd.kafka.json.v2+json": {"schema": _v2_records({})},
            "application/vnd.kafka.text.v2+json": {"schema": _v2_records(text)}}},
        "responses": {
            "200": {"description": "One offsets entry per record, in order (an entry with an "
                                   "error_code for a record that was not written)",
                    "content": {"application/vnd.kafka.v2+json": {"schema": _V2_OFFSETS}}},
            **_error_responses(400, 403, 404, 413, 415, 422, 503)}}}


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error_code", "message"],
        "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
    },
    "Cluster": {"type": "object", "required": ["cluster_id"],
                "properties": {"cluster_id": {"type": "string"}, "kind": {"type": "string"}}},
    "Broker": {"type": "object", "required": ["broker_id", "host", "port"],
               "properties": {"broker_id": {"type": "integer"}, "host": {"type": "string"},
                              "port": {"type": "integer"}}},
    "Topic": {
        "type": "object",
        "required": ["topic_name", "partitions_count", "replication_factor", "is_internal"],
        "properties": {"topic_name": {"type": "string"}, "partitions_count": {"type": "integer"},
                       "replication_factor": {"type": "integer"},
                       "is_internal": {"type": "boolean"}, "topic_id": {"type": "string"}},
    },
    "NewTopic": {
        "type": "object", "required": ["topic_name"],
        "properties": {
            "topic_name": {"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"},
            "partitions_count": {"type": "integer", "minimum": 1, "maximum": 10000},
            "replication_factor": {"type": "integer", "minimum": 1},
            "validate_only": {"type": "boolean"},
            "configs": {"type": "array", "items": {
                "type": "object", "required": ["name", "value"],
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}},
        },
    },
    "Partition": {
        "type": "object", "required": ["partition_id", "leader", "replicas"],
        "properties": {"partition_id": {"type": "integer"}, "leader": _OBJECT,
                       "replicas": {"type": "array"}, "earliest_offset": {"type": "integer"},
                       "latest_offset": {"type": "integer"}},
    },
    "TopicConfig": {
        "type": "object", "required": ["name", "value", "is_default"],
        "properties": {"name": {"type": "string"}, "value": {"type": ["string", "null"]},
                       "is_default": {"type": "boolean"}, "source": {"type": "string"}},
    },
    "Data": {
        "type": ["object", "null"],
        "properties": {"type": {"type": "string", "enum": ["JSON", "STRING", "BINARY"]},
                       "data": {}},
    },
    "ProduceRequest": {
        "type": "object",
        "properties": {
            "partition_id": {"type": ["integer", "null"], "minimum": 0},
            "key": {"$ref": "#/components/schemas/Data"},
            "value": {"$ref": "#/components/schemas/Data"},
            "headers": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string"},
                               "value": {"type": ["string", "null"], "format": "byte"}}}},
            "timestamp": {"type": ["string", "integer", "null"]},
        },
    },
    "ProduceResponse": {
        "type": "object", "required": ["error_code"],
        "properties": {"error_code": {"type": "integer"}, "partition_id": {"type": "integer"},
                       "offset": {"type": "integer"}, "timestamp": {"type": "string"},
                       "topic_name": {"type": "string"}, "message": {"type": "string"}},
    },
    "ConsumerGroup": {
        "type": "object", "required": ["consumer_group_id", "state"],
        "properties": {"consumer_group_id": {"type": "string"}, "state": {"type": "string"},
                       "members_count": {"type": "integer"}},
    },
    "Consumer": {
        "type": "object", "required": ["consumer_id"],
        "properties": {"consumer_id": {"type": "string"}, "client_id": {"type": "string"},
                       "assignments": {"type": "array"}},
    },
    "ConsumerLag": {
        "type": "object",
        "required": ["topic_name", "partition_id", "current_offset", "log_end_offset", "lag"],
        "properties": {"topic_name": {"type": "string"}, "partition_id": {"type": "integer"},
                       "current_offset": {"type": "integer"},
                       "log_end_offset": {"type": "integer"}, "lag": {"type": "integer"},
                       "consumer_id": {"type": ["string", "null"]}},
    },
    "Record": {
        "type": "object", "required": ["topic", "partition", "offset"],
        "properties": {"topic": {"type": "string"}, "partition": {"type": "integer"},
                       "offset": {"type": "integer"}, "timestamp": {"type": "integer"},
                       "key": {}, "value": {}, "headers": {"type": "array"}},
    },
}


def _paths() -> dict[str, Any]:
    c = "/v3/clusters/{cluster_id}"
    t = c + "/topics/{topic_name}"
    g = c + "/consumer-groups/{consumer_group_id}"
    i = "/consumers/{group_name}/instances/{instance}"
    ref = "#/components/schemas/"
    return {
        "/healthz": {"get": _op("Liveness probe", _ok("Alive", _OBJECT), tag="probes")},
        "/readyz": {"get": _op("Readiness probe: storage recovered, listeners open",
                               {**_ok("Ready", _OBJECT),
                                "503": {"description": "Not ready",
                                        "content": {_JSON: {"schema": _OBJECT}}}},
                               tag="probes")},
        "/metrics": {"get": _op("Prometheus metrics (text exposition format)",
                                {"200": {"description": "Metrics",
                                         "content": {"text/plain": {"schema": {
                                             "type": "string"}}}}}, tag="probes")},
        "/openapi.json": {"get": _op("This document", _ok("OpenAPI 3", _OBJECT), tag="probes")},
        "/v3/clusters": {"get": _op("List clusters (this broker's)",
                                    _ok("Clusters", _list_of(ref + "Cluster")))},
        c: {"get": _op("Get the cluster", {**_ok("Cluster", {"$ref": ref + "Cluster"}),
                                           **_error_responses(404)}, params=_CLUSTER)},
        c + "/brokers": {"get": _op("List brokers", {**_ok("Brokers", _list_of(ref + "Broker")),
                                                     **_error_responses(404)}, params=_CLUSTER)},
        c + "/topics": {
            "get": _op("List topics", {**_ok("Topics", _list_of(ref + "Topic")),
                                       **_error_responses(404)},
                       params=[*_CLUSTER, _query_param("include_internal", {
                           "type": "string", "enum": ["true", "false"]},
                           "list internal topics too")]),
            "post": _op("Create a topic",
                        {**_ok("Created", {"$ref": ref + "Topic"}, status=201),
                         **_ok("Validated only", _OBJECT),
                         **_error_responses(400, 404, 409, 413)},
                        body=_body({"$ref": ref + "NewTopic"}), params=_CLUSTER),
        },
        t: {
            "get": _op("Get a topic", {**_ok("Topic", {"$ref": ref + "Topic"}),
                                       **_error_responses(404)}, params=_TOPIC),
            "delete": _op("Delete a topic", {**_ok("Deleted", status=204),
                                             **_error_responses(403, 404)}, params=_TOPIC),
        },
        t + "/partitions": {"get": _op("List partitions", {
            **_ok("Partitions", _list_of(ref + "Partition")), **_error_responses(404)},
            params=_TOPIC)},
        t + "/partitions/{partition_id}": {"get": _op("Get a partition", {
            **_ok("Partition", {"$ref": ref + "Partition"}), **_error_responses(400, 404)},
            params=[*_TOPIC, _path_param("partition_id", {"type": "integer"})])},
        t + "/configs": {"get": _op("List topic configs", {
            **_ok("Configs", _list_of(ref + "TopicConfig")), **_error_responses(404)},
            params=_TOPIC)},
        t + "/configs:alter": {"post": _op(
            "Set or reset several topic configs",
            {**_ok("Altered", status=204), **_error_responses(400, 404, 413)},
            body=_body({"type": "object", "required": ["data"], "properties": {
                "data": {"type": "array", "items": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "value": {"type": "string"},
                                   "operation": {"type": "string",
                                                 "enum": ["SET", "DELETE"]}}}}}}),
            params=_TOPIC)},
        t + "/configs/{name}": {
            "get": _op("Get a topic config", {**_ok("Config", {"$ref": ref + "TopicConfig"}),
                                              **_error_responses(404)},
                       params=[*_TOPIC, _path_param("name")]),
            "put": _op("Set a topic config", {**_ok("Updated", status=204),
                                              **_error_responses(400, 404, 413)},
                       body=_body({"type": "object", "required": ["value"],
                                   "properties": {"value": {"type": "string"}}}),
                       params=[*_TOPIC, _path_param("name")]),
            "delete": _op("Reset a topic config to its default",
                          {**_ok("Reset", status=204), **_error_responses(400, 404)},
                          params=[*_TOPIC, _path_param("name")]),
        },
        t + "/records": {"post": _op(
            "Produce records. One JSON object: one JSON result. Several concatenated objects "
            "or a chunked body (streaming mode): newline-delimited JSON results, one per record.",
            {"200": {"description": "Produced (or one result per record in streaming mode)",
                     "content": {_JSON: {"schema": {"$ref": ref + "ProduceResponse"}},
                                 "application/x-ndjson": {"schema": {"type": "string"}}}},
             **_error_responses(400, 403, 404, 413, 503)},
            body=_body({"$ref": ref + "ProduceRequest"}), params=_TOPIC)},
        t + "/stream": {"get": _op(
            "Server-Sent Events of a topic's records from an offset, a timestamp, a group's "
            "committed position, the beginning or the end",
            {"200": {"description": "text/event-stream of `record` events",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
             **_error_responses(400, 404, 503)},
            params=[*_TOPIC,
                    _query_param("partition", {"type": "integer", "minimum": 0},
                                 "one partition (default all)"),
                    _query_param("offset", {"type": "integer", "minimum": 0}, "start offset"),
                    _query_param("timestamp", {"type": "string"},
                                 "start at the first record at/after (ms or ISO 8601)"),
                    _query_param("group", {"type": "string"},
                                 "start at this group's committed offsets"),
                    _query_param("reset", {"type": "string", "enum": ["earliest", "latest"]},
                                 "where to start for partitions the group never committed"),
                    _query_param("from", {"type": "string", "enum": ["beginning", "end"]},
                                 "start at the beginning or the end (default end)"),
                    _query_param("format", {"type": "string",
                                            "enum": ["json", "string", "binary"]},
                                 "rendering of keys and values"),
                    _query_param("limit", {"type": "integer", "minimum": 1},
                                 "end the stream after this many records"),
                    _query_param("keepalive_ms", {"type": "integer", "minimum": 10},
                                 "interval of keep-alive comments")])},
        c + "/consumer-groups": {"get": _op("List consumer groups", {
            **_ok("Groups", _list_of(ref + "ConsumerGroup")), **_error_responses(404, 503)},
            params=_CLUSTER)},
        g: {"get": _op("Get a consumer group", {
            **_ok("Group", {"$ref": ref + "ConsumerGroup"}), **_error_responses(404, 503)},
            params=_GROUP)},
        g + "/consumers": {"get": _op("List a group's consumers and their assignments", {
            **_ok("Consumers", _list_of(ref + "Consumer")), **_error_responses(404, 503)},
            params=_GROUP)},
        g + "/lags": {"get": _op("Lag per partition of a group", {
            **_ok("Lags", _list_of(ref + "ConsumerLag")), **_error_responses(404, 503)},
            params=_GROUP)},
        g + "/lag-summary": {"get": _op("Total and maximum lag of a group", {
            **_ok("Lag summary", _OBJECT), **_error_responses(404, 503)}, params=_GROUP)},
        "/topics/{topic_name}": _v2_produce(
            "Produce records (v2: Confluent REST Proxy v2, Redpanda, Strimzi bridge)",
            [_path_param("topic_name")]),
        "/topics/{topic_name}/partitions/{partition_id}": _v2_produce(
            "Produce records to one partition (v2)",
            [_path_param("topic_name"), _path_param("partition_id", {"type": "integer"})]),
        "/consumers/{group_name}": {"post": _op(
            "Create a consumer instance (a real Kafka consumer in the group)",
            {**_ok("Created", {"type": "object", "required": ["instance_id", "base_uri"],
                               "properties": {"instance_id": {"type": "string"},
                                              "base_uri": {"type": "string"}}}),
             **_error_responses(400, 409, 413, 503)},
            body=_body({"type": "object", "properties": {
                "name": {"type": "string"},
                "format": {"type": "string", "enum": ["binary", "json", "string"]},
                "auto.offset.reset": {"type": "string", "enum": ["earliest", "latest"]},
                "auto.commit.enable": {"type": "string", "enum": ["true", "false"]}}}),
            params=[_path_param("group_name")], tag="v2")},
        i: {"delete": _op("Delete a consumer instance", {
            **_ok("Deleted", status=204), **_error_responses(404)}, params=_INSTANCE, tag="v2")},
        i + "/subscription": {
            "post": _op("Subscribe to topics or a pattern", {
                **_ok("Subscribed", status=204), **_error_responses(400, 404, 413)},
                body=_body({"type": "object", "properties": {
                    "topics": {"type": "array", "items": {"type": "string"}},
                    "topic_pattern": {"type": "string"}}}), params=_INSTANCE, tag="v2"),
            "get": _op("Current subscription", {
                **_ok("Topics", {"type": "object", "properties": {"topics": {"type": "array"}}}),
                **_error_responses(404)}, params=_INSTANCE, tag="v2"),
            "delete": _op("Unsubscribe", {**_ok("Unsubscribed", status=204),
                                          **_error_responses(404)}, params=_INSTANCE, tag="v2"),
        },
        i + "/assignments": {
            "post": _op("Assign partitions manually", {
                **_ok("Assigned", status=204), **_error_responses(400, 404, 413)},
                body=_body(_PARTITION_LIST), params=_INSTANCE, tag="v2"),
            "get": _op("Current assignment", {**_ok("Partitions", _PARTITION_LIST),
                                              **_error_responses(404)},
                       params=_INSTANCE, tag="v2"),
        },
        i + "/positions": {"post": _op("Seek partitions to offsets", {
            **_ok("Seeked", status=204), **_error_responses(400, 404, 409, 413)},
            body=_body(_OFFSET_LIST), params=_INSTANCE, tag="v2")},
        i + "/positions/beginning": {"post": _op("Seek partitions to their beginning", {
            **_ok("Seeked", status=204), **_error_responses(400, 404, 413)},
            body=_body(_PARTITION_LIST), params=_INSTANCE, tag="v2")},
        i + "/positions/end": {"post": _op("Seek partitions to their end", {
            **_ok("Seeked", status=204), **_error_responses(400, 404, 413)},
            body=_body(_PARTITION_LIST), params=_INSTANCE, tag="v2")},
        i + "/records": {"get": _op("Fetch records (long-poll up to `timeout` ms)", {
            **_ok("Records", {"type": "array", "items": {"$ref": ref + "Record"}}),
            **_error_responses(400, 404)},
            params=[*_INSTANCE,
                    _query_param("timeout", {"type": "integer", "minimum": 0},
                                 "longest wait for records in ms (at most 30000)"),
                    _query_param("max_bytes", {"type": "integer", "minimum": 1},
                                 "approximate bound on key+value bytes returned")], tag="v2")},
        i + "/offsets": {
            "post": _op("Commit offsets (no body: the positions of everything fetched)", {
                **_ok("Committed", status=204), **_error_responses(400, 404, 409, 413)},
                body=_body(_OFFSET_LIST, required=False), params=_INSTANCE, tag="v2"),
            "get": _op("Committed offsets (body: partitions; none: the assignment)", {
                **_ok("Offsets", _OFFSET_LIST), **_error_responses(400, 404)},
                params=_INSTANCE, tag="v2"),
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Headrace HTTP API",
            "version": __version__,
            "description": "REST API of a Headrace broker, following Confluent REST Proxy "
                           "conventions (v3 admin and produce, v2 consumer instances). Errors "
                           "are {error_code, message}; see docs/http-api.md.",
        },
        "paths": _paths(),
        "components": {"schemas": _SCHEMAS},
    }


__all__ = ["openapi_document"]
