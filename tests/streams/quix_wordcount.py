"""A Quix Streams word count with ``processing_guarantee="exactly-once"`` (a subprocess of
tests/streams/test_quix_streams.py, killed with -9 by it).

Sentences from ``sentences`` are split into words, regrouped by word (``group_by``: a
repartition topic), counted in a RocksDB state store backed by a changelog topic, and each new
count is written to ``word-counts`` as ``word -> "n"``. Every checkpoint commits the outputs,
the changelog and the consumer offsets in one Kafka transaction. Prints ``counted <word> <n>``
per record (before its commit: the test only uses it to see the processor working).

Usage: ``python -m tests.streams.quix_wordcount BOOTSTRAP STATE_DIR``
"""

from __future__ import annotations

import sys
from typing import Any

from quixstreams import Application, State


def count(word: str, state: State) -> str:
    total = int(state.get("count", 0)) + 1
    state.set("count", total)
    print(f"counted {word} {total}", flush=True)
    return str(total)


def main(bootstrap: str, state_dir: str) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group="quix-wordcount",
        processing_guarantee="exactly-once",
        auto_offset_reset="earliest",
        commit_interval=0.5,
        state_dir=state_dir,
        loglevel="INFO",
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
    )
    sentences = app.topic("sentences", key_deserializer="str", value_deserializer="str")
    counts = app.topic("word-counts", key_serializer="str", value_serializer="str")
    frame: Any = app.dataframe(sentences)
    frame = frame.apply(lambda sentence: sentence.split(), expand=True)
    frame = frame.group_by(lambda word: word, name="by-word")
    frame = frame.apply(count, stateful=True)
    frame.to_topic(counts)
    app.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
