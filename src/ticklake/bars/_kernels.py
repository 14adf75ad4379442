"""Numba kernel: one pass over time-ordered trades to per-instrument bars.

The trades arrive sorted by ``ts``; instruments may interleave. Each instrument keeps
its current bar; a row whose bar open differs from its instrument's current one starts
a new bar. Rows of one instrument sharing a timestamp are reported as pairs so the
caller can check their trade-id order (a tie order the kernel cannot see).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def trade_bars_kernel(
    opens: np.ndarray,
    ts: np.ndarray,
    codes: np.ndarray,
    n_codes: int,
    price: np.ndarray,
    size: np.ndarray,
    side: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Aggregate rows into bars; return the output arrays and the tie pairs.

    ``side`` is 0 (buy), 1 (sell) or -1 (unknown). Output per bar: open time, first row
    (to recover the instrument), open, high, low, close, volume, quote volume, count,
    buy volume, sell volume, and whether any side was known.
    """
    n = ts.shape[0]
    current = np.full(n_codes, -1, dtype=np.int64)
    current_open = np.zeros(n_codes, dtype=np.int64)
    last_ts = np.zeros(n_codes, dtype=np.int64)
    last_row = np.full(n_codes, -1, dtype=np.int64)
    bar_open = np.empty(n, dtype=np.int64)
    first_row = np.empty(n, dtype=np.int64)
    o = np.empty(n, dtype=np.float64)
    h = np.empty(n, dtype=np.float64)
    lo = np.empty(n, dtype=np.float64)
    c = np.empty(n, dtype=np.float64)
    # np.empty, not zeros: a bar's fields are set when it opens (no memset of n rows).
    volume = np.empty(n, dtype=np.float64)
    quote_volume = np.empty(n, dtype=np.float64)
    count = np.empty(n, dtype=np.int64)
    buy = np.empty(n, dtype=np.float64)
    sell = np.empty(n, dtype=np.float64)
    known = np.empty(n, dtype=np.bool_)
    tie_first = np.empty(n, dtype=np.int64)
    tie_second = np.empty(n, dtype=np.int64)
    ties = 0
    bars = 0
    # Branch-free updates where the data is random (price moves, sides, ties): a
    # mispredicted branch per row costs more than the arithmetic.
    for i in range(n):
        code = codes[i]
        p = price[i]
        q = size[i]
        tie_first[ties] = last_row[code]
        tie_second[ties] = i
        ties += last_row[code] >= 0 and last_ts[code] == ts[i]
        last_ts[code] = ts[i]
        last_row[code] = i
        k = current[code]
        if k < 0 or current_open[code] != opens[i]:
            k = bars
            bars += 1
            current[code] = k
            current_open[code] = opens[i]
            bar_open[k] = opens[i]
            first_row[k] = i
            o[k] = p
            h[k] = p
            lo[k] = p
            volume[k] = 0.0
            quote_volume[k] = 0.0
            count[k] = 0
            buy[k] = 0.0
            sell[k] = 0.0
            known[k] = False
        h[k] = max(h[k], p)
        lo[k] = min(lo[k], p)
        c[k] = p
        volume[k] += q
        quote_volume[k] += p * q
        count[k] += 1
        s = side[i]
        buy[k] += q * (s == 0)
        sell[k] += q * (s == 1)
        known[k] |= s >= 0
    return (
        bar_open[:bars],
        first_row[:bars],
        o[:bars],
        h[:bars],
        lo[:bars],
        c[:bars],
        volume[:bars],
        quote_volume[:bars],
        count[:bars],
        buy[:bars],
        sell[:bars],
        known[:bars],
        tie_first[:ties],
        tie_second[:ties],
    )


@njit(cache=True, nogil=True)
def uniform_opens(
    ts: np.ndarray, start0: int, origin_offset: int, step: int, daily: bool
) -> np.ndarray:
    """Bar open per row when every trading day is 24 h (no DST change in range)."""
    day = 86_400_000_000_000
    out = np.empty(ts.shape[0], dtype=np.int64)
    for i in range(ts.shape[0]):
        start = (ts[i] - start0) // day * day + start0
        if daily:
            out[i] = start
        else:
            origin = start + origin_offset
            out[i] = max(origin + (ts[i] - origin) // step * step, start)
    return out
