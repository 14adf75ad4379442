"""L3 (market-by-order) metrics over ``l3`` events, and top-N book reconstruction.

:func:`reconstruct_book` replays L3 events (LOBSTER messages) into ``l2_N`` snapshots,
one row per event, with a Numba kernel (:mod:`ticklake.analytics.kernels.book`).
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

Bucket metrics count events per instrument and bucket; frame metrics that follow
orders through time stamp their result at the moment it is known (first fill, end of
the horizon), never at the add, so joining them backward never looks ahead.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import polars as pl
from pydantic import Field

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.kernels.book import (
    ACTION_CODES,
    SIDE_CODES,
    book_arrays,
    initial_state,
    price_keys,
    replay_top_levels,
)
from ticklake.analytics.registry import MetricParams, NoParams, metric
from ticklake.errors import ConfigError

#: the kernel, typed loosely: mypy cannot see through numba's dispatcher
_REPLAY: Any = replay_top_levels
#: prices become integer keys with this many decimals for exact level matching
DEFAULT_PRICE_DIGITS = 8
#: levels per side tracked when replaying a full-depth feed (deeper ones become unknown)
FULL_FEED_TRACKED_LEVELS = 256
_SIDES = ("bid", "ask")


def _level_columns(levels: int) -> list[str]:
    return [
        f"{side}_{what}_{i}" for side in _SIDES for i in range(levels) for what in ("price", "size")
    ]


def _events(frame: pl.DataFrame, price_digits: int) -> dict[str, np.ndarray]:
    unknown = frame.filter(~pl.col("action").is_in(list(ACTION_CODES)))
    if unknown.height:
        raise ConfigError(
            f"l3 action {unknown['action'][0]!r} (seq {unknown['seq'][0]}) is not one of "
            f"{', '.join(ACTION_CODES)}; conform the frame to the l3 schema first."
        )
    if (frame["action"] == "modify").any():
        raise ConfigError(
            "reconstruct_book replays price levels from each event's price and size; "
            "'modify' events need the order's previous price and size, which l3 rows do "
            "not carry. Translate modifies into cancel + add before replaying."
        )
    return {
        "action": frame["action"].replace_strict(ACTION_CODES, return_dtype=pl.Int64).to_numpy(),
        "side": frame["side"]
        .replace_strict(SIDE_CODES, default=-1, return_dtype=pl.Int64)
        .to_numpy(),
        "price_key": price_keys(frame["price"], price_digits),
        "price": frame["price"].fill_null(np.nan).to_numpy(),
        "size": frame["size"].fill_null(0.0).to_numpy(),
    }


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
    parts = []
    for (instrument,), events in ordered.group_by("instrument", maintain_order=True):
        init = initial.filter(pl.col("instrument") == instrument) if initial is not None else None
        arrays = _events(events, price_digits)
        state = initial_state(init, tracked, price_digits)
        if snapshots is not None:
            aligned = events.select("instrument", "seq").join(
                snapshots, on=["instrument", "seq"], how="left", maintain_order="left"
            )
            snap_key, snap_price, snap_size = book_arrays(aligned, tracked, price_digits)
        else:  # never read: has_snapshots is False
            snap_key = np.full((1, 2, tracked), -1, dtype=np.int64)
            snap_price = snap_size = np.full((1, 2, tracked), np.nan)
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
                for s, side in enumerate(_SIDES)
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
        parts.append(pl.concat([events.select("ts", "instrument", "seq"), book], how="horizontal"))
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
        for side in _SIDES:
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
        for side in _SIDES:
            ordered = sorted(sides[side].items(), reverse=side == "bid")[:levels]
            for i in range(levels):
                price_i, size_i = ordered[i] if i < len(ordered) else (None, None)
                row[f"{side}_price_{i}"] = price_i
                row[f"{side}_size_{i}"] = size_i
        rows.append(row)
    schema = {"instrument": pl.String, **{c: pl.Float64 for c in _level_columns(levels)}}
    return pl.DataFrame(rows, schema=schema)


# --- bucket metrics ------------------------------------------------------------------

_ACTION = pl.col("action")
_REMOVALS = ("cancel", "delete")


def _count(*actions: str) -> pl.Expr:
    return _ACTION.is_in(list(actions)).sum()


def _executed_orders() -> pl.Expr:
    # partial fills of one order count once; hidden executions carry no order id
    visible = pl.col("order_id").filter(_ACTION == "fill").drop_nulls().n_unique()
    return visible + (_ACTION == "fill_hidden").sum()


@metric(
    name="order_add_count",
    family="l3",
    title="Orders added",
    unit="count",
    inputs=("l3.action",),
)
def order_add_count(params: NoParams) -> pl.Expr:
    """The number of new limit orders submitted in the bucket.

    Formula:
        count(action == 'add')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["add", "fill", "add"]}).select(
        ...     order_add_count(NoParams())).item()
        2
    """
    return _count("add").alias("order_add_count")


@metric(
    name="order_cancel_count",
    family="l3",
    title="Orders cancelled (partial and full)",
    unit="count",
    inputs=("l3.action",),
)
def order_cancel_count(params: NoParams) -> pl.Expr:
    """The number of cancellations in the bucket: partial cancels plus full deletions.

    Formula:
        count(action in ('cancel', 'delete'))

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["cancel", "delete", "add"]}).select(
        ...     order_cancel_count(NoParams())).item()
        2
    """
    return _count(*_REMOVALS).alias("order_cancel_count")


@metric(
    name="order_delete_count",
    family="l3",
    title="Orders deleted in full",
    unit="count",
    inputs=("l3.action",),
)
def order_delete_count(params: NoParams) -> pl.Expr:
    """The number of full order deletions in the bucket (partial cancels excluded).

    Formula:
        count(action == 'delete')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["cancel", "delete"]}).select(
        ...     order_delete_count(NoParams())).item()
        1
    """
    return _count("delete").alias("order_delete_count")


@metric(
    name="order_modify_count",
    family="l3",
    title="Orders modified",
    unit="count",
    inputs=("l3.action",),
)
def order_modify_count(params: NoParams) -> pl.Expr:
    """The number of order modifications (price or size amendments) in the bucket.

    LOBSTER has no modify events (a price change is a delete and an add); venues with
    amend messages (Databento MBO, Bitstamp) carry them.

    Formula:
        count(action == 'modify')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["modify", "add"]}).select(
        ...     order_modify_count(NoParams())).item()
        1
    """
    return _count("modify").alias("order_modify_count")


@metric(
    name="visible_execution_count",
    family="l3",
    title="Executions against visible orders",
    unit="count",
    inputs=("l3.action",),
)
def visible_execution_count(params: NoParams) -> pl.Expr:
    """The number of execution messages against displayed orders (each partial fill).

    Formula:
        count(action == 'fill')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["fill", "fill", "fill_hidden"]}).select(
        ...     visible_execution_count(NoParams())).item()
        2
    """
    return _count("fill").alias("visible_execution_count")


@metric(
    name="hidden_execution_count",
    family="l3",
    title="Executions against hidden orders",
    unit="count",
    inputs=("l3.action",),
)
def hidden_execution_count(params: NoParams) -> pl.Expr:
    """The number of execution messages against hidden (non-displayed) orders.

    Formula:
        count(action == 'fill_hidden')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["fill", "fill_hidden"]}).select(
        ...     hidden_execution_count(NoParams())).item()
        1
    """
    return _count("fill_hidden").alias("hidden_execution_count")


@metric(
    name="visible_execution_volume",
    family="l3",
    title="Volume executed against visible orders",
    unit="base units",
    inputs=("l3.action", "l3.size"),
)
def visible_execution_volume(params: NoParams) -> pl.Expr:
    """The quantity executed against displayed orders in the bucket.

    Formula:
        sum(size where action == 'fill')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["fill", "fill_hidden"], "size": [5.0, 7.0]}).select(
        ...     visible_execution_volume(NoParams())).item()
        5.0
    """
    return pl.col("size").filter(_ACTION == "fill").sum().alias("visible_execution_volume")


@metric(
    name="hidden_execution_volume",
    family="l3",
    title="Volume executed against hidden orders",
    unit="base units",
    inputs=("l3.action", "l3.size"),
)
def hidden_execution_volume(params: NoParams) -> pl.Expr:
    """The quantity executed against hidden orders in the bucket.

    Formula:
        sum(size where action == 'fill_hidden')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["fill", "fill_hidden"], "size": [5.0, 7.0]}).select(
        ...     hidden_execution_volume(NoParams())).item()
        7.0
    """
    return pl.col("size").filter(_ACTION == "fill_hidden").sum().alias("hidden_execution_volume")


@metric(
    name="hidden_execution_volume_share",
    family="l3",
    title="Share of executed volume that was hidden",
    unit="ratio",
    inputs=("l3.action", "l3.size"),
)
def hidden_execution_volume_share(params: NoParams) -> pl.Expr:
    """Hidden-liquidity heuristic: the share of executed volume that hit hidden orders.

    Null when nothing executed in the bucket.

    Formula:
        hidden_volume / (hidden_volume + visible_volume)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["fill", "fill_hidden"], "size": [6.0, 2.0]}).select(
        ...     hidden_execution_volume_share(NoParams())).item()
        0.25
    """
    size = pl.col("size")
    hidden = size.filter(_ACTION == "fill_hidden").sum()
    total = size.filter(_ACTION.is_in(["fill", "fill_hidden"])).sum()
    return pl.when(total > 0).then(hidden / total).alias("hidden_execution_volume_share")


@metric(
    name="order_to_trade_ratio",
    family="l3",
    title="Order-to-trade ratio",
    unit="ratio",
    inputs=("l3.action", "l3.order_id"),
)
def order_to_trade_ratio(params: NoParams) -> pl.Expr:
    """Orders submitted per executed order: partial fills of one order count once.

    Trades are the distinct order ids with a visible fill in the bucket plus the hidden
    execution messages (which carry no order id). Null when nothing executed.

    Formula:
        count(add) / (n_unique(order_id of fills) + count(fill_hidden))

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["add", "add", "add", "fill", "fill"],
        ...               "order_id": [1, 2, 3, 1, 1]}).select(
        ...     order_to_trade_ratio(NoParams())).item()
        3.0
    """
    trades = _executed_orders()
    return pl.when(trades > 0).then(_count("add") / trades).alias("order_to_trade_ratio")


@metric(
    name="quote_to_trade_ratio",
    family="l3",
    title="Quote-to-trade ratio",
    unit="ratio",
    inputs=("l3.action", "l3.order_id"),
)
def quote_to_trade_ratio(params: NoParams) -> pl.Expr:
    """Book messages (adds, cancels, deletions, modifies) per executed order.

    Trades are counted as in ``order_to_trade_ratio`` (partial fills once).

    Formula:
        count(action in (add, cancel, delete, modify)) / executed orders

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["add", "delete", "add", "fill", "fill_hidden"],
        ...               "order_id": [1, 1, 2, 2, None]}).select(
        ...     quote_to_trade_ratio(NoParams())).item()
        1.5
    """
    trades = _executed_orders()
    quotes = _count("add", "cancel", "delete", "modify")
    return pl.when(trades > 0).then(quotes / trades).alias("quote_to_trade_ratio")


@metric(
    name="order_cancel_rate",
    family="l3",
    title="Full deletions per order added",
    unit="ratio",
    inputs=("l3.action",),
)
def order_cancel_rate(params: NoParams) -> pl.Expr:
    """Full order deletions per order added in the same bucket.

    Both counts come from the bucket's own events (no look-ahead to an order's fate), so
    the rate can exceed 1 when orders added earlier are deleted. Null without adds.

    Formula:
        count(delete) / count(add)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["add", "add", "add", "add", "delete"]}).select(
        ...     order_cancel_rate(NoParams())).item()
        0.25
    """
    adds = _count("add")
    return pl.when(adds > 0).then(_count("delete") / adds).alias("order_cancel_rate")


# --- frame metrics (path-dependent) ----------------------------------------------------


def _key(price: pl.Expr) -> pl.Expr:
    return (price * 10**DEFAULT_PRICE_DIGITS).round().cast(pl.Int64)


def _per_bucket(
    rows: pl.DataFrame, ts_column: str, bucket: BucketSpec | None, aggregations: list[pl.Expr]
) -> pl.DataFrame:
    bucket = bucket or BucketSpec()
    return (
        rows.with_columns(bucket.label_expr(pl.col(ts_column)).alias("_bucket"))
        .group_by("instrument", "_bucket")
        .agg(aggregations)
        .rename({"_bucket": "ts"})
        .sort("instrument", "ts")
    )


def _orders(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per order added in the frame: add time, price, side, first visible fill."""
    adds = frame.filter((_ACTION == "add") & pl.col("order_id").is_not_null()).select(
        "instrument", "order_id", "side", "price", add_ts="ts"
    )
    fills = (
        frame.filter(_ACTION == "fill")
        .group_by("instrument", "order_id")
        .agg(first_fill_ts=pl.col("ts").min(), fill_count=pl.len())
    )
    ends = (
        frame.filter(_ACTION == "delete")
        .group_by("instrument", "order_id")
        .agg(delete_ts=pl.col("ts").min())
    )
    return (
        adds.unique(["instrument", "order_id"], keep="first", maintain_order=True)
        .join(fills, on=["instrument", "order_id"], how="left")
        .join(ends, on=["instrument", "order_id"], how="left")
        .with_columns(
            # a fill or delete recorded before the add belongs to an earlier order id use
            pl.when(pl.col("first_fill_ts") >= pl.col("add_ts")).then(pl.col("first_fill_ts")),
        )
    )


