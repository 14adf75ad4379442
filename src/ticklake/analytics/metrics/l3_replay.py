"""Book replay: L3 events (LOBSTER messages) into top-N ``l2_N`` book snapshots.

:func:`reconstruct_book` replays L3 events into ``l2_N`` snapshots, one row per event,
with the Numba kernel of :mod:`ticklake.analytics.kernels.book`; :func:`best_price_runs`
turns the replayed (or a given) book into the runs during which each best price held.
This module registers no metrics: the L3 metric family is
:mod:`ticklake.analytics.metrics.l3`, which re-exports the public names here.
LOBSTER conventions it follows (lobsterdata.com, "reconstruction details" and the
sample ReadMe):

- LOBSTER starts each day from an **empty book** before the first pre-open order; the
  default ``initial`` is that empty book. A sample file starts at 09:30 with the
  pre-open orders already resting, visible only through their later messages: pass
  :func:`lobster_initial_book` (the first book row with the first message undone).
- Hidden executions (``fill_hidden``), cross trades and halts do not change the book;
  a halt row repeats the previous book.
- A level-N message file carries only events inside the top N levels, so a level that
  enters the window from deeper is not in the messages. Without ``snapshots`` that
  level is null (unknown); with LOBSTER's aligned order-book file as ``snapshots``,
  exactly those entering levels are taken from it (``with_coverage`` marks the rows).

Venue semantics: the replay follows each action's canonical meaning, never the venue.
LOBSTER's ``fill`` reduces the resting order. Databento's fill records (``fill_report``)
do not change the book; the ``fill_removal`` (or ``cancel`` / ``modify``) that follows
does. A ``modify`` sets the order's new price and size: the replay follows orders by
``order_id`` (reset by a ``clear``) and plays it as the removal of the order's remaining
size at its previous price plus an add of the new state; a modify of an order not seen
since the frame's start (or the last clear) is an add of its new state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ticklake.analytics.kernels.book import (
    ACTION_CODES,
    SIDE_CODES,
    book_arrays,
    initial_state,
    price_keys,
    replay_top_levels,
)
from ticklake.errors import ConfigError

#: the kernel, typed loosely: mypy cannot see through numba's dispatcher
_REPLAY: Any = replay_top_levels
#: prices become integer keys with this many decimals for exact level matching
DEFAULT_PRICE_DIGITS = 8
#: levels per side tracked when replaying a full-depth feed (deeper ones become unknown)
FULL_FEED_TRACKED_LEVELS = 256
#: the book's sides, in the order of the level columns
SIDES = ("bid", "ask")
#: kernel codes of the canonical actions: a fill report changes nothing (code 0 is no
#: action in the kernel), a fill removal takes size off a level like a cancel
REPLAY_CODES = {**ACTION_CODES, "fill_report": 0, "fill_removal": ACTION_CODES["cancel"]}
#: actions that set an order's price and size, and those that take size off it
_SETS = ("add", "modify")
_REDUCES = ("cancel", "delete", "fill", "fill_removal")


def _level_columns(levels: int) -> list[str]:
    return [
        f"{side}_{what}_{i}" for side in SIDES for i in range(levels) for what in ("price", "size")
    ]


def _events(frame: pl.DataFrame, price_digits: int) -> dict[str, np.ndarray]:
    unknown = frame.filter(~pl.col("action").is_in(list(REPLAY_CODES)))
    if unknown.height:
        raise ConfigError(
            f"l3 action {unknown['action'][0]!r} (seq {unknown['seq'][0]}) is not one of "
            f"{', '.join(REPLAY_CODES)}; conform the frame to the l3 schema first."
        )
    price = frame["price"].cast(pl.Float64).to_numpy()  # null -> NaN
    return {
        "action": frame["action"].replace_strict(REPLAY_CODES, return_dtype=pl.Int64).to_numpy(),
        "side": frame["side"]
        .replace_strict(SIDE_CODES, default=-1, return_dtype=pl.Int64)
        .to_numpy(),
        "price_key": price_keys(price, price_digits),
        "price": price,
        "size": frame["size"].fill_null(0.0).to_numpy(),
    }


def modifies_as_delete_add(ordered: pl.DataFrame) -> pl.DataFrame:
    """``ordered`` (sorted by instrument, ts, seq) with each ``modify`` as a delete + add.

    A modify carries the order's new price and size only. The order's previous state is
    its last add/modify of the same ``order_id`` (since the instrument's last ``clear``)
    less what cancels, deletions, fills and fill removals took off it since; when the
    order still rested, a ``delete`` of that size at that price is inserted before the
    modify (marked ``_aux`` True, same key), and the modify itself becomes an ``add``.
    Adds a boolean ``_aux`` column; frames without modifies come back otherwise as given.
    """
    if not (ordered["action"] == "modify").any():
        return ordered.with_columns(_aux=pl.lit(False))
    if "order_id" not in ordered.columns:
        raise ConfigError(
            "reconstruct_book: 'modify' events set an order's new price and size; "
            "following them needs the l3 'order_id' column."
        )
    rows = ordered.with_row_index("_row").with_columns(
        _epoch=(pl.col("action") == "clear").cum_sum().over("instrument")
    )
    key = ["instrument", "_epoch", "order_id"]
    sets = pl.col("action").is_in(_SETS)
    segment = [*key, "_seg"]
    starts_known = pl.col("action").first().over(segment).is_in(_SETS)
    removed = pl.when(sets).then(0.0).otherwise(pl.col("size").fill_null(0.0))
    previous = (
        rows.filter(pl.col("order_id").is_not_null() & pl.col("action").is_in(_SETS + _REDUCES))
        .with_columns(_seg=sets.cast(pl.Int64).cum_sum().over(key))
        .with_columns(
            _price_after=pl.when(starts_known).then(pl.col("price").first().over(segment)),
            _left_after=pl.when(starts_known).then(
                pl.col("size").first().over(segment) - removed.cum_sum().over(segment)
            ),
        )
        .with_columns(
            _prev_price=pl.col("_price_after").shift().over(key),
            _prev_left=pl.col("_left_after").shift().over(key),
        )
        .filter(
            (pl.col("action") == "modify")
            & pl.col("_prev_price").is_not_null()
            & (pl.col("_prev_left") > 0)
        )
    )
    deletes = previous.with_columns(
        action=pl.lit("delete"), price=pl.col("_prev_price"), size=pl.col("_prev_left")
    ).select(*rows.columns, _aux=pl.lit(True))
    main = rows.with_columns(
        action=pl.when(pl.col("action") == "modify").then(pl.lit("add")).otherwise("action"),
        _aux=pl.lit(False),
    )
    return (
        pl.concat([deletes, main])
        .sort("_row", "_aux", descending=[False, True], maintain_order=True)
        .drop("_row", "_epoch")
    )


def _aligned(ordered: pl.DataFrame, snapshots: pl.DataFrame) -> bool:
    """Whether ``snapshots`` already has ``ordered``'s rows, in order, by (instrument, seq)."""
    if snapshots.height != ordered.height or ordered["seq"].null_count():
        return False
    try:
        same_seq = np.array_equal(ordered["seq"].to_numpy(), snapshots["seq"].to_numpy())
        return same_seq and ordered["instrument"].equals(snapshots["instrument"])
    except (TypeError, pl.exceptions.PolarsError):  # other dtypes: let the join decide
        return False


def reconstruct_book(
    frame: pl.DataFrame,
    levels: int,
    *,
    initial: pl.DataFrame | None = None,
    snapshots: pl.DataFrame | None = None,
    window_levels: int | None = None,
    price_digits: int = DEFAULT_PRICE_DIGITS,
    with_coverage: bool = False,
) -> pl.DataFrame:
    """Replay L3 events into top-``levels`` book snapshots, one row per event.

    ``frame`` holds l3 rows (``ts, instrument, seq, action, side, price, size``);
    ``initial`` one l2 row per instrument: the book before its first event (default:
    empty, LOBSTER's start of day); ``snapshots`` l2 rows aligned to the events by
    ``(instrument, seq)``, used only for levels entering the window from deeper.
    ``window_levels`` is the depth the events describe (LOBSTER: the file's N); the
    default treats the feed as full-depth and tracks up to 256 levels a side. Returns
    ``ts, instrument, seq`` and the ``l2_{levels}`` level columns (null = no level, or
    unknown); ``with_coverage`` adds ``bid_levels_known``, ``ask_levels_known`` and
    ``snapshot_refill``.

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, timezone
        >>> t = datetime(2012, 6, 21, 13, 30, tzinfo=timezone.utc)
        >>> events = pl.DataFrame({
        ...     "ts": [t] * 4, "instrument": ["X"] * 4, "seq": [1, 2, 3, 4],
        ...     "action": ["add", "add", "fill", "fill_hidden"],
        ...     "side": ["bid", "ask", "bid", "ask"], "price": [10.0, 10.5, 10.0, 10.2],
        ...     "size": [100.0, 50.0, 30.0, 9.0]})
        >>> book = reconstruct_book(events, 1)
        >>> book.select("bid_price_0", "bid_size_0", "ask_price_0").rows()[-2:]
        [(10.0, 70.0, 10.5), (10.0, 70.0, 10.5)]
    """
    if levels < 1:
        raise ConfigError(f"reconstruct_book: levels={levels} must be at least 1")
    tracked = window_levels or max(levels, FULL_FEED_TRACKED_LEVELS)
    if tracked < levels:
        raise ConfigError(
            f"reconstruct_book: levels={levels} is deeper than window_levels={window_levels}; "
            "events of a level-N file only describe the top N levels"
        )
    ordered = frame.sort("instrument", "ts", "seq", maintain_order=True)
    expanded = modifies_as_delete_add(ordered)
    # snapshots row for row like the events (LOBSTER's book file): slice, skip the join
    in_order = (
        snapshots is not None and expanded.height == ordered.height and _aligned(ordered, snapshots)
    )
    parts = []
    offset = 0
    for (instrument,), events in expanded.group_by("instrument", maintain_order=True):
        init = initial.filter(pl.col("instrument") == instrument) if initial is not None else None
        arrays = _events(events, price_digits)
        state = initial_state(init, tracked, price_digits)
        if snapshots is not None:
            if in_order:  # groups are contiguous slices of the sorted frame
                aligned = snapshots.slice(offset, events.height)
            else:
                aligned = events.select("instrument", "seq").join(
                    snapshots, on=["instrument", "seq"], how="left", maintain_order="left"
                )
            snap_key, snap_price, snap_size = book_arrays(aligned, tracked, price_digits)
        else:  # never read: has_snapshots is False
            snap_key = np.full((2, 0, 1), -1, dtype=np.int64)
            snap_price = snap_size = np.full((2, 0, 1), np.nan)
        offset += events.height
        out_price, out_size, out_known, refilled = _REPLAY(
            arrays["action"],
            arrays["side"],
            arrays["price_key"],
            arrays["price"],
            arrays["size"],
            tracked,
            levels,
            *state,
            snap_key,
            snap_price,
            snap_size,
            snapshots is not None,
        )
        book = pl.DataFrame(
            [
                pl.Series(f"{side}_{what}_{i}", values[s, i], nan_to_null=True)
                for s, side in enumerate(SIDES)
                for i in range(levels)
                for what, values in (("price", out_price), ("size", out_size))
            ]
        )
        if with_coverage:
            book = book.with_columns(
                bid_levels_known=out_known[:, 0],
                ask_levels_known=out_known[:, 1],
                snapshot_refill=refilled,
            )
        rows = pl.concat([events.select("ts", "instrument", "seq"), book], how="horizontal")
        parts.append(rows.filter(~events["_aux"]))
    if not parts:
        empty = {c: pl.Float64 for c in _level_columns(levels)}
        return ordered.select("ts", "instrument", "seq").with_columns(
            pl.lit(None, dtype=t).alias(c) for c, t in empty.items()
        )
    return pl.concat(parts)


def lobster_initial_book(messages: pl.DataFrame, book: pl.DataFrame) -> pl.DataFrame:
    """The book before each instrument's first LOBSTER message.

    LOBSTER's first order-book row is the state *after* the first message and holds the
    orders resting since the pre-open; undoing that one message gives the state before
    it. Returns one l2 row per instrument (``instrument`` + level columns).
    """
    levels = sum(1 for c in book.columns if c.startswith("bid_price_"))
    rows = []
    for (instrument,), first_rows in book.sort("seq").group_by("instrument", maintain_order=True):
        first = first_rows.head(1)
        message = messages.filter(
            (pl.col("instrument") == instrument) & (pl.col("seq") == first["seq"][0])
        ).row(0, named=True)
        sides: dict[str, dict[float, float]] = {}
        for side in SIDES:
            sides[side] = {
                first[f"{side}_price_{i}"][0]: first[f"{side}_size_{i}"][0]
                for i in range(levels)
                if first[f"{side}_price_{i}"][0] is not None
            }
        action, side, price, size = (message[k] for k in ("action", "side", "price", "size"))
        if side in sides and action in ("add", "cancel", "delete", "fill"):
            level = sides[side]
            level[price] = level.get(price, 0.0) + (-size if action == "add" else size)
            if level[price] <= 0:
                del level[price]
        row: dict[str, object] = {"instrument": instrument}
        for side in SIDES:
            ordered = sorted(sides[side].items(), reverse=side == "bid")[:levels]
            for i in range(levels):
                price_i, size_i = ordered[i] if i < len(ordered) else (None, None)
                row[f"{side}_price_{i}"] = price_i
                row[f"{side}_size_{i}"] = size_i
        rows.append(row)
    schema = {"instrument": pl.String, **{c: pl.Float64 for c in _level_columns(levels)}}
    return pl.DataFrame(rows, schema=schema)


def price_key_expr(price: pl.Expr) -> pl.Expr:
    """``price`` as an integer key with ``DEFAULT_PRICE_DIGITS`` decimals (exact matching)."""
    return (price * 10**DEFAULT_PRICE_DIGITS).round().cast(pl.Int64)


def best_price_runs(frame: pl.DataFrame, book: pl.DataFrame | None = None) -> pl.DataFrame:
    """The runs during which each side's best price held, per instrument.

    The best prices come from ``book`` (l2 rows aligned to ``frame``'s events by
    ``(instrument, seq)``, e.g. LOBSTER's book file) or, without it, from replaying
    ``frame`` (:func:`reconstruct_book`, empty start). The state after the last event at
    a timestamp is the one in force; a run ends at the next change of that side's best
    price. Returns ``instrument, side, start, end, price_key`` (see
    :func:`price_key_expr`); runs without a best price or without an end are left out.
    """
    best = book if book is not None else reconstruct_book(frame, 1)
    states = frame.select("instrument", "seq", "ts").join(
        best.select("instrument", "seq", "bid_price_0", "ask_price_0"),
        on=["instrument", "seq"],
        how="left",
    )
    runs = []
    for side in SIDES:
        price = pl.col(f"{side}_price_0")
        runs.append(
            states.sort("instrument", "ts", "seq")
            .with_columns(
                # the state after the last event at a timestamp is the one in force
                price.last().over("instrument", "ts")
            )
            .unique(["instrument", "ts"], keep="last", maintain_order=True)
            .filter(price.ne_missing(price.shift().over("instrument")))
            .with_columns(
                end=pl.col("ts").shift(-1).over("instrument"),
                side=pl.lit(side),
                best_price=price,
            )
            .filter(pl.col("end").is_not_null() & pl.col("best_price").is_not_null())
            .select("instrument", "side", start="ts", end="end", price_key=price_key_expr(price))
        )
    return pl.concat(runs)
