"""Numba kernels: one pass over time-ordered trades to per-instrument bars.

The trades arrive sorted by ``ts``; instruments may interleave. Each instrument keeps
its current bar; a row whose bar open differs from its instrument's current one starts
a new bar. The same pass checks the order the bars rely on (``ts`` never decreases;
rows of one instrument sharing a timestamp in numeric trade-id order) and gives up at
the first violation, so the caller sorts only data that needs it.

Strings are read where Polars keeps them, in Arrow string views (16 bytes a row; a
string of up to 12 bytes is stored inline in its view): a short symbol *is* its two
view words, a side is its length and first bytes, a numeric trade id compares inline.
Long symbols are keyed by two independent 64-bit hashes instead (see ``trade_bars``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

DAY_NS = 86_400_000_000_000
INLINE_BYTES = 12  # Arrow string views hold strings up to 12 bytes inline

OK = 0
OUT_OF_ORDER = 1
LONG_KEY = 2

_LOW32 = np.uint64(0xFFFFFFFF)
_BUY = np.uint64(0x797562)  # b"buy" read little-endian
_SELL = np.uint64(0x6C6C6573)  # b"sell"


@njit(cache=True, nogil=True, inline="always")
def _valid(bitmap: np.ndarray, offset: int, i: int) -> bool:
    """Arrow validity bit of row ``i`` (an empty bitmap means no nulls)."""
    if bitmap.shape[0] == 0:
        return True
    j = offset + i
    return ((bitmap[j >> 3] >> (j & 7)) & 1) == 1


@njit(cache=True, nogil=True, inline="always")
def _inline_mask(length: int, word: int) -> np.uint64:
    """Mask of the bytes of view word ``word`` (0 or 1) that hold an inline string."""
    valid = 4 + length if word == 0 else length - 4  # word 0 = 4-byte length + 4 bytes
    if valid >= 8:
        return np.uint64(0xFFFFFFFFFFFFFFFF)
    if valid <= 0:
        return np.uint64(0)
    return np.uint64((1 << (8 * valid)) - 1)


@njit(cache=True, nogil=True)
def side_code(word: np.uint64) -> np.int8:
    """0 for ``buy``, 1 for ``sell``, -1 for anything else, from a view's first word."""
    length = word & _LOW32
    prefix = word >> np.uint64(32)
    if length == 3 and (prefix & np.uint64(0xFFFFFF)) == _BUY:
        return np.int8(0)
    if length == 4 and prefix == _SELL:
        return np.int8(1)
    return np.int8(-1)


@njit(cache=True, nogil=True)
def id_order(views: np.ndarray, a: int, b: int) -> int:
    """Numeric-aware order of trade ids at rows ``a`` and ``b`` from their views.

    1 when id ``a`` sorts strictly first (shorter, or same length and smaller bytes),
    0 when not, -1 when the views cannot tell (equal-length ids beyond 12 bytes).
    """
    length_a = np.int64(views[a, 0]) | np.int64(views[a, 1]) << 8
    length_b = np.int64(views[b, 0]) | np.int64(views[b, 1]) << 8
    length_a |= np.int64(views[a, 2]) << 16 | np.int64(views[a, 3]) << 24
    length_b |= np.int64(views[b, 2]) << 16 | np.int64(views[b, 3]) << 24
    if length_a != length_b:
        return 1 if length_a < length_b else 0
    if length_a > INLINE_BYTES:
        return -1
    for k in range(4, 4 + length_a):
        if views[a, k] != views[b, k]:
            return 1 if views[a, k] < views[b, k] else 0
    return 0  # equal ids: no order to keep, let the sort decide


