"""A KIP-848 consumer (confluent-kafka, ``group.protocol=consumer``) kept alive on a thread, for
tests that look at its group from outside (HTTP API, CLI, metrics) while it heartbeats.

It reads ``commit_after`` records, commits them synchronously and then keeps polling (reading
on, committing nothing more), so records produced afterwards show as lag.
"""

from __future__ import annotations

import threading
from types import TracebackType

from confluent_kafka import Consumer

from tests.support.waiting import eventually


class Kip848Consumer:
    def __init__(self, bootstrap: str, group: str, topic: str, commit_after: int) -> None:
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })
        self.consumer.subscribe([topic])
        self.commit_after = commit_after
        self.read = 0
        self.committed = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kip848-consumer", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                message = self.consumer.poll(0.1)
                if message is None or message.error() is not None:
                    continue
                self.read += 1
                if self.read == self.commit_after:
                    self.consumer.commit(asynchronous=False)
                    self.committed.set()
        except BaseException as error:  # reported by wait_committed / __exit__
            self.error = error

    def wait_committed(self, timeout: float = 30) -> None:
        eventually(lambda: self.committed.is_set() or self.error is not None, timeout=timeout,
                   message=f"the KIP-848 consumer to read and commit {self.commit_after}")
        assert self.error is None, self.error

    def __enter__(self) -> Kip848Consumer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.consumer.close()
        assert self.error is None, self.error