class FillHorizonParams(MetricParams):
    horizon_seconds: float = Field(default=60.0, gt=0, description="look-forward horizon")


@metric(
    name="fill_probability",
    family="l3",
    title="Probability an order is filled within a horizon",
    unit="ratio",
    inputs=("l3.action", "l3.order_id", "l3.ts"),
    kind="frame",
    params=FillHorizonParams,
    output="fill_probability_{horizon_seconds:g}s",
)
def fill_probability(
    frame: pl.DataFrame, params: FillHorizonParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """Share of orders added that receive a visible fill within ``horizon_seconds``.

    An order's outcome is known only at ``add_ts + horizon``, so it is counted in the
    bucket containing that moment, never in the add's bucket (no look-ahead). Orders
    whose horizon ends after the frame's last event are left out (outcome unknown).

    Formula:
        mean(first_fill_ts - add_ts <= horizon) over orders, bucketed by add_ts + horizon

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta, timezone
        >>> t = datetime(2024, 1, 2, 10, tzinfo=timezone.utc)
        >>> s = lambda x: t + timedelta(seconds=x)
        >>> f = pl.DataFrame({"ts": [s(0), s(1), s(5), s(100)], "instrument": "X",
        ...     "action": ["add", "add", "fill", "add"], "order_id": [1, 2, 1, 3],
        ...     "side": "bid", "price": 10.0, "size": 1.0})
        >>> out = fill_probability(f, FillHorizonParams(horizon_seconds=10))
        >>> out["fill_probability_10s"].to_list()
        [0.5]
    """
    horizon = pl.duration(microseconds=round(params.horizon_seconds * 1e6))
    last = frame.group_by("instrument").agg(last_ts=pl.col("ts").max())
    orders = (
        _orders(frame)
        .join(last, on="instrument")
        .with_columns(known_ts=pl.col("add_ts") + horizon)
        .filter(pl.col("known_ts") <= pl.col("last_ts"))
    )
    filled = pl.col("first_fill_ts").is_not_null() & (pl.col("first_fill_ts") <= pl.col("known_ts"))
    name = fill_probability_output(params)
    return _per_bucket(orders, "known_ts", bucket, [filled.mean().alias(name)])


def fill_probability_output(params: FillHorizonParams) -> str:
    return f"fill_probability_{params.horizon_seconds:g}s"


@metric(
    name="resting_time_at_best_before_first_fill",
    family="l3",
    title="Time an order rested at the best price before its first fill",
    unit="seconds",
    inputs=("l3.action", "l3.order_id", "l3.price", "l3.side", "l2.bid_price_0"),
    kind="frame",
    output="resting_time_at_best_before_first_fill_seconds",
)
def resting_time_at_best_before_first_fill(
    frame: pl.DataFrame,
    params: NoParams,
    bucket: BucketSpec | None = None,
    *,
    book: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Mean time filled orders spent at their side's best price between add and first fill.

    Only orders added inside the frame and filled later count; each is stamped at its
    first fill (the moment the value is known). The best prices come from ``book``
    (l2 rows aligned by ``seq``, e.g. LOBSTER's book file) or, without it, from replaying
    the frame (:func:`reconstruct_book`, empty start).

    Formula:
        mean over filled orders of ∫[add_ts, first_fill_ts) 1{best(side) == price} dt

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta, timezone
        >>> t = datetime(2024, 1, 2, 10, tzinfo=timezone.utc)
        >>> s = lambda x: t + timedelta(seconds=x)
        >>> f = pl.DataFrame({"ts": [s(0), s(1), s(4), s(6)], "instrument": "X",
        ...     "seq": [1, 2, 3, 4], "action": ["add", "add", "delete", "fill"],
        ...     "order_id": [1, 2, 2, 1], "side": "bid", "price": [10.0, 10.1, 10.1, 10.0],
        ...     "size": 1.0})
        >>> resting_time_at_best_before_first_fill(f, NoParams()).item(0, 2)
        3.0
    """
    name = "resting_time_at_best_before_first_fill_seconds"
    measured = _resting_times(frame, book)
    return _per_bucket(measured, "first_fill_ts", bucket, [pl.col("seconds").mean().alias(name)])


def _resting_times(frame: pl.DataFrame, book: pl.DataFrame | None) -> pl.DataFrame:
    """Per filled order: ``seconds`` at the best price between its add and first fill."""
    best = book if book is not None else reconstruct_book(frame, 1)
    states = frame.select("instrument", "seq", "ts").join(
        best.select("instrument", "seq", "bid_price_0", "ask_price_0"),
        on=["instrument", "seq"],
        how="left",
    )
    runs = []
    for side in _SIDES:
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
            .select("instrument", "side", start="ts", end="end", price_key=_key(price))
        )
    run_frame = (
        pl.concat(runs)
        .sort("instrument", "side", "price_key", "start")
        .with_columns(
            duration=(pl.col("end") - pl.col("start")).dt.total_nanoseconds(),
        )
        .with_columns(
            cum_before=pl.col("duration").cum_sum().over("instrument", "side", "price_key")
            - pl.col("duration")
        )
    )
    orders = (
        _orders(frame)
        .filter(pl.col("first_fill_ts").is_not_null())
        .with_columns(price_key=_key(pl.col("price")))
    )

    def time_at_best_until(column: str) -> pl.DataFrame:
        # F(t): ns the best price equalled the order's price up to t
        return (
            orders.sort(column)
            .join_asof(
                run_frame.sort("start"),
                left_on=column,
                right_on="start",
                by=["instrument", "side", "price_key"],
                strategy="backward",
                check_sortedness=False,
            )
            .with_columns(
                pl.when(pl.col("start").is_null())
                .then(0)
                .otherwise(
                    pl.col("cum_before")
                    + pl.min_horizontal(
                        pl.col("duration"),
                        (pl.col(column) - pl.col("start")).dt.total_nanoseconds(),
                    )
                )
                .alias(f"F_{column}")
            )
            .select("instrument", "order_id", f"F_{column}")
        )

    return (
        orders.join(time_at_best_until("add_ts"), on=["instrument", "order_id"])
        .join(time_at_best_until("first_fill_ts"), on=["instrument", "order_id"])
        .with_columns(seconds=(pl.col("F_first_fill_ts") - pl.col("F_add_ts")) / 1e9)
    )


class RefillParams(MetricParams):
    window_seconds: float = Field(
        default=0.01, gt=0, description="max delay from a fill to the add that refills it"
    )


@metric(
    name="price_level_refill_count",
    family="l3",
    title="Refills at the price of a just-executed order (iceberg heuristic)",
    unit="count",
    inputs=("l3.action", "l3.side", "l3.price", "l3.ts"),
    kind="frame",
    params=RefillParams,
    output="price_level_refill_count_{window_seconds:g}s",
)
def price_level_refill_count(
    frame: pl.DataFrame, params: RefillParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """Iceberg heuristic: adds on the same side and price as a visible fill just before.

    An iceberg order shows a small peak; when the peak is executed a new peak appears
    at the same price moments later. Each add arriving within ``window_seconds`` after
    a visible fill at the same side and price counts once, in the add's bucket.

    Formula:
        count(add where a fill at (side, price) happened in [ts - window, ts])

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, timedelta, timezone
        >>> t = datetime(2024, 1, 2, 10, tzinfo=timezone.utc)
        >>> s = lambda ms: t + timedelta(milliseconds=ms)
        >>> f = pl.DataFrame({"ts": [s(0), s(2), s(50), s(500)], "instrument": "X",
        ...     "action": ["fill", "add", "fill", "add"], "side": "ask",
        ...     "price": 10.0, "size": 1.0})
        >>> price_level_refill_count(f, RefillParams()).item(0, 2)
        1
    """
    name = f"price_level_refill_count_{params.window_seconds:g}s"
    fills = (
        frame.filter(_ACTION == "fill")
        .select("instrument", "side", "price", fill_ts="ts")
        .sort("fill_ts")
    )
    adds = frame.filter(_ACTION == "add").select("instrument", "side", "price", "ts").sort("ts")
    matched = adds.join_asof(
        fills,
        left_on="ts",
        right_on="fill_ts",
        by=["instrument", "side", "price"],
        strategy="backward",
        check_sortedness=False,
        tolerance=timedelta_from_seconds(params.window_seconds),
    )
    return _per_bucket(matched, "ts", bucket, [pl.col("fill_ts").is_not_null().sum().alias(name)])


def timedelta_from_seconds(seconds: float) -> _dt.timedelta:
    return _dt.timedelta(microseconds=round(seconds * 1e6))
