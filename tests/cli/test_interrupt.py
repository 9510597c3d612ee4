"""docs/cli.md's exit code 130: Ctrl-C ends a client command quietly, as a shell expects."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.support.brokers import ROOT, BrokerProcess, subprocess_env
from tests.support.clients import confluent_producer, create_topic


def test_ctrl_c_during_consume_is_exit_130_without_a_traceback(broker: BrokerProcess) -> None:
    create_topic(broker.bootstrap, "interrupted", 1)
    producer = confluent_producer(broker.bootstrap)
    producer.produce("interrupted", b"first")
    assert producer.flush(20) == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace", "consume", "interrupted", "--from-beginning",
         "-b", broker.bootstrap],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
        cwd=ROOT)
    try:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline() == "first\n"  # consuming: now interrupt it
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
