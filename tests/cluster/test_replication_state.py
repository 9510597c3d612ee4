"""Leader-side replication bookkeeping (high watermark, lag, catch-up) on plain numbers."""

from __future__ import annotations

from headrace.cluster.replication import LeaderPartitionState


def leader(isr: tuple[int, ...] = (1, 2, 3), hw: int = 0) -> LeaderPartitionState:
    return LeaderPartitionState(
        leader_id=1, leader_epoch=4, replicas=(1, 2, 3), isr=isr, high_watermark=hw, now=100.0
    )


def test_high_watermark_is_the_minimum_over_the_isr() -> None:
    state = leader()
    assert not state.advance_high_watermark(10)  # followers' positions unknown yet
    state.record_fetch(2, 10, 10, 101.0)
    assert not state.advance_high_watermark(10)
    state.record_fetch(3, 7, 10, 101.0)
    assert state.advance_high_watermark(10)
    assert state.high_watermark == 7
    state.record_fetch(3, 10, 10, 102.0)
    assert state.advance_high_watermark(10) and state.high_watermark == 10


def test_high_watermark_never_moves_back() -> None:
    state = leader(hw=8)
    state.record_fetch(2, 5, 10, 101.0)
    state.record_fetch(3, 5, 10, 101.0)
    assert not state.advance_high_watermark(10)
    assert state.high_watermark == 8


def test_leader_alone_in_isr_commits_its_log_end() -> None:
    state = leader(isr=(1,))
    assert state.advance_high_watermark(42) and state.high_watermark == 42


def test_followers_lag_by_time_since_last_caught_up() -> None:
    state = leader()
    state.record_fetch(2, 10, 10, 101.0)  # caught up at 101
    state.record_fetch(3, 5, 10, 101.0)  # behind since the start (100)
    assert state.lagging_followers(now=105.0, max_lag_seconds=4.5) == {3}
    # Follower 3 reaches what the leader had at its previous fetch: caught up as of then.
    state.record_fetch(3, 10, 12, 105.0)
    assert state.lagging_followers(now=105.0, max_lag_seconds=4.5) == set()
    assert state.lagging_followers(now=120.0, max_lag_seconds=4.5) == {2, 3}


def test_out_of_sync_follower_is_eligible_once_it_reaches_the_high_watermark() -> None:
    state = leader(isr=(1, 2))
    state.record_fetch(2, 20, 20, 101.0)
    state.advance_high_watermark(20)
    state.record_fetch(3, 15, 20, 101.0)
    assert state.caught_up_followers(20) == set()
    state.record_fetch(3, 20, 20, 102.0)
    assert state.caught_up_followers(20) == {3}
    state.update_membership((1, 2, 3), (1, 2, 3), 103.0)
    assert state.caught_up_followers(20) == set()


def test_a_follower_leaving_the_isr_must_fetch_again_to_return() -> None:
    state = leader()
    for replica in (2, 3):
        state.record_fetch(replica, 20, 20, 101.0)
    state.advance_high_watermark(20)
    # The controller drops 3 (e.g. its disk was wiped): its old position must not count.
    state.update_membership((1, 2, 3), (1, 2), 102.0)
    assert state.caught_up_followers(20) == set()
    state.record_fetch(3, 0, 20, 103.0)  # the wiped broker starts from scratch
    assert state.caught_up_followers(20) == set()
    state.record_fetch(3, 20, 20, 104.0)
    assert state.caught_up_followers(20) == {3}


def test_a_new_leader_admits_only_followers_that_reached_its_epoch_start() -> None:
    # A freshly elected leader with 30 records whose high watermark is still 0 (not learnt yet):
    # records below 30 may have been acknowledged by the previous leader.
    state = LeaderPartitionState(
        leader_id=1, leader_epoch=5, replicas=(1, 2, 3), isr=(1, 2), high_watermark=0,
        now=100.0, epoch_start_offset=30,
    )
    state.record_fetch(3, 0, 30, 101.0)  # a wiped replica starting from scratch
    assert state.caught_up_followers(30) == set()
    state.record_fetch(3, 29, 30, 102.0)
    assert state.caught_up_followers(30) == set()
    state.record_fetch(3, 30, 30, 103.0)
    assert state.caught_up_followers(30) == {3}
