"""The bound on inflation, applied to aiokafka's record decoder as the HTTP API's consumers use it.

The HTTP API's consumer instances (web/consumers.py) are aiokafka consumers inside the broker
process. aiokafka inflates a gzip batch whole, without bound, so one batch that inflates to a
gigabyte would take a gigabyte of the broker's memory. :func:`bound_client_inflation` replaces
the gzip decoder aiokafka's record batches look up (its compiled and its pure-Python ones) with
this package's bounded one: such a batch then raises InflationLimitError (a ``ValueError``) in
the consumer instead. Idempotent; the other codecs are left to aiokafka (the broker cannot
decode them itself, see :mod:`.compression`).
"""

from __future__ import annotations

from types import ModuleType

from headrace.record.compression import GZIP, decompress

Buffer = bytes | bytearray | memoryview


def bounded_gzip_decode(payload: Buffer) -> bytes:
    """aiokafka's ``gzip_decode``, within :data:`~.compression.MAX_INFLATED_BATCH_BYTES`."""
    return bytes(decompress(GZIP, payload))


def bound_client_inflation() -> None:
    """Make aiokafka's record decoders inflate gzip through :func:`bounded_gzip_decode`."""
    import aiokafka.record.default_records as python_records

    modules: list[ModuleType] = [python_records]
    try:
        import aiokafka.record._crecords.default_records as compiled_records
    except ImportError:  # aiokafka built without its C extensions
        pass
    else:
        modules.append(compiled_records)
    for module in modules:
        module.gzip_decode = bounded_gzip_decode  # type: ignore[attr-defined]
