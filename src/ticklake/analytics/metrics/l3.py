"""L3 (market-by-order) metrics over ``l3`` events: order flow, executions, order fate.

Bucket metrics count events per instrument and bucket; frame metrics that follow
orders through time stamp their result at the moment it is known (first fill, end of
the horizon), never at the add, so joining them backward never looks ahead. The book
replay (:func:`reconstruct_book`, :func:`lobster_initial_book`) lives in
:mod:`ticklake.analytics.metrics.l3_replay` and is re-exported here: the ``l3_to_l2``
pre-processor finds it as ``ticklake.analytics.metrics.l3:reconstruct_book``.

Venue semantics: executions against visible orders are LOBSTER's ``fill`` and
Databento's ``fill_report``; the ``fill_removal`` with which Databento then takes a
filled order off the book is neither a cancel nor a second execution.
"""

from __future__ import annotations

import datetime as _dt

import polars as pl
from pydantic import Field

from ticklake.analytics.buckets import BucketSpec

# the book replay's public names are re-exported: they stay importable from here
from ticklake.analytics.metrics.l3_replay import (
    DEFAULT_PRICE_DIGITS,  # noqa: F401
    FULL_FEED_TRACKED_LEVELS,  # noqa: F401
    best_price_runs,
    lobster_initial_book,  # noqa: F401
    price_key_expr,
    reconstruct_book,  # noqa: F401
)
from ticklake.analytics.registry import MetricParams, NoParams, metric

# --- bucket metrics ------------------------------------------------------------------

_ACTION = pl.col("action")
_REMOVALS = ("cancel", "delete")
#: executions against visible orders: LOBSTER's fill, Databento's fill report
_FILLS = ("fill", "fill_report")


def _count(*actions: str) -> pl.Expr:
    return _ACTION.is_in(list(actions)).sum()


def _executed_orders() -> pl.Expr:
    # partial fills of one order count once; hidden executions carry no order id
    visible = pl.col("order_id").filter(_ACTION.is_in(_FILLS)).drop_nulls().n_unique()
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

    A ``fill_removal`` (Databento's cancel record taking a filled order off the book)
    is an execution, not a cancellation, and is not counted.

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
        count(action in ('fill', 'fill_report'))

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["fill", "fill", "fill_hidden"]}).select(
        ...     visible_execution_count(NoParams())).item()
        2
    """
    return _count(*_FILLS).alias("visible_execution_count")


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
        sum(size where action in ('fill', 'fill_report'))

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"action": ["fill", "fill_hidden"], "size": [5.0, 7.0]}).select(
        ...     visible_execution_volume(NoParams())).item()
        5.0
    """
    visible = _ACTION.is_in(_FILLS)
    return pl.col("size").filter(visible).sum().alias("visible_execution_volume")


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
    total = size.filter(_ACTION.is_in([*_FILLS, "fill_hidden"])).sum()
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
        frame.filter(_ACTION.is_in(_FILLS))
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
    run_frame = (
        best_price_runs(frame, book)
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
        .with_columns(price_key=price_key_expr(pl.col("price")))
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
        frame.filter(_ACTION.is_in(_FILLS))
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
