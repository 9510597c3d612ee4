"""What TLS costs: produce (and consume) over an SSL listener against the PLAINTEXT listener of
the same broker, in one run.

One ``headrace broker`` of this tree (ephemeral ports on 127.0.0.1, a temporary data dir, a
throwaway CA and certificate from trustme) serves both listeners. Each round produces
``--records`` 100-byte records (confluent-kafka, acks=all, linger.ms=5, as
``bench/kafka_bench.py``) to a fresh topic over each listener and reads them back; which
listener goes first alternates round by round. Reported: the median records/s per listener, the
broker's CPU seconds per million records, and the median over rounds of the paired ratios
TLS/plaintext (rounds next to each other share the machine's speed of the moment). Over TLS
fetched records are read from segment files and encrypted; over PLAINTEXT they go with
``sendfile``.

Usage (from the repository root)::

    python bench/tls_ab.py [--records 200000] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import trustme

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("kafka_bench_client", HERE / "kafka_bench.py")


def write_certificates(directory: Path) -> dict[str, str]:
    """A CA and a broker certificate for 127.0.0.1; the client settings that trust it."""
    authority = trustme.CA()
    leaf = authority.issue_cert("127.0.0.1", "localhost")
    (directory / "broker.pem").write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(directory / "broker-key.pem"))
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    return {"security.protocol": "SSL", "ssl.ca.location": str(directory / "ca.pem")}


def start_broker(home: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'broker'}{os.pathsep}{ROOT / 'operator'}")
    ready = home / "ready.json"
    with (home / "broker.log").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace", "broker", "--data-dir", str(home / "data"),
             "--kafka-listen", "127.0.0.1:0", "--listener", "SSL=SSL://127.0.0.1:0",
             "--tls-cert", str(home / "broker.pem"), "--tls-key", str(home / "broker-key.pem"),
             "--http-listen", "127.0.0.1:0", "--ready-file", str(ready),
             "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("broker did not start:\n"
                               + (home / "broker.log").read_text()[-2000:])
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["listeners"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="records per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    figures: dict[str, dict[str, list[float]]] = {
        name: {"produce": [], "consume": [], "cpu": []} for name in ("plaintext", "tls")}
    with tempfile.TemporaryDirectory(prefix="tls-ab-") as workdir:
        home = Path(workdir)
        tls = write_certificates(home)
        process, ports = start_broker(home)
        configs = {
            "plaintext": {"bootstrap.servers": f"127.0.0.1:{ports['PLAINTEXT']}"},
            "tls": {"bootstrap.servers": f"127.0.0.1:{ports['SSL']}", **tls},
        }
        try:
            for round_index in range(args.rounds):
                order = ["plaintext", "tls"] if round_index % 2 == 0 else ["tls", "plaintext"]
                for name in order:
                    topic = f"tls-ab-{uuid.uuid4().hex[:8]}"
                    before = bench.process_cpu_seconds(process.pid)
                    rate, _ = bench.produce_throughput(configs[name], topic, args.records)
                    after = bench.process_cpu_seconds(process.pid)
                    consumed, received = bench.consume_throughput(configs[name], topic,
                                                                  args.records)
                    if received != args.records:
                        raise RuntimeError(f"{name}: consumed {received} of {args.records}")
                    figures[name]["produce"].append(rate)
                    figures[name]["consume"].append(consumed)
                    figures[name]["cpu"].append((after - before) / args.records * 1e6)
        finally:
            process.terminate()
            process.wait(30)
    plain, secure = figures["plaintext"], figures["tls"]

    def paired(key: str) -> float:
        return round(statistics.median(
            t / p for p, t in zip(plain[key], secure[key], strict=True)), 3)

    result: dict[str, Any] = {
        "records": args.records, "rounds": args.rounds,
        **{name: {"produce_records_per_s": round(statistics.median(f["produce"])),
                  "consume_records_per_s": round(statistics.median(f["consume"])),
                  "broker_cpu_s_per_million_produced": round(statistics.median(f["cpu"]), 2),
                  "rounds_produce": [round(r) for r in f["produce"]]}
           for name, f in figures.items()},
        "median_paired_ratio_tls_to_plaintext": {
            "produce": paired("produce"), "consume": paired("consume"),
            "broker_cpu_per_produced_record": paired("cpu")},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name in ("plaintext", "tls"):
            row = result[name]
            print(f"{name}: produce {row['produce_records_per_s']:,}/s "
                  f"(rounds {row['rounds_produce']}), consume "
                  f"{row['consume_records_per_s']:,}/s, broker CPU "
                  f"{row['broker_cpu_s_per_million_produced']} s/M produced")
        ratios = result["median_paired_ratio_tls_to_plaintext"]
        print("median paired ratio TLS/plaintext: "
              + ", ".join(f"{k} {v}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
