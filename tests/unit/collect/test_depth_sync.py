"""DepthSync against Binance's documented local-book rules, case by hand (issue 14).

Spot: drop events with u <= lastUpdateId; the first kept one must have
U <= lastUpdateId + 1 <= u; then each U == previous u + 1. USD-M: drop u < lastUpdateId;
the first must have U <= lastUpdateId <= u; then each pu == previous u.
"""

from __future__ import annotations

from typing import Any

from ticklake.collect.depth import DepthSync


def ev(first: int, last: int, bids: Any = (), asks: Any = (), pu: int | None = None) -> dict:
    event = {"U": first, "u": last, "b": [list(b) for b in bids], "a": [list(a) for a in asks]}
    if pu is not None:
        event["pu"] = pu
    return event


SNAP = {"lastUpdateId": 100, "bids": [["10.0", "1.0"], ["9.9", "2.0"]], "asks": [["10.1", "3.0"]]}


def test_spot_first_event_exactly_at_last_update_id_plus_one_is_applied() -> None:
    sync = DepthSync()
    sync.on_event(ev(95, 100, bids=[("10.0", "5.0")]))  # held by the snapshot: dropped
    sync.on_event(ev(101, 103, bids=[("9.9", "0")], asks=[("10.2", "1.5")]))
    assert sync.on_snapshot(SNAP) == "synced"
    assert sync.top() == {"bids": [(10.0, 1.0)], "asks": [(10.1, 3.0), (10.2, 1.5)]}
    assert sync.last_u == 103
    assert sync.on_event(ev(104, 104, asks=[("10.1", "0")])) is None
    assert sync.top()["asks"] == [(10.2, 1.5)]


def test_spot_straddling_event_is_applied_and_one_past_it_is_missing() -> None:
    straddle = DepthSync()
    straddle.on_event(ev(99, 102, bids=[("9.8", "4.0")]))  # U 99 <= 101 <= u 102
    assert straddle.on_snapshot(SNAP) == "synced"
    assert (9.8, 4.0) in straddle.top()["bids"]
    older = DepthSync()
    older.on_event(ev(102, 104))  # U 102 > 101: the snapshot predates the buffer
    assert older.on_snapshot(SNAP) == "stale"
    missing = DepthSync()
    missing.on_event(ev(96, 100))  # held by the snapshot: dropped
    missing.on_event(ev(102, 104))  # ...and 101 never came
    assert missing.on_snapshot(SNAP) == "missing"
    assert not missing.synced


def test_a_snapshot_older_than_the_buffer_is_stale() -> None:
    sync = DepthSync()
    sync.on_event(ev(150, 152))
    assert sync.on_snapshot(SNAP) == "stale"
    assert sync.on_snapshot({**SNAP, "lastUpdateId": 151}) == "synced"
    assert sync.last_u == 152


def test_a_sequence_break_is_a_gap_with_the_missing_ids() -> None:
    sync = DepthSync()
    sync.on_event(ev(101, 101))
    sync.on_snapshot(SNAP)
    assert sync.on_event(ev(102, 105)) is None
    gap = sync.on_event(ev(108, 110))  # 106, 107 lost
    assert gap is not None and (gap.from_id, gap.to_id) == (106, 107)
    assert sync.needs_snapshot and list(sync.buffer) == [ev(108, 110)]


def test_usdm_uses_pu_and_the_inclusive_straddle() -> None:
    sync = DepthSync(futures=True)
    sync.on_event(ev(90, 99, pu=89))  # u < lastUpdateId: dropped
    sync.on_event(ev(100, 104, bids=[("10.0", "7.0")], pu=99))  # U <= 100 <= u: first
    sync.on_event(ev(105, 109, pu=104))
    assert sync.on_snapshot(SNAP) == "synced"
    assert sync.top()["bids"][0] == (10.0, 7.0) and sync.last_u == 109
    assert sync.on_event(ev(110, 111, pu=109)) is None
    gap = sync.on_event(ev(115, 116, pu=113))
    assert gap is not None and "pu 113 != previous u 111" in gap.reason


def test_the_buffer_is_bounded_and_counts_what_it_dropped() -> None:
    sync = DepthSync(max_buffer=3)
    for i in range(5):
        sync.on_event(ev(200 + i, 200 + i))
    assert len(sync.buffer) == 3 and sync.dropped_from_buffer == 2
