"""REST produce parsing, batch building and record rendering, without a server."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from headrace.record import (
    build_batch,
    iter_records,
    new_batch_builder,
)
from headrace.web.records import (
    MAX_TIMESTAMP_MS,
    InvalidRecordError,
    JsonStream,
    PartitionBatch,
    RequestBatches,
    UnknownPartitionError,
    choose_partition,
    format_timestamp,
    parse_produce_request,
    parse_timestamp,
    parse_v2_produce,
    render_record,
    split_json_body,
    split_json_values,
)
from headrace.web.records import v2 as records_module


def test_all_three_data_types_and_headers() -> None:
    record = parse_produce_request({
        "partition_id": 2,
        "key": {"type": "STRING", "data": "user-1"},
        "value": {"type": "JSON", "data": {"n": 1, "s": "é"}},
        "headers": [{"name": "h", "value": base64.b64encode(b"\x00\x01").decode()},
                    {"name": "empty", "value": None}],
        "timestamp": "2024-02-05T19:14:42.123Z",
    })
    assert record.partition == 2
    assert record.key == b"user-1"
    assert json.loads(record.value or b"") == {"n": 1, "s": "é"}
    assert record.headers == [("h", b"\x00\x01"), ("empty", None)]
    assert record.timestamp_ms == 1707160482123
    binary = parse_produce_request({"value": {"type": "BINARY", "data": "AAEC"}})
    assert binary.value == b"\x00\x01\x02" and binary.key is None and binary.partition is None


@pytest.mark.parametrize(("body", "names"), [
    ([], "JSON object"),
    ({"value": {"type": "BINARY", "data": "not base64!"}}, "value.data"),
    ({"value": {"type": "XML", "data": "x"}}, "value.type"),
    ({"value": {"type": "STRING", "data": 5}}, "value.data"),
    ({"value": {"type": "STRING"}}, "value.data"),
    ({"key": "plain"}, "key"),
    ({"partition_id": -1}, "partition_id"),
    ({"partition_id": "0"}, "partition_id"),
    ({"partition_id": True}, "partition_id"),
    ({"headers": [{"name": "h", "value": "%%%"}]}, "headers[0].value"),
    ({"headers": {"name": "h"}}, "headers"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": -5}, "timestamp"),
    ({"timestamp": 10**15}, "timestamp"),  # past 9999: its answer could not show it
    ({"colour": 1}, "colour"),
])
def test_bad_requests_name_the_problem(body: Any, names: str) -> None:
    with pytest.raises(InvalidRecordError, match=names.replace("[", r"\[").replace("]", r"\]")):
        parse_produce_request(body)


def test_timestamps_round_trip() -> None:
    assert parse_timestamp("t", 1000) == 1000
    assert parse_timestamp("t", format_timestamp(1707160482123)) == 1707160482123
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert parse_timestamp("t", format_timestamp(MAX_TIMESTAMP_MS)) == MAX_TIMESTAMP_MS


def test_partitioner_matches_kafka_murmur2_and_round_robins_null_keys() -> None:
    # Same partition as kafka-python's independent port of the Java client's murmur2.
    for key in (b"a", b"user-1", b"\x00\xff" * 9):
        assert choose_partition(key, 10, 0) == (kafka_murmur2(key) & 0x7FFFFFFF) % 10
    assert {choose_partition(None, 3, n) for n in range(3)} == {0, 1, 2}
    assert choose_partition(b"same", 7, 0) == choose_partition(b"same", 7, 5)


def test_render_formats() -> None:
    (record,) = iter_records(build_batch([(5, b"k", b'{"a":1}', [("h", b"x")])]))
    assert render_record("t", 0, record, "json")["value"] == {"a": 1}
    assert render_record("t", 0, record, "string")["value"] == '{"a":1}'
    rendered = render_record("t", 0, record, "binary")
    assert base64.b64decode(rendered["value"]) == b'{"a":1}'
    assert rendered["headers"] == [{"name": "h", "value": "eA=="}]
    assert rendered["timestamp"] == 5 and rendered["offset"] == 0


json_objects = st.dictionaries(
    st.text(max_size=5),
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) |
    st.lists(st.integers(), max_size=3),
    max_size=4,
)


@given(st.lists(json_objects, min_size=1, max_size=8),
       st.sampled_from(["\n", " ", "\r\n", ",", "\n\n", ""]),
       st.booleans(),
       st.lists(st.integers(1, 40), min_size=1, max_size=30))
def test_a_chunked_body_yields_exactly_its_objects(objects: list[dict[str, Any]], separator: str,
                                                   pretty: bool, cuts: list[int]) -> None:
    text = separator.join(json.dumps(o, indent=2 if pretty else None, ensure_ascii=False)
                          for o in objects) + "\n"
    data = text.encode()
    stream = JsonStream()
    values: list[Any] = []
    position = 0
    for size in cuts:  # arbitrary chunk borders, also inside multi-byte UTF-8 characters
        values += stream.feed(data[position:position + size])
        position += size
    values += stream.feed(data[position:])
    assert stream.finish() is None
    assert values == objects


def test_a_broken_body_is_reported_at_the_end() -> None:
    stream = JsonStream()
    assert stream.feed(b'{"a": 1}\n{"b": ') == [{"a": 1}]
    assert stream.feed(b"nope}\n") == []
    problem = stream.finish()
    assert problem is not None and "malformed JSON" in problem
    truncated = JsonStream()
    truncated.feed(b'{"a": ')
    assert truncated.finish() is not None
    values, rest, problem = split_json_values('{"a":1} {"b":2}', complete=True)
    assert (values, rest, problem) == ([{"a": 1}, {"b": 2}], "", None)


@given(st.lists(json_objects, min_size=1, max_size=8),
       st.sampled_from(["\n", " ", "\r\n", ",", "\n\n", "", ",\n"]),
       st.booleans())
def test_a_whole_body_parses_like_the_same_body_streamed(
        objects: list[dict[str, Any]], separator: str, pretty: bool) -> None:
    # One value per line takes the one-parse path, other layouts the general parser: both must
    # give exactly what the streaming splitter gives.
    text = separator.join(json.dumps(o, indent=2 if pretty else None, ensure_ascii=False)
                          for o in objects)
    stream = JsonStream()
    streamed = stream.feed(text.encode() + b"\n")
    assert stream.finish() is None
    assert split_json_body(text.encode()) == (objects, None) == (streamed, None)


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"a": 1\n"b": 2}', "malformed JSON"),  # a newline standing for a missing comma
    (b'["a"\n"b"]', "malformed JSON"),
    (b'{"a": 1}\n{"b": ', "malformed JSON"),
    (b'{"a": 1}\n\xff', "not UTF-8"),
])
def test_a_malformed_whole_body_is_refused_even_when_lines_would_join(
        body: bytes, problem: str) -> None:
    _, found = split_json_body(body)
    assert found is not None and problem in found


def test_the_one_parse_path_keeps_what_the_general_parser_accepts() -> None:
    # Big integers stay exact (a reason not to use orjson).
    assert split_json_body(b'{"n": 123456789012345678901234567890}\n{"m": 1}') == (
        [{"n": 123456789012345678901234567890}, {"m": 1}], None)
    assert split_json_body(b"  \n ") == ([], None)


@pytest.mark.parametrize("body", [b'{"n": NaN}\n{"m": 1}', b'{"n": -Infinity}', b"[Infinity]"])
def test_nan_and_infinity_are_not_json(body: bytes) -> None:
    # Python's parser accepts them, but a JSON-typed value would then be stored as text that no
    # JSON parser reads back.
    _, problem = split_json_body(body)
    assert problem is not None and "not JSON" in problem
    assert not RequestBatches("t", 1, 0).add_lines(body)


def test_a_lone_surrogate_is_a_bad_record_not_a_crash() -> None:
    with pytest.raises(InvalidRecordError, match=r"value\.data"):
        parse_produce_request({"value": {"type": "STRING", "data": "\ud800"}})
    with pytest.raises(InvalidRecordError, match=r"key\.data"):
        parse_produce_request({"key": {"type": "JSON", "data": ["\udfff"]}})


# -- the fast path (msgspec) must agree with the general path ----------------------------------

data_specs = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["STRING", "string", "JSON", "BINARY", "XML"]),
                           "data": st.none() | st.text(max_size=6) | st.integers()
                           | st.sampled_from(["AAEC", "%%", "aGk="]) | json_objects}),
    st.fixed_dictionaries({"data": json_objects | st.integers(-2**70, 2**70) | st.floats(
        allow_nan=False, allow_infinity=False)}),
    st.fixed_dictionaries({"type": st.just("STRING")}),  # no data
    st.fixed_dictionaries({"type": st.just("STRING"), "data": st.text(max_size=3),
                           "extra": st.integers()}),
    st.none(), st.text(max_size=3), st.integers(),
)
request_objects = st.fixed_dictionaries({}, optional={
    "partition_id": st.none() | st.integers(-2, 2**65) | st.booleans() | st.floats(0, 3)
                    | st.text(max_size=2),
    "key": data_specs,
    "value": data_specs,
    "headers": st.none() | st.lists(st.fixed_dictionaries(
        {"name": st.text(max_size=3) | st.integers()},
        optional={"value": st.none() | st.sampled_from(["aGk=", "%%"]) | st.integers(),
                  "other": st.integers()}), max_size=2) | st.integers() | st.just({}),
    "timestamp": st.none() | st.integers(-5, 10**15) | st.sampled_from(
        ["2024-02-05T19:14:42.123Z", "yesterday", "1969-12-31T00:00:00Z"]) | st.booleans(),
    "colour": st.integers(),
}) | st.integers() | st.lists(st.integers(), max_size=2)


#: The fast and the general path sort records into batches for a topic of this many partitions
#: (the strategies address some beyond it), at this time.
PARTITIONS, NOW_MS = 3, 1_700_000_000_000


def _summary(batches: RequestBatches) -> Any:
    """Everything a request's batches hold: built batches, answer positions and shapes,
    refusals, and where round-robin got to."""
    return ({partition: (batch.build(), batch.indexes, batch.shapes)
             for partition, batch in batches.batches.items()},
            {index: repr(problem) for index, problem in batches.refused.items()},
            batches.round_robin)


def _fast(body: bytes) -> Any:
    batches = RequestBatches("t", PARTITIONS, NOW_MS, round_robin=7)
    if not batches.add_lines(body):  # declined: as untouched as it was
        assert (batches.batches, batches.refused, batches.round_robin) == ({}, {}, 7)
        return None
    return _summary(batches)


def _general(values: list[Any]) -> Any:
    batches = RequestBatches("t", PARTITIONS, NOW_MS, round_robin=7)
    for index, value in enumerate(values):
        try:
            batches.add(index, parse_produce_request(value))
        except InvalidRecordError:
            return None
    return _summary(batches)


@given(st.lists(request_objects, min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]))
def test_the_fast_path_gives_what_the_general_path_gives(objects: list[Any],
                                                        newline: str) -> None:
    body = (newline.join(json.dumps(o) for o in objects) + "\n").encode()
    fast = _fast(body)
    general = _general([json.loads(line) for line in body.splitlines()])
    if fast is not None:  # it may decline anything, but what it accepts must be exact
        assert fast == general
    if general is not None and not any(_unusual(o) for o in objects):
        assert fast is not None


def _unusual(request: Any) -> bool:
    """Shapes the fast path may decline although the general path accepts them."""
    return request.get("partition_id") is not None and request["partition_id"] >= 2**63


base64_text = st.binary(max_size=9).map(lambda raw: base64.b64encode(raw).decode())
valid_data = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["STRING", "string"]), "data": st.text()}),
    st.fixed_dictionaries({"type": st.just("BINARY"), "data": base64_text}),
    st.fixed_dictionaries({"data": json_objects | st.integers(-2**70, 2**70)},
                          optional={"type": st.just("JSON"), "subject": st.text(max_size=3)}),
    st.fixed_dictionaries({"type": st.sampled_from(["STRING", "JSON", "BINARY"]),
                           "data": st.none()}),
)
valid_requests = st.fixed_dictionaries({}, optional={
    "partition_id": st.none() | st.integers(0, 2**40),
    "key": st.none() | valid_data,
    "value": st.none() | valid_data,
    "headers": st.none() | st.lists(st.fixed_dictionaries(
        {"name": st.text(max_size=3)},
        optional={"value": st.none() | base64_text}), max_size=2),
    "timestamp": st.none() | st.integers(0, 2**40) | st.sampled_from(
        ["2024-02-05T19:14:42.123Z", "2024-02-05T19:14:42+02:00"]),
})


@given(st.lists(valid_requests, min_size=1, max_size=6))
def test_valid_requests_of_every_shape_take_the_fast_path(objects: list[Any]) -> None:
    body = "\n".join(json.dumps(o, ensure_ascii=False) for o in objects).encode()
    fast = _fast(body)
    assert fast is not None
    assert fast == _general(objects)


@given(st.lists(st.fixed_dictionaries({
    "partition_id": st.integers(0, 5),
    "value": st.fixed_dictionaries({"type": st.just("STRING"), "data": st.text(max_size=20)}),
}), min_size=1, max_size=30))
def test_plain_bodies_take_the_fast_path(objects: list[Any]) -> None:
    body = "\n".join(json.dumps(o) for o in objects).encode()
    batches = RequestBatches("t", 6, NOW_MS)
    assert batches.add_lines(body)
    assert not batches.refused
    for partition, batch in batches.batches.items():
        assert [(r.offset, r.timestamp_ms, r.key, r.value, r.headers)
                for r in iter_records(batch.build())] == [
            (offset, NOW_MS, None, objects[index]["value"]["data"].encode("utf-8", "surrogatepass"),
             ()) for offset, index in enumerate(batch.indexes)]
        assert all(objects[index]["partition_id"] == partition for index in batch.indexes)
    assert sorted(i for b in batches.batches.values() for i in b.indexes) == list(
        range(len(objects)))


@pytest.mark.parametrize("body", [
    b'{"partition_id": 0\n"value": {"data": 1}}',  # a newline standing for a missing comma
    b'{"value": {"data": 1}}, {"value": {"data": 2}}',  # commas between objects
    b'{"value": {"data": 1}}\n{"value": ',
    b"",
])
def test_the_fast_path_declines_what_it_cannot_vouch_for(body: bytes) -> None:
    assert _fast(body) is None


def test_records_for_missing_partitions_are_refused_and_the_rest_written() -> None:
    batches = RequestBatches("orders", 2, NOW_MS)
    assert batches.add_lines(b'{"partition_id": 1, "value": {"type": "STRING", "data": "a"}}\n'
                             b'{"partition_id": 5, "value": {"type": "STRING", "data": "b"}}\n'
                             b'{"partition_id": 1, "value": {"type": "STRING", "data": "c"}}')
    (problem,) = batches.refused.values()
    assert isinstance(problem, UnknownPartitionError)
    assert str(problem) == "partition 5 of topic 'orders' not found (it has 2)"
    assert list(batches.refused) == [1]
    assert batches.batches[1].indexes == [0, 2]
    assert [r.value for r in iter_records(batches.batches[1].build())] == [b"a", b"c"]


def test_the_extra_header_joins_every_record_that_lacks_it() -> None:
    batches = RequestBatches("t", 1, NOW_MS, extra_header=("traceparent", b"00-abc"))
    assert batches.add_lines(
        b'{"partition_id": 0, "value": {"type": "STRING", "data": "a"}}\n'
        b'{"partition_id": 0, "value": {"type": "STRING", "data": "b"},'
        b' "headers": [{"name": "traceparent", "value": "b3du"}]}')
    assert [r.headers for r in iter_records(batches.batches[0].build())] == [
        (("traceparent", b"00-abc"),), (("traceparent", b"own"),)]


def test_null_partitions_go_round_robin_from_where_the_last_request_stopped() -> None:
    batches = RequestBatches("t", 3, NOW_MS, round_robin=4)
    assert batches.add_lines(b'{"value": {"type": "STRING", "data": "a"}}\n'
                             b'{"value": {"type": "STRING", "data": "b"}}')
    assert batches.round_robin == 6
    assert {p: b.indexes for p, b in batches.batches.items()} == {5 % 3: [0], 6 % 3: [1]}


def _builder_batch(records: list[tuple[int, bytes | None, bytes | None, list[Any]]]) -> bytes:
    """aiokafka's own batch of (timestamp, key, value, headers) records: the reference."""
    builder = new_batch_builder()
    for offset_delta, (timestamp, key, value, headers) in enumerate(records):
        builder.append(offset_delta, timestamp, key, value, headers)
    return bytes(builder.build())


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=20)), min_size=1, max_size=30))
def test_partition_batches_of_plain_and_other_records_build_what_aiokafka_builds(
        records: list[tuple[bool, bytes]]) -> None:
    # Plain records (kept as values) and keyed ones (which move them into the builder),
    # in any order and of any sizes (mixed sizes are the builder's too).
    batch = PartitionBatch(NOW_MS)
    expected: list[tuple[int, bytes | None, bytes | None, list[Any]]] = []
    for offset_delta, (keyed, value) in enumerate(records):
        if keyed:
            batch.append(offset_delta, NOW_MS + 1, b"k", value, [("h", None)])
            expected.append((NOW_MS + 1, b"k", value, [("h", None)]))
        else:
            batch.append_plain(value)
            expected.append((NOW_MS, None, value, []))
        batch.indexes.append(offset_delta)
    assert batch.build() == _builder_batch(expected)


