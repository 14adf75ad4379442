"""Numba kernel for path-dependent order-book work: top-N book replay from L3 events.

The book kernel keeps the **top ``levels`` price levels per side** and nothing deeper,
because that is all a LOBSTER level-N message file describes: it omits every event
outside the top N levels, so a level deeper than N is unknown to it and becomes stale
the moment it leaves the window. Per side the kernel tracks ``count`` known levels and
whether the window is ``complete`` (the side has no further level within the window, or
the window is full). Removing a level from a full window makes a level enter from
outside: its price and size are not in the messages, so the side becomes incomplete —
unless an aligned snapshot is given, whose row then supplies exactly the entering
levels (and nothing else; :func:`replay_top_levels` flags the events that used it).

Action codes (see :data:`ACTION_CODES`): 1 add, 2 cancel (partial), 3 delete, 4 fill,
5 fill_hidden, 6 trade (cross), 7 halt, 8 clear, 9 modify. Hidden executions, cross
trades and halts leave the book unchanged (LOBSTER writes a duplicate book row for a
halt). Sizes of cancel / delete / fill are the shares removed at the message's price.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt
import polars as pl

ACTION_CODES = {
    "add": 1,
    "cancel": 2,
    "delete": 3,
    "fill": 4,
    "fill_hidden": 5,
    "trade": 6,
    "halt": 7,
    "clear": 8,
    "modify": 9,
}
SIDE_CODES = {"bid": 0, "ask": 1}

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@numba.njit(cache=True)
def _better(side: int, a: int, b: int) -> bool:
    # bids: higher is better; asks: lower is better
    return a > b if side == 0 else a < b


@numba.njit(cache=True)
def _insert(keys, prices, sizes, count, levels, position, key, price, size):
    last = count if count < levels else levels - 1
    for j in range(last, position, -1):
        keys[j] = keys[j - 1]
        prices[j] = prices[j - 1]
        sizes[j] = sizes[j - 1]
    keys[position] = key
    prices[position] = price
    sizes[position] = size
    return count + 1 if count < levels else levels


@numba.njit(cache=True)
def _remove(keys, prices, sizes, count, position):
    for j in range(position, count - 1):
        keys[j] = keys[j + 1]
        prices[j] = prices[j + 1]
        sizes[j] = sizes[j + 1]
    return count - 1


@numba.njit(cache=True)
def replay_top_levels(
    action: I64,
    side: I64,
    price_key: I64,
    price: F64,
    size: F64,
    levels: int,
    out_levels: int,
    init_key: I64,
    init_price: F64,
    init_size: F64,
    init_count: I64,
    init_complete: npt.NDArray[np.bool_],
    snap_key: I64,
    snap_price: F64,
    snap_size: F64,
    has_snapshots: bool,
) -> tuple[F64, F64, I64, npt.NDArray[np.bool_]]:
    """Replay one instrument's events; return the book after each event.

    ``init_*`` have shape (2, levels) / (2,) (side 0 bid, 1 ask); ``snap_*`` shape
    (2, depth, n) with key -1 for an empty level, ``depth`` the snapshots' levels (at
    most ``levels`` are read; all ignored unless ``has_snapshots``).
    ``levels`` is the tracked depth (the message file's window); the first
    ``out_levels`` of it are returned: prices and sizes of shape (2, out_levels, n) (NaN
    where a level is empty or unknown), the number of known output levels per side
    (n, 2) and whether the event's book took levels from its snapshot.
    """
    n = action.shape[0]
    keys = init_key.copy()
    prices = init_price.copy()
    sizes = init_size.copy()
    count = init_count.copy()
    complete = init_complete.copy()
    # (side, level, event): each output column is one contiguous row of this array
    out_price = np.full((2, out_levels, n), np.nan)
    out_size = np.full((2, out_levels, n), np.nan)
    out_known = np.zeros((n, 2), dtype=np.int64)
    refilled = np.zeros(n, dtype=np.bool_)
    snap_levels = min(levels, snap_key.shape[1])
    for i in range(n):
        a = action[i]
        s = side[i]
        if a == 8:
            count[0] = 0
            count[1] = 0
            complete[0] = True
            complete[1] = True
        elif (a == 1 or a == 2 or a == 3 or a == 4) and (s == 0 or s == 1):
            k = price_key[i]
            c = count[s]
            found = -1
            position = c
            for j in range(c):
                if keys[s, j] == k:
                    found = j
                    break
                if _better(s, k, keys[s, j]):
                    position = j
                    break
            if a == 1:
                if found >= 0:
                    sizes[s, found] += size[i]
                elif position < c or (c < levels and complete[s]):
                    # inside the known window, or appended to a complete short side
                    count[s] = _insert(
                        keys[s], prices[s], sizes[s], c, levels, position, k, price[i], size[i]
                    )
                    if count[s] == levels:
                        complete[s] = True
                # else: deeper than every known level of an incomplete or full side
            elif found >= 0:
                sizes[s, found] -= size[i]
                if sizes[s, found] <= 0:
                    count[s] = _remove(keys[s], prices[s], sizes[s], c, found)
                    if c == levels:
                        complete[s] = False  # a level enters from outside the window
            if not complete[s] and has_snapshots:
                # take only the levels beyond the known ones from the snapshot row
                refilled[i] = True
                for j in range(count[s], snap_levels):
                    sk = snap_key[s, j, i]
                    if sk < 0:
                        break
                    if count[s] > 0 and not _better(s, keys[s, count[s] - 1], sk):
                        continue
                    c2 = count[s]
                    keys[s, c2] = sk
                    prices[s, c2] = snap_price[s, j, i]
                    sizes[s, c2] = snap_size[s, j, i]
                    count[s] = c2 + 1
                complete[s] = True
        for s2 in range(2):
            for j in range(min(count[s2], out_levels)):
                out_price[s2, j, i] = prices[s2, j]
                out_size[s2, j, i] = sizes[s2, j]
            out_known[i, s2] = out_levels if complete[s2] else min(count[s2], out_levels)
    return out_price, out_size, out_known, refilled


# --- kernel inputs from frames ------------------------------------------------------


@numba.njit(cache=True)
def _scaled_keys(values: F64, scale: float) -> I64:
    # rint = numpy's round(): half to even; NaN (null / empty level) -> -1
    keys = np.empty(values.shape[0], dtype=np.int64)
    for i in range(values.shape[0]):
        v = values[i]
        keys[i] = -1 if np.isnan(v) else np.int64(np.rint(v * scale))
    return keys


def price_keys(values: pl.Series | F64, price_digits: int) -> I64:
    """Integer price keys (price x 10**digits, rounded); -1 where the price is null."""
    array = values.to_numpy() if isinstance(values, pl.Series) else values  # null -> NaN
    flat = np.ascontiguousarray(array, dtype=np.float64).reshape(-1)
    return np.asarray(_scaled_keys(flat, float(10**price_digits))).reshape(np.shape(array))


def book_arrays(row: pl.DataFrame, levels: int, price_digits: int) -> tuple[I64, F64, F64]:
    """(2, depth, rows) keys (-1 empty), prices and sizes of l2 rows, contiguous per level.

    ``depth`` is the frame's number of levels, at most ``levels`` (a missing column is an
    empty level); side 0 is bid, 1 ask, the layout of :func:`replay_top_levels`'s output.
    """
    n = row.height
    columns = set(row.columns)
    depth = max(
        (i + 1 for side in SIDE_CODES for i in range(levels) if f"{side}_price_{i}" in columns),
        default=0,
    )
    prices = np.empty((2, depth, n))
    sizes = np.empty((2, depth, n))
    for s, side in enumerate(SIDE_CODES):
        for i in range(depth):
            price_col, size_col = f"{side}_price_{i}", f"{side}_size_{i}"
            if price_col in columns:
                # Float64 nulls become NaN in to_numpy; cast only if not Float64 already
                prices[s, i] = row[price_col].cast(pl.Float64).to_numpy()
                sizes[s, i] = row[size_col].cast(pl.Float64).to_numpy()
            else:
                prices[s, i] = sizes[s, i] = np.nan
    return price_keys(prices, price_digits), prices, sizes


def initial_state(
    initial: pl.DataFrame | None, levels: int, price_digits: int
) -> tuple[np.ndarray, ...]:
    """The kernel's starting state from one l2 row (default: an empty, complete book)."""
    keys = np.full((2, levels), -1, dtype=np.int64)
    prices = np.full((2, levels), np.nan)
    sizes = np.full((2, levels), np.nan)
    count = np.zeros(2, dtype=np.int64)
    complete = np.ones(2, dtype=np.bool_)
    if initial is None or initial.height == 0:
        return keys, prices, sizes, count, complete
    k, p, s = book_arrays(initial.head(1), levels, price_digits)
    given = sum(1 for c in initial.columns if c.startswith("bid_price_"))
    for side in range(2):
        present = [i for i in range(k.shape[1]) if k[side, i, 0] >= 0]
        count[side] = len(present)
        # a side shorter than the snapshot's depth is exhausted; a full one may go deeper
        complete[side] = len(present) < given or len(present) >= levels
        keys[side, : len(present)] = k[side, present, 0]
        prices[side, : len(present)] = p[side, present, 0]
        sizes[side, : len(present)] = s[side, present, 0]
    return keys, prices, sizes, count, complete
