"""The kernel's fill and attempt recorders, compiled and as plain Python."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ticklake.backtest import kernel as k

COMPILED_AND_PLAIN = pytest.mark.parametrize("plain", [False, True], ids=["numba", "python"])


def _plain(function: Any) -> Any:
    """The Python function behind a Numba dispatcher (itself under NUMBA_DISABLE_JIT=1)."""
    return getattr(function, "py_func", function)


@COMPILED_AND_PLAIN
def test_record_fill_writes_one_column_and_returns_the_cash_flow(plain: bool) -> None:
    record = _plain(k._record_fill) if plain else k._record_fill
    fills = np.zeros((k.FILL_FIELDS, 4), np.int64)
    # A sell of 30 at ₹123.45 receives cash; a buy of 15 at ₹50.00 pays it.
    assert record(fills, 1, 7, 2, 11, -1, 30, 12_345, k.STOP_LOSS, 5) == 370_350
    assert record(fills, 2, 9, 0, 3, 1, 15, 5_000, k.ENTRY, 6) == -75_000
    assert fills[:, 0].tolist() == [0] * k.FILL_FIELDS
    assert fills[:, 1].tolist() == [7, 2, 11, -1, 30, 12_345, k.STOP_LOSS, 5]
    assert fills[:, 2].tolist() == [9, 0, 3, 1, 15, 5_000, k.ENTRY, 6]
    assert fills[k.FILL_PRICE, 1] == 12_345 and fills[k.FILL_POSITION, 2] == 6


@COMPILED_AND_PLAIN
def test_record_attempt_notes_each_new_reason_once_per_leg(plain: bool) -> None:
    record = _plain(k._record_attempt) if plain else k._record_attempt
    attempts = np.zeros((3, k.MAX_ATTEMPTS), np.int64)
    last = np.full(2, -1, np.int64)
    n = 0
    for t, leg, why in [
        (1, 0, k.STALE_QUOTE),
        (2, 0, k.STALE_QUOTE),  # the same reason again: not noted
        (2, 1, k.STALE_QUOTE),  # another leg: noted
        (3, 0, k.MISSING_QUOTE),  # a new reason: noted
        (4, 0, k.STALE_QUOTE),
    ]:
        n = record(attempts, n, last, t, leg, why)
    assert n == 4
    assert attempts[:, :n].T.tolist() == [
        [1, 0, k.STALE_QUOTE],
        [2, 1, k.STALE_QUOTE],
        [3, 0, k.MISSING_QUOTE],
        [4, 0, k.STALE_QUOTE],
    ]
    assert last.tolist() == [k.STALE_QUOTE, k.STALE_QUOTE]


@COMPILED_AND_PLAIN
def test_a_full_attempt_table_still_tracks_the_last_reason(plain: bool) -> None:
    record = _plain(k._record_attempt) if plain else k._record_attempt
    attempts = np.zeros((3, k.MAX_ATTEMPTS), np.int64)
    last = np.full(1, -1, np.int64)
    assert record(attempts, k.MAX_ATTEMPTS, last, 5, 0, k.NO_CONTRACT) == k.MAX_ATTEMPTS
    assert last[0] == k.NO_CONTRACT
    assert not attempts.any()


@COMPILED_AND_PLAIN
def test_close_open_legs_keeps_flat_legs_and_earlier_reasons(plain: bool) -> None:
    close = _plain(k._close_open_legs) if plain else k._close_open_legs
    pos_c = np.array([4, -1, 7, 2], np.int64)  # leg 1 is flat
    closing = np.array([-1, -1, k.LEG_STOP, -1], np.int64)  # leg 2 already closes
    close(pos_c, closing, k.TRAILING)
    assert closing.tolist() == [k.TRAILING, -1, k.LEG_STOP, k.TRAILING]