@given(st.sampled_from([None, 0, 2, 3, 7]),
       st.lists(st.text(max_size=8) | st.sampled_from(["\ud800", "é", "x" * 70]), min_size=1,
                max_size=12),
       st.booleans())
def test_plain_bodies_of_one_partition_or_none_batch_as_the_general_path_does(
        partition: int | None, data: list[str], write_partition: bool) -> None:
    # The whole-list path: one partition for all (or round-robin from 7), sizes alike or not,
    # a partition the topic lacks, text that is no UTF-8 (a lone surrogate).
    objects: list[dict[str, Any]] = [{"value": {"type": "STRING", "data": text}}
                                     for text in data]
    if write_partition or partition is not None:
        for record in objects:
            record["partition_id"] = partition
    body = "\n".join(json.dumps(o) for o in objects).encode()
    assert _fast(body) == _general(objects)


# -- v2: the whole-list path for plain records agrees with the per-record one -----------------

v2_plain_records = st.lists(st.fixed_dictionaries(
    {"value": st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode())
     | st.sampled_from(["aGk", "aGl=", "YR==", "%%", "", "aGk=\n"])},
    optional={"partition": st.sampled_from([0, 1, 4])}), max_size=8)


@given(v2_plain_records, st.sampled_from(["BINARY", "STRING"]),
       st.sampled_from([None, 1, 5]), st.booleans())
