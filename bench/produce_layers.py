"""Where one small Produce request's broker time goes, layer by layer, in one process.

``bench/request_path_ab.py`` measures whole brokers over sockets, whose per-round spread on this
shared machine (often 10 to 30 %) hides differences of a few microseconds. This one builds a broker
in-process (the composition root, no listener traffic) and times, per request, with
``time.process_time`` (best of ``--rounds`` passes over ``--requests`` pre-encoded Produce v9
frames of one 100-byte record, as request_path_ab sends): the whole pipeline, its decode step,
the handler, ``Broker.produce``, ``PartitionLog.append``, and the append's checks alone.
Differences between rows locate a cost (pipeline minus handler: decode, context, observe;
handler minus produce: the per-partition loop and the response encoding; and so on).

Run it once per tree, alternating, with that tree first on the path::

    for tree in /tmp/base .; do PYTHONPATH=$tree/broker python bench/produce_layers.py; done
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _request_path_ab() -> Any:
    spec = importlib.util.spec_from_file_location("request_path_ab", HERE / "request_path_ab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["request_path_ab"] = module
    spec.loader.exec_module(module)
    return module


async def per_item_us(step: Callable[[Any], Awaitable[object]], items: Sequence[Any],
                      rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for item in items:
            await step(item)
        best = min(best, (time.process_time() - started) / len(items) * 1e6)
    return round(best, 2)


async def measure(requests: int, rounds: int) -> dict[str, Any]:
    import headrace
    from headrace.app import BrokerApp
    from headrace.core.config import BrokerConfig
    from headrace.core.requests import RequestContext, Session
    from headrace.protocol.codec import parse_request_header, request_schema
    from headrace.protocol.produce import decode_produce_request

    encoders = _request_path_ab()
    out: dict[str, Any] = {"tree": str(Path(headrace.__file__).parents[2])}
    with tempfile.TemporaryDirectory(prefix="produce-layers-") as tmp:
        app = BrokerApp(BrokerConfig(data_dir=Path(tmp), kafka_port=0, http_host=None,
                                     offsets_topic_partitions=1))
        await app.start()
        try:
            session = Session("PLAINTEXT", "127.0.0.1")
            pipeline = app.pipeline
            for frame in encoders.metadata_requests("t", 2):  # auto-creates the topic
                await pipeline.process(memoryview(frame)[4:].toreadonly(), session)
            frames = [memoryview(f)[4:].toreadonly()
                      for f in encoders.produce_requests("t", requests)]
            for frame in frames[: requests // 5]:  # warm up
                await pipeline.process(frame, session)
            out["pipeline"] = await per_item_us(
                lambda f: pipeline.process(f, session), frames, rounds)
            schema = request_schema(0, 9)
            assert schema is not None

            async def decode(frame: memoryview) -> object:
                header = parse_request_header(frame, schema.__flexible__)
                return decode_produce_request(frame, header.body_offset, 9)

            out["decode"] = await per_item_us(decode, frames, rounds)
            decoded = [await decode(frame) for frame in frames]
            handler = pipeline.registry.lookup(0, 9)
            assert handler is not None
            ctx = RequestContext(0, 9, 1, "produce-layers", session)
            out["handler"] = await per_item_us(lambda r: handler.handle(r, ctx), decoded, rounds)
            broker = app.broker
            records = [r.topic_data[0].partition_data[0].records for r in decoded]  # type: ignore[attr-defined]
            out["broker_produce"] = await per_item_us(
                lambda r: broker.produce("t", 0, r, acks=1), records, rounds)
            log = broker.replicas.log("t", 0)

            async def append(batch: object) -> object:
                return log.append(batch, leader_epoch=0)  # type: ignore[arg-type]

            out["log_append"] = await per_item_us(append, records, rounds)
            if hasattr(log, "check_batches"):
                async def check(batch: object) -> object:
                    return log.check_batches(batch)  # type: ignore[attr-defined,arg-type]

                out["append_checks"] = await per_item_us(check, records, rounds)
        finally:
            await app.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.requests, args.rounds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
