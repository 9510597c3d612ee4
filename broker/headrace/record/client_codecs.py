"""The bound on inflation, applied to aiokafka's record decoder as the HTTP API's consumers use it.

The HTTP API's consumer instances (web/consumers.py) are aiokafka consumers inside the broker
process. aiokafka inflates a batch whole, without bound, so one batch that inflates to a
gigabyte would take a gigabyte of the broker's memory. :func:`bound_client_inflation` replaces
the decoders aiokafka's record batches look up (its compiled and its pure-Python ones; gzip,
snappy, lz4 and zstd) with this package's bounded ones: such a batch then raises
InflationLimitError (a ``ValueError``) in the consumer instead. Idempotent.
"""

from __future__ import annotations

import functools
from types import ModuleType

from headrace.record.compression import GZIP, LZ4, SNAPPY, ZSTD, decompress

Buffer = bytes | bytearray | memoryview


def bounded_decode(codec: int, payload: Buffer) -> bytes:
    """aiokafka's ``<codec>_decode``, within :data:`~.compression.MAX_INFLATED_BATCH_BYTES`."""
    return bytes(decompress(codec, payload))


#: aiokafka's decoder names, and the bounded decoders that replace them.
_DECODERS = {f"{name}_decode": functools.partial(bounded_decode, codec)
             for name, codec in (("gzip", GZIP), ("snappy", SNAPPY), ("lz4", LZ4),
                                 ("zstd", ZSTD))}


def bound_client_inflation() -> None:
    """Make aiokafka's record decoders inflate through :func:`bounded_decode`."""
    import aiokafka.record.default_records as python_records

    modules: list[ModuleType] = [python_records]
    try:
        import aiokafka.record._crecords.default_records as compiled_records
    except ImportError:  # aiokafka built without its C extensions
        pass
    else:
        modules.append(compiled_records)
    for module in modules:
        for name, decoder in _DECODERS.items():
            setattr(module, name, decoder)