def test_v2_plain_requests_batch_as_the_per_record_path_does(
        records: list[dict[str, Any]], data_type: str, url_partition: int | None,
        same_partition: bool) -> None:
    if same_partition:  # one partition for all: the whole-list path's shape
        records = [{**record, "partition": 1} for record in records]
    body = json.dumps({"records": records}).encode()

    def batched(whole_list: bool) -> Any:
        batches = RequestBatches("t", PARTITIONS, NOW_MS, round_robin=7)
        original = records_module._add_v2_plain
        if not whole_list:
            records_module._add_v2_plain = lambda *args: 0
        try:
            count = parse_v2_produce(body, data_type, batches, url_partition)
        except InvalidRecordError as exc:
            return type(exc)
        finally:
            records_module._add_v2_plain = original
        # v2 answers say nothing of a record's shape: batches, positions, refusals count.
        built = {partition: (batch.build(), batch.indexes)
                 for partition, batch in batches.batches.items()}
        refused = {index: repr(problem) for index, problem in batches.refused.items()}
        return count, built, refused, batches.round_robin

    assert batched(True) == batched(False)


@given(st.text(alphabet="aGkYQR=+/-_ \n\u00e9", max_size=10))
def test_msgspec_base64_is_as_strict_as_binascii(text: str) -> None:
    # The v2 whole-list path lets msgspec decode base64; the per-record path uses binascii's
    # strict mode. Whatever msgspec takes, binascii takes alike (msgspec refuses a little more,
    # "QUJD=" say, which then goes the per-record way and is judged there).
    body = json.dumps({"records": [{"value": text}]}).encode()
    try:
        expected: Any = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        expected = None
    batches = RequestBatches("t", 1, NOW_MS)
    added = records_module._add_v2_plain(body, "BINARY", batches, None)
    if added:
        assert expected is not None and batches.batches[0].plain == [expected]
    else:
        assert not batches.batches
