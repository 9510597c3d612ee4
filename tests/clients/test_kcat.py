"""kcat (Debian's build on an older librdkafka): metadata, produce and consume with headers."""

from __future__ import annotations

import shutil
import subprocess
import uuid

from tests.support.brokers import BrokerProcess

KCAT = shutil.which("kcat") or shutil.which("kafkacat")  # tests/tools/install.sh installs it


def _kcat(*args: str, stdin: str | None = None) -> str:
    assert KCAT is not None, "kcat missing: run tests/tools/install.sh"
    result = subprocess.run(
        [KCAT, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kcat_metadata_produce_consume(broker: BrokerProcess) -> None:
    topic = f"kcat-{uuid.uuid4().hex[:8]}"
    lines = [f"key{i % 2}:value {i}" for i in range(10)]
    _kcat("-b", broker.bootstrap, "-P", "-t", topic, "-K:", "-H", "source=kcat",
          "-H", "trace=abc", stdin="\n".join(lines) + "\n")

    listing = _kcat("-b", broker.bootstrap, "-L", "-t", topic)
    assert f"broker 1 at {broker.bootstrap} (controller)" in listing
    assert f'topic "{topic}" with 1 partitions' in listing

    out = _kcat("-b", broker.bootstrap, "-C", "-t", topic, "-e", "-o", "beginning",
                "-f", "%k|%s|%o|%h\n")
    rows = [line.split("|") for line in out.splitlines() if line]
    assert [(k, s, int(o)) for k, s, o, _ in rows] == [
        (f"key{i % 2}", f"value {i}", i) for i in range(10)
    ]
    assert all(h == "source=kcat,trace=abc" for *_, h in rows)

    tail = _kcat("-b", broker.bootstrap, "-C", "-t", topic, "-e", "-o", "-3", "-f", "%s\n")
    assert tail.splitlines() == ["value 7", "value 8", "value 9"]
