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
    """Bar open per row when every trading day is 24 h (no DST change in range).

    Integer division is slow; consecutive rows mostly share a bar, so the bar's
    bounds are kept and recomputed only when a row falls outside them.
    """
    day = 86_400_000_000_000
    out = np.empty(ts.shape[0], dtype=np.int64)
    low = np.int64(1)
    high = np.int64(0)  # empty bounds: the first row computes
    current = np.int64(0)
    for i in range(ts.shape[0]):
        t = ts[i]
        if t < low or t >= high:
            start = (t - start0) // day * day + start0
            if daily:
                current, low, high = start, start, start + day
            else:
                origin = start + origin_offset
                grid_open = origin + (t - origin) // step * step
                current = max(grid_open, start)
                low, high = current, min(grid_open + step, start + day)
        out[i] = current
    return out


@njit(cache=True, nogil=True)
def _number_rows(
    first_hash: np.ndarray,
    second_hash: np.ndarray,
    begin: int,
    keys_a: np.ndarray,
    keys_b: np.ndarray,
    values: np.ndarray,
    codes: np.ndarray,
    distinct: int,
) -> tuple[int, int]:
    """Fill ``codes`` from row ``begin`` until done or the table is half full."""
    mask = np.uint64(values.shape[0] - 1)
    limit = values.shape[0] // 2
    for i in range(begin, first_hash.shape[0]):
        a = first_hash[i]
        b = second_hash[i]
        slot = np.int64(a & mask)
        while values[slot] >= 0 and (keys_a[slot] != a or keys_b[slot] != b):
            slot = np.int64((slot + 1) & np.int64(mask))
        if values[slot] < 0:
            if distinct >= limit:
                return i, distinct  # grow first, then resume at this row
            values[slot] = distinct
            keys_a[slot] = a
            keys_b[slot] = b
            distinct += 1
        codes[i] = values[slot]
    return first_hash.shape[0], distinct


@njit(cache=True, nogil=True)
def dense_codes(first_hash: np.ndarray, second_hash: np.ndarray) -> tuple[np.ndarray, int]:
    """Number distinct (hash, hash) pairs 0, 1, ... in order of appearance.

    Two independent 64-bit hashes of the symbol make a 128-bit key: telling symbols
    apart this way is much cheaper than a categorical cast, and a collision among even
    millions of symbols has a probability far below 2^-80.
    """
    n = first_hash.shape[0]
    codes = np.empty(n, dtype=np.int64)
    capacity = 64
    keys_a = np.zeros(capacity, dtype=np.uint64)
    keys_b = np.zeros(capacity, dtype=np.uint64)
    values = np.full(capacity, -1, dtype=np.int64)
    row, distinct = 0, 0
    while True:
        row, distinct = _number_rows(
            first_hash, second_hash, row, keys_a, keys_b, values, codes, distinct
        )
        if row >= n:
            return codes, distinct
        # Growing outside the hot loop keeps that loop free of array re-binding.
        capacity *= 2
        new_a = np.zeros(capacity, dtype=np.uint64)
        new_b = np.zeros(capacity, dtype=np.uint64)
        new_values = np.full(capacity, -1, dtype=np.int64)
        mask = np.uint64(capacity - 1)
        for j in range(values.shape[0]):
            if values[j] >= 0:
                slot = np.int64(keys_a[j] & mask)
                while new_values[slot] >= 0:
                    slot = np.int64((slot + 1) & np.int64(mask))
                new_a[slot] = keys_a[j]
                new_b[slot] = keys_b[j]
                new_values[slot] = values[j]
        keys_a, keys_b, values = new_a, new_b, new_values
