"""A consume-transform-produce processor (run as a subprocess, killed with -9 by the tests).

Reads ``input`` in group ``etl`` (read_committed), writes each value with ``-out`` appended to
``output`` and commits its consumer offsets in the same transaction through
``send_offsets_to_transaction``: the exactly-once loop of KIP-98/KIP-447.

Usage: ``python -m tests.transactions.processor BOOTSTRAP``
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer, Producer


def main(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "etl-processor",
                         "socket.timeout.ms": 10_000})
    producer.init_transactions(60)  # fences (and aborts) the previous incarnation
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": "etl", "isolation.level": "read_committed",
        "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
    })
    consumer.subscribe(["input"])
    while True:
        messages = [m for m in consumer.consume(20, 0.5) if m.error() is None]
        if not messages:
            continue
        producer.begin_transaction()
        for message in messages:
            producer.produce("output", value=message.value() + b"-out",
                             partition=message.partition())
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
        )
        producer.commit_transaction(30)
        print(f"committed {len(messages)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