@njit(cache=True, nogil=True)
def _grow_codes(
    keys_a: np.ndarray, keys_b: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rehash the symbol table into twice the capacity."""
    capacity = values.shape[0] * 2
    new_a = np.zeros(capacity, dtype=np.uint64)
    new_b = np.zeros(capacity, dtype=np.uint64)
    new_values = np.full(capacity, -1, dtype=np.int64)
    mask = np.uint64(capacity - 1)
    for j in range(values.shape[0]):
        if values[j] >= 0:
            slot = np.int64(_mix(keys_a[j], keys_b[j]) & mask)
            while new_values[slot] >= 0:
                slot = np.int64((slot + 1) & np.int64(mask))
            new_a[slot] = keys_a[j]
            new_b[slot] = keys_b[j]
            new_values[slot] = values[j]
    return new_a, new_b, new_values


@njit(cache=True, nogil=True, inline="always")
def _mix(a: np.uint64, b: np.uint64) -> np.uint64:
    # Inline symbols differ in few bits ("BTCUSDT"/"ETHUSDT"): multiply to spread them.
    return ((a ^ (b * np.uint64(0x9E3779B97F4A7C15))) * np.uint64(0xBF58476D1CE4E5B9)) >> np.uint64(
        29
    )


@njit(cache=True, nogil=True, inline="always")
def _grow_state(state: np.ndarray, fill: int) -> np.ndarray:
    grown = np.full(state.shape[0] * 2, fill, dtype=np.int64)
    grown[: state.shape[0]] = state
    return grown


@njit(cache=True, nogil=True)
def trade_bars(
    ts: np.ndarray,
    opens: np.ndarray,
    start0: int,
    origin_offset: int,
    step: int,
    daily: bool,
    keys: np.ndarray,
    inline_keys: bool,
    price: np.ndarray,
    size: np.ndarray,
    side_views: np.ndarray,
    side_valid: np.ndarray,
    side_offset: int,
    id_views: np.ndarray,
    check_order: bool,
) -> tuple[Any, ...]:
    """Aggregate time-ordered rows into bars in one pass.

    Bar opens come from ``opens`` when given (a daylight-saving change in range), else
    from the uniform grid (``start0`` = a trading-day start, the origin ``origin_offset``
    after it, ``step`` ns bars or whole days when ``daily``). The symbol of a row is the
    key ``keys[i]``: its two view words when ``inline_keys`` (masked to the string's
    bytes), else two hashes. ``side_views`` are the sides' views (empty: no side
    known; ``side_valid`` its Arrow validity bitmap from bit ``side_offset``). With
    ``check_order``, a decreasing ``ts`` or a tie of one instrument out of trade-id
    order stops the pass (``id_views`` are the trade ids' views as bytes; empty: every
    tie pair is returned for the caller to check).

    Returns ``(status, bars...)``: status ``OK``, ``OUT_OF_ORDER`` or ``LONG_KEY`` (an
    inline key longer than 12 bytes: hash the symbols and call again). Per bar: open,
    end, first row, code, open/high/low/close, volume, quote volume, count, buy and
    sell volume, whether any side was known; then the first row of each code and the
    tie pairs the views could not order.
    """
    n = ts.shape[0]
    capacity = 64
    keys_a = np.zeros(capacity, dtype=np.uint64)
    keys_b = np.zeros(capacity, dtype=np.uint64)
    values = np.full(capacity, -1, dtype=np.int64)
    current = np.full(capacity, -1, dtype=np.int64)  # per code: its open bar
    last_row = np.full(capacity, -1, dtype=np.int64)
    code_row = np.full(capacity, -1, dtype=np.int64)
    # np.empty, not zeros: only the pages of bars actually opened are ever touched.
    bar_open = np.empty(n, dtype=np.int64)
    bar_end = np.empty(n, dtype=np.int64)
    first_row = np.empty(n, dtype=np.int64)
    bar_code = np.empty(n, dtype=np.int64)
    o = np.empty(n, dtype=np.float64)
    h = np.empty(n, dtype=np.float64)
    lo = np.empty(n, dtype=np.float64)
    c = np.empty(n, dtype=np.float64)
    volume = np.empty(n, dtype=np.float64)
    quote_volume = np.empty(n, dtype=np.float64)
    count = np.empty(n, dtype=np.int64)
    buy = np.empty(n, dtype=np.float64)
    sell = np.empty(n, dtype=np.float64)
    known = np.empty(n, dtype=np.bool_)
    defer_first = np.empty(n if check_order else 0, dtype=np.int64)
    defer_second = np.empty(n if check_order else 0, dtype=np.int64)
    counters = np.zeros(3, dtype=np.int64)  # bars, deferred tie pairs, distinct codes
    row = 0
    while True:
        status, row = _fold(
            row, counters, ts, opens, start0, origin_offset, step, daily,
            keys, inline_keys, price, size, side_views, side_valid, side_offset,
            id_views, check_order, keys_a, keys_b, values, current, last_row, code_row,
            bar_open, bar_end, first_row, bar_code, o, h, lo, c, volume, quote_volume,
            count, buy, sell, known, defer_first, defer_second,
        )  # fmt: skip
        if status != _FULL:
            break
        # Growing here, outside the row loop: re-binding arrays inside that loop makes
        # Numba reference-count them on every row (several times slower).
        keys_a, keys_b, values = _grow_codes(keys_a, keys_b, values)
        current = _grow_state(current, -1)
        last_row = _grow_state(last_row, -1)
        code_row = _grow_state(code_row, -1)
    bars, deferred, distinct = counters[0], counters[1], counters[2]
    return (
        status,
        bar_open[:bars],
        bar_end[:bars],
        first_row[:bars],
        bar_code[:bars],
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
        code_row[:distinct],
        defer_first[:deferred],
        defer_second[:deferred],
    )


_FULL = -1  # the symbol table is half full: grow it, then resume at the returned row


@njit(cache=True, nogil=True)
def _fold(
    begin: int,
    counters: np.ndarray,
    ts: np.ndarray,
    opens: np.ndarray,
    start0: int,
    origin_offset: int,
    step: int,
    daily: bool,
    keys: np.ndarray,
    inline_keys: bool,
    price: np.ndarray,
    size: np.ndarray,
    side_views: np.ndarray,
    side_valid: np.ndarray,
    side_offset: int,
    id_views: np.ndarray,
    check_order: bool,
    keys_a: np.ndarray,
    keys_b: np.ndarray,
    values: np.ndarray,
    current: np.ndarray,
    last_row: np.ndarray,
    code_row: np.ndarray,
    bar_open: np.ndarray,
    bar_end: np.ndarray,
    first_row: np.ndarray,
    bar_code: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    volume: np.ndarray,
    quote_volume: np.ndarray,
    count: np.ndarray,
    buy: np.ndarray,
    sell: np.ndarray,
    known: np.ndarray,
    defer_first: np.ndarray,
    defer_second: np.ndarray,
) -> tuple[int, int]:
    """The row loop of :func:`trade_bars`, from row ``begin``; returns (status, row)."""
    n = ts.shape[0]
    bars, deferred, distinct = counters[0], counters[1], counters[2]
    given_opens = opens.shape[0] > 0
    has_side = side_views.shape[0] > 0
    ids_inline = id_views.shape[0] > 0
    mask = np.uint64(values.shape[0] - 1)
    limit = values.shape[0] // 2
    low = np.int64(1)
    high = np.int64(0)  # empty bounds: the first row computes its bar
    row_open = np.int64(0)
    row_end = np.int64(0)
    previous_ts = ts[max(begin - 1, 0)] if n else np.int64(0)
    status = OK
    i = begin
    while i < n:
        t = ts[i]
        if check_order and t < previous_ts:
            status = OUT_OF_ORDER
            break
        # ---- symbol code
        a = keys[i, 0]
        b = keys[i, 1]
        if inline_keys:
            length = int(a & _LOW32)
            if length > INLINE_BYTES:
                status = LONG_KEY
                break
            a &= _inline_mask(length, 0)
            b &= _inline_mask(length, 1)
        slot = np.int64(_mix(a, b) & mask)
        while values[slot] >= 0 and (keys_a[slot] != a or keys_b[slot] != b):
            slot = np.int64((slot + 1) & np.int64(mask))
        code = values[slot]
        if code < 0:
            if distinct >= limit:
                status = _FULL
                break
            code = distinct
            distinct += 1
            values[slot] = code
            keys_a[slot] = a
            keys_b[slot] = b
            code_row[code] = i
        previous_ts = t
        # ---- bar bounds: integer division only when a row leaves the current bar
        if given_opens:
            row_open = opens[i]
        elif t < low or t >= high:
            start = (t - start0) // DAY_NS * DAY_NS + start0
            if daily:
                row_open, row_end = start, start + DAY_NS
            else:
                origin = start + origin_offset
                grid_open = origin + (t - origin) // step * step
                row_open = max(grid_open, start)
                row_end = min(grid_open + step, start + DAY_NS)
            low, high = row_open, row_end
        # ---- ties of one instrument: trade-id order
        previous = last_row[code]
        if check_order and previous >= 0 and ts[previous] == t:
            order = id_order(id_views, previous, i) if ids_inline else -1
            if order == 0:
                status = OUT_OF_ORDER
                break
            defer_first[deferred] = previous
            defer_second[deferred] = i
            deferred += order < 0
        last_row[code] = i
        # ---- fold the row into its instrument's bar
        p = price[i]
        q = size[i]
        k = current[code]
        if k < 0 or bar_open[k] != row_open:
            k = bars
            bars += 1
            current[code] = k
            bar_open[k] = row_open
            bar_end[k] = row_end
            first_row[k] = i
            bar_code[k] = code
            o[k] = p
            h[k] = p
            lo[k] = p
            volume[k] = 0.0
            quote_volume[k] = 0.0
            count[k] = 0
            buy[k] = 0.0
            sell[k] = 0.0
            known[k] = False
        # Branch-free where the data is random (price moves, sides): a mispredicted
        # branch per row costs more than the arithmetic.
        h[k] = max(h[k], p)
        lo[k] = min(lo[k], p)
        c[k] = p
        volume[k] += q
        quote_volume[k] += p * q
        count[k] += 1
        if has_side:
            s = side_code(side_views[i, 0]) if _valid(side_valid, side_offset, i) else np.int8(-1)
            buy[k] += q * (s == 0)
            sell[k] += q * (s == 1)
            known[k] |= s >= 0
        i += 1
    counters[0], counters[1], counters[2] = bars, deferred, distinct
    return status, i


@njit(cache=True, nogil=True)
def bar_order(bar_open: np.ndarray, bar_rank: np.ndarray) -> np.ndarray:
    """Permutation putting bars in (open, symbol rank) order.

    Bars are opened in time order, so opens never decrease: only each run of bars
    sharing an open needs sorting, by the rank of its symbol.
    """
    n = bar_open.shape[0]
    order = np.arange(n)
    start = 0
    while start < n:
        end = start + 1
        while end < n and bar_open[end] == bar_open[start]:
            end += 1
        if end - start > 16:
            run = order[start:end]
            order[start:end] = run[np.argsort(bar_rank[run], kind="mergesort")]
        else:  # a few symbols: insertion sort, no allocation per run
            for j in range(start + 1, end):
                moving = order[j]
                k = j
                while k > start and bar_rank[order[k - 1]] > bar_rank[moving]:
                    order[k] = order[k - 1]
                    k -= 1
                order[k] = moving
        start = end
    return order
