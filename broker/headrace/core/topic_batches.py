"""Running a batch of topic creations without blocking the event loop.

Storage splits a creation into steps (:class:`~headrace.storage.TopicCreation`); this runs the
slow ones (making directories, the metadata fsync) on a worker thread and opens the new logs on
the loop a slice at a time, so other clients' requests and a SIGTERM are served between slices.
Cancelled (the broker stopping) mid-way, it lets the step in progress end — making directories
stops at the next one — then publishes the batch if its metadata was already written, or undoes
it: a creation is either complete or gone, never half made.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from headrace.storage import TopicCreation, TopicMetadata

#: New partition logs opened per turn of the event loop (each is a few file creations).
OPEN_SLICE = 100


async def run_creation(creation: TopicCreation) -> list[TopicMetadata]:
    """Make, commit and publish ``creation``; on any failure undo it and raise."""
    try:
        await _off_loop(creation, creation.make_directories)
        # A yield to other clients between slices, not a wait for a condition:
        while not creation.open_logs(OPEN_SLICE):  # noqa: ASYNC110
            await asyncio.sleep(0)
        await _off_loop(creation, creation.commit)
    except BaseException:
        if creation.committed:  # durable already (cancelled while its fsync ran): keep it
            creation.publish()
        else:
            creation.abort()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.to_thread(creation.remove_directories)
        raise
    return creation.publish()


async def _off_loop(creation: TopicCreation, step: Callable[[], None]) -> None:
    """Run ``step`` on a worker thread; when cancelled, stop it early and wait for it."""
    done = asyncio.ensure_future(asyncio.to_thread(step))
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        creation.cancel()
        with contextlib.suppress(BaseException):
            await done
        raise
