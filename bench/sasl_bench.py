"""SASL connection setup: how much longer a SCRAM-SHA-256 (and PLAIN) connection takes to become
usable than a PLAINTEXT one, measured in one run.

Starts two ``headrace broker`` processes: one PLAINTEXT listener, one SASL_PLAINTEXT listener
(``--scram-user``). Each *setup* is: TCP connect, ApiVersions, (SaslHandshake and
SaslAuthenticate: one round trip for PLAIN, two for SCRAM, the client's proof by scramp), then
one Metadata request answered — what a client pays before its first useful request. Rounds
alternate the kinds; the ratio is the median of per-round ratios of the median setup time.
Client-side PBKDF2 (SCRAM's salted password, 4096 iterations) is part of a SCRAM setup, as it is
for every real client; PLAIN's server-side PBKDF2 is part of a PLAIN setup.

    python bench/sasl_bench.py [--connections 200] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import scramp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "broker"))
sys.path.insert(0, str(ROOT))

from tests.server.wire import WireClient  # noqa: E402
from tests.support.brokers import BrokerProcess  # noqa: E402

USER, PASSWORD = "bench", "bench-password"


async def setup(port: int, kind: str) -> float:
    started = time.perf_counter()
    wire = await WireClient.connect(port)
    try:
        await wire.request(18, 3, client_software_name="bench", client_software_version="1")
        if kind == "PLAIN":
            await wire.request(17, 1, mechanism="PLAIN")
            done = await wire.request(36, 2, auth_bytes=f"\0{USER}\0{PASSWORD}".encode())
            assert done.error_code == 0, done
        elif kind == "SCRAM-SHA-256":
            await wire.request(17, 1, mechanism=kind)
            client = scramp.ScramClient([kind], USER, PASSWORD)
            first = await wire.request(36, 2, auth_bytes=client.get_client_first().encode())
            client.set_server_first(first.auth_bytes.decode())
            final = await wire.request(36, 2, auth_bytes=client.get_client_final().encode())
            assert final.error_code == 0, final
            client.set_server_final(final.auth_bytes.decode())
        metadata = await wire.request(3, 4, topics=(), allow_auto_topic_creation=False)
        assert metadata.brokers
        return time.perf_counter() - started
    finally:
        await wire.close()


async def measure(ports: dict[str, int], connections: int, rounds: int) -> dict[str, Any]:
    per_round: list[dict[str, float]] = []
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        medians = {}
        for kind, port in ports.items():
            times = [await setup(port, kind) for _ in range(connections)]
            medians[kind] = statistics.median(times)
        per_round.append(medians)
    per_round = per_round[1:]
    result: dict[str, Any] = {"connections_per_round": connections, "rounds": rounds,
                              "median_setup_ms": {}, "ratio_vs_plaintext": {}}
    for kind in ports:
        result["median_setup_ms"][kind] = round(
            statistics.median(r[kind] for r in per_round) * 1000, 3)
        if kind != "PLAINTEXT":
            result["ratio_vs_plaintext"][kind] = round(
                statistics.median(r[kind] / r["PLAINTEXT"] for r in per_round), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        plain = BrokerProcess(Path(home) / "plaintext").start()
        sasl = BrokerProcess(Path(home) / "sasl", (
            "--listener", "SASL_PLAINTEXT://127.0.0.1:0",
            "--sasl-mechanisms", "PLAIN,SCRAM-SHA-256", "--scram-user", f"{USER}:{PASSWORD}",
        )).start()
        try:
            result = asyncio.run(measure(
                {"PLAINTEXT": plain.kafka_port, "SCRAM-SHA-256": sasl.kafka_port,
                 "PLAIN": sasl.kafka_port}, args.connections, args.rounds))
        finally:
            plain.stop()
            sasl.stop()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for kind, ms in result["median_setup_ms"].items():
            ratio = result["ratio_vs_plaintext"].get(kind)
            print(f"{kind:14} {ms:8.3f} ms" + (f"  {ratio}x PLAINTEXT" if ratio else ""))


if __name__ == "__main__":
    main()
