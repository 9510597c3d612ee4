"""Leader-side replication bookkeeping for one partition, as pure logic over numbers.

The leader learns each follower's log end offset from the ``fetch_offset`` of its Fetch requests
(Kafka's design: a follower asking for offset N has everything below N). From those it derives
the high watermark (minimum log end offset over the ISR, never moving backwards), which followers
have fallen more than ``replica.lag.time.max.ms`` behind (ISR shrink) and which have caught up
(ISR expansion). Times are plain floats (seconds) passed in by the caller, so tests need no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

UNKNOWN_OFFSET = -1


@dataclass(slots=True)
class FollowerProgress:
    log_end_offset: int = UNKNOWN_OFFSET
    #: Last time the follower was known to have everything the leader had (Kafka's
    #: ``lastCaughtUpTimeMs``).
    last_caught_up: float = 0.0
    last_fetch_time: float = 0.0
    leader_end_at_last_fetch: int = 0


class LeaderPartitionState:
    """Followers' progress, high watermark and ISR of a partition this broker leads."""

    def __init__(
        self,
        *,
        leader_id: int,
        leader_epoch: int,
        replicas: Iterable[int],
        isr: Iterable[int],
        high_watermark: int,
        now: float,
        epoch_start_offset: int = 0,
    ) -> None:
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        self.high_watermark = high_watermark
        #: Our log end when we became leader. Everything ever committed lies below it (we were
        #: in the ISR), while our high watermark may lag behind the committed offset (it is
        #: learnt from the previous leader's fetch responses, or 0 after a restart).
        self.epoch_start_offset = epoch_start_offset
        # Every follower gets a full lag period from the moment we become leader.
        self.followers = {
            replica: FollowerProgress(last_caught_up=now, last_fetch_time=now)
            for replica in self.replicas
            if replica != leader_id
        }

    def update_membership(self, replicas: Iterable[int], isr: Iterable[int], now: float) -> None:
        """Metadata changed at the same leader epoch (ISR shrink/expand, reassignment).

        A follower that left the ISR forgets its recorded position: only a fetch made after
        that can re-qualify it (its old position may belong to an incarnation whose disk is gone).
        """
        previous_isr = set(self.isr)
        self.replicas = tuple(replicas)
        self.isr = tuple(isr)
        for replica in previous_isr - set(self.isr):
            self.forget(replica, now)
        for replica in self.replicas:
            if replica != self.leader_id and replica not in self.followers:
                self.followers[replica] = FollowerProgress(last_caught_up=now, last_fetch_time=now)
        for replica in list(self.followers):
            if replica not in self.replicas:
                del self.followers[replica]

    def forget(self, replica: int, now: float) -> None:
        """Drop what we know of a follower's log (it left the ISR or restarted)."""
        if replica in self.followers:
            self.followers[replica] = FollowerProgress(last_caught_up=now, last_fetch_time=now)

    def record_fetch(self, replica: int, fetch_offset: int, leader_end: int, now: float) -> None:
        """A follower fetched from ``fetch_offset``; ``leader_end`` is our log end offset."""
        progress = self.followers.get(replica)
        if progress is None:
            return
        progress.log_end_offset = fetch_offset
        if fetch_offset >= leader_end:
            progress.last_caught_up = now
        elif fetch_offset >= progress.leader_end_at_last_fetch:
            # It has everything we had when it last asked: caught up as of that fetch.
            progress.last_caught_up = max(progress.last_caught_up, progress.last_fetch_time)
        progress.last_fetch_time = now
        progress.leader_end_at_last_fetch = leader_end

    def advance_high_watermark(self, leader_end: int) -> bool:
        """Recompute the high watermark; True if it moved forward."""
        candidate = leader_end
        for replica in self.isr:
            if replica == self.leader_id:
                continue
            progress = self.followers.get(replica)
            offset = progress.log_end_offset if progress is not None else UNKNOWN_OFFSET
            if offset == UNKNOWN_OFFSET:
                return False
            candidate = min(candidate, offset)
        if candidate > self.high_watermark:
            self.high_watermark = candidate
            return True
        return False

    def lagging_followers(self, now: float, max_lag_seconds: float) -> set[int]:
        """ISR followers that have not been caught up for longer than the allowed lag."""
        return {
            replica
            for replica in self.isr
            if replica != self.leader_id
            and replica in self.followers
            and now - self.followers[replica].last_caught_up > max_lag_seconds
        }

    def caught_up_followers(self, leader_end: int) -> set[int]:
        """Out-of-ISR replicas eligible to rejoin: their log reached the high watermark and the
        start of our leader epoch (Kafka's ``isFollowerInSync``).

        The high watermark alone is not enough: a new leader's may still be behind records that
        were acknowledged under the previous leader, and a replica missing those (a wiped disk)
        must not become electable.
        """
        return {
            replica
            for replica, progress in self.followers.items()
            if replica not in self.isr
            and progress.log_end_offset != UNKNOWN_OFFSET
            and progress.log_end_offset >= max(self.high_watermark, self.epoch_start_offset)
            and progress.log_end_offset <= leader_end
        }
