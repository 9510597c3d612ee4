"""Producer-id allocation for InitProducerId: the seam and the single broker's durable allocator.

:class:`ProducerIdSource` is what the one InitProducerId handler asks; a lone broker supplies
:class:`ProducerIdAllocator`, the cluster an allocator reserving blocks in etcd. Locally, ids
are handed out from blocks: the end of the current block is persisted (write, fsync, rename)
before any id in it is used, so after a crash or restart the broker starts past every id it may
have given out and never reuses one, at the cost of one small file write per block.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

BLOCK_SIZE = 1000
_FILE_NAME = "producer-id-block"


class ProducerIdSource(Protocol):
    """Hands out producer ids no producer of the cluster was ever given."""

    async def allocate(self) -> int:
        """A fresh producer id; a ``KafkaError`` names why none can be given now."""
        ...


class ProducerIdAllocator:
    """Allocates unique, never-reused producer ids persisted under ``data_dir``."""

    def __init__(self, data_dir: Path, block_size: int = BLOCK_SIZE) -> None:
        self._path = data_dir / _FILE_NAME
        self._block_size = block_size
        self._next = self._load_reserved_end()
        self._block_end = self._next

    def _load_reserved_end(self) -> int:
        try:
            text = self._path.read_text().strip()
        except FileNotFoundError:
            return 0
        try:
            value = int(text)
        except ValueError as error:
            raise RuntimeError(f"{self._path} is corrupt: {text!r}") from error
        if value < 0:
            raise RuntimeError(f"{self._path} is corrupt: negative value {value}")
        return value

    def _reserve(self, end: int) -> None:
        temporary = self._path.with_suffix(".tmp")
        with open(temporary, "w") as file:
            file.write(f"{end}\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._path)
        directory = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def allocate(self) -> int:
        """A producer id never returned before by any allocator on this data dir."""
        if self._next >= self._block_end:
            self._block_end = self._next + self._block_size
            self._reserve(self._block_end)
        producer_id = self._next
        self._next += 1
        return producer_id
