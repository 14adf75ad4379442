"""Trade metrics over ``trades`` rows (``ts, price, size, side``) per time bucket.

Bucket metrics are aggregations evaluated inside ``group_by_dynamic`` per instrument;
"first" and "last" are by time (rows sharing a timestamp keep their stored order).
``side`` is the aggressor side (``'buy'``, ``'sell'`` or null when the venue does not
say): side-based metrics only count trades whose side is known.
"""

from __future__ import annotations

from typing import Literal

import polars as pl
from pydantic import Field

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.registry import MetricParams, NoParams, metric

PRICE = pl.col("price")
SIZE = pl.col("size")
SIDE = pl.col("side")


def _by_time(expr: pl.Expr) -> pl.Expr:
    return expr.sort_by("ts", maintain_order=True)


@metric(
    name="trade_volume",
    family="trade",
    title="Traded volume",
    unit="base units",
    inputs=("trades.size",),
)
def trade_volume(params: NoParams) -> pl.Expr:
    """The quantity traded in the bucket, in the instrument's base units (shares, coins).

    Formula:
        sum(size)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"size": [1.5, 2.0]}).select(trade_volume(NoParams())).item()
        3.5
    """
    return SIZE.sum().alias("trade_volume")


@metric(
    name="trade_notional",
    family="trade",
    title="Traded notional",
    unit="quote currency",
    inputs=("trades.price", "trades.size"),
)
def trade_notional(params: NoParams) -> pl.Expr:
    """The value traded in the bucket, in the quote currency (price times size).

    Formula:
        sum(price * size)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [10.0, 20.0], "size": [1.0, 2.0]}).select(
        ...     trade_notional(NoParams())).item()
        50.0
    """
    return (PRICE * SIZE).sum().alias("trade_notional")


@metric(
    name="trade_count",
    family="trade",
    title="Number of trades",
    unit="count",
    inputs=("trades.price",),
)
def trade_count(params: NoParams) -> pl.Expr:
    """The number of trades (prints) in the bucket.

    Formula:
        count(rows)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [10.0, 20.0]}).select(trade_count(NoParams())).item()
        2
    """
    return pl.len().alias("trade_count")


@metric(
    name="open_price",
    family="trade",
    title="Open (first trade price)",
    unit="price",
    inputs=("trades.ts", "trades.price"),
)
def open_price(params: NoParams) -> pl.Expr:
    """The price of the bucket's first trade by time.

    Formula:
        price of the trade with the smallest ts (ties: first stored)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"ts": [2, 1, 1], "price": [10.0, 11.0, 12.0]}).select(
        ...     open_price(NoParams())).item()
        11.0
    """
    return _by_time(PRICE).first().alias("open_price")


@metric(
    name="high_price",
    family="trade",
    title="High (highest trade price)",
    unit="price",
    inputs=("trades.price",),
)
def high_price(params: NoParams) -> pl.Expr:
    """The highest trade price in the bucket.

    Formula:
        max(price)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [10.0, 12.0]}).select(high_price(NoParams())).item()
        12.0
    """
    return PRICE.max().alias("high_price")


@metric(
    name="low_price",
    family="trade",
    title="Low (lowest trade price)",
    unit="price",
    inputs=("trades.price",),
)
def low_price(params: NoParams) -> pl.Expr:
    """The lowest trade price in the bucket.

    Formula:
        min(price)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [10.0, 12.0]}).select(low_price(NoParams())).item()
        10.0
    """
    return PRICE.min().alias("low_price")


@metric(
    name="close_price",
    family="trade",
    title="Close (last trade price)",
    unit="price",
    inputs=("trades.ts", "trades.price"),
)
def close_price(params: NoParams) -> pl.Expr:
    """The price of the bucket's last trade by time.

    Formula:
        price of the trade with the largest ts (ties: last stored)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"ts": [3, 1, 3], "price": [10.0, 11.0, 12.0]}).select(
        ...     close_price(NoParams())).item()
        12.0
    """
    return _by_time(PRICE).last().alias("close_price")


@metric(
    name="vwap_price",
    family="trade",
    title="Volume-weighted average price",
    unit="price",
    inputs=("trades.price", "trades.size"),
    aliases=("vwap",),
)
def vwap_price(params: NoParams) -> pl.Expr:
    """The size-weighted average trade price of the bucket; null without volume.

    Formula:
        sum(price * size) / sum(size)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [10.0, 20.0], "size": [3.0, 1.0]}).select(
        ...     vwap_price(NoParams())).item()
        12.5
    """
    volume = SIZE.sum()
    return pl.when(volume > 0).then((PRICE * SIZE).sum() / volume).alias("vwap_price")


@metric(
    name="buy_volume",
    family="trade",
    title="Buyer-initiated volume",
    unit="base units",
    inputs=("trades.size", "trades.side"),
)
def buy_volume(params: NoParams) -> pl.Expr:
    """The volume of trades whose aggressor was the buyer.

    Formula:
        sum(size where side == 'buy')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"size": [1.0, 2.0, 4.0], "side": ["buy", "sell", None]}).select(
        ...     buy_volume(NoParams())).item()
        1.0
    """
    return SIZE.filter(SIDE == "buy").sum().alias("buy_volume")


@metric(
    name="sell_volume",
    family="trade",
    title="Seller-initiated volume",
    unit="base units",
    inputs=("trades.size", "trades.side"),
)
def sell_volume(params: NoParams) -> pl.Expr:
    """The volume of trades whose aggressor was the seller.

    Formula:
        sum(size where side == 'sell')

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"size": [1.0, 2.0, 4.0], "side": ["buy", "sell", None]}).select(
        ...     sell_volume(NoParams())).item()
        2.0
    """
    return SIZE.filter(SIDE == "sell").sum().alias("sell_volume")


@metric(
    name="trade_imbalance",
    family="trade",
    title="Buy/sell volume imbalance",
    unit="ratio (-1..1)",
    inputs=("trades.size", "trades.side"),
)
def trade_imbalance(params: NoParams) -> pl.Expr:
    """Aggressor volume imbalance over trades whose side is known, from -1 to 1.

    Null when no trade in the bucket has a known side.

    Formula:
        (buy_volume - sell_volume) / (buy_volume + sell_volume)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"size": [3.0, 1.0, 9.0], "side": ["buy", "sell", None]}).select(
        ...     trade_imbalance(NoParams())).item()
        0.5
    """
    buy = SIZE.filter(SIDE == "buy").sum()
    sell = SIZE.filter(SIDE == "sell").sum()
    return pl.when(buy + sell > 0).then((buy - sell) / (buy + sell)).alias("trade_imbalance")


class SizeStatisticParams(MetricParams):
    statistic: Literal["mean", "median", "max"] = "mean"


@metric(
    name="trade_size",
    family="trade",
    title="Trade size statistic",
    unit="base units",
    inputs=("trades.size",),
    params=SizeStatisticParams,
    output="trade_size_{statistic}",
)
def trade_size(params: SizeStatisticParams) -> pl.Expr:
    """The mean, median or largest trade size in the bucket.

    Formula:
        mean(size) | median(size) | max(size)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"size": [1.0, 2.0, 9.0]})
        >>> df.select(trade_size(SizeStatisticParams(statistic="median"))).item()
        2.0
    """
    stat = {"mean": SIZE.mean(), "median": SIZE.median(), "max": SIZE.max()}[params.statistic]
    return stat.alias(f"trade_size_{params.statistic}")


class LargeTradeQuantileParams(MetricParams):
    quantile: float = Field(
        default=0.9, gt=0, lt=1, description="size quantile of the bucket's own trades"
    )


@metric(
    name="large_trade_count_quantile",
    family="trade",
    title="Trades at or above a size quantile",
    unit="count",
    inputs=("trades.size",),
    params=LargeTradeQuantileParams,
    output="large_trade_count_quantile_{quantile:g}",
)
def large_trade_count_quantile(params: LargeTradeQuantileParams) -> pl.Expr:
    """The number of trades at least as large as the bucket's own size quantile.

    The quantile (linear interpolation) comes from the bucket's trades only, so it never
    uses data from after the bucket.

    Formula:
        count(size >= quantile(size, q))

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"size": [1.0, 2.0, 3.0, 10.0, 50.0]})
        >>> df.select(large_trade_count_quantile(LargeTradeQuantileParams(quantile=0.5))).item()
        3
    """
    threshold = SIZE.quantile(params.quantile, interpolation="linear")
    return (
        (pl.col("size") >= threshold).sum().alias(f"large_trade_count_quantile_{params.quantile:g}")
    )


class LargeTradeSizeParams(MetricParams):
    min_size: float = Field(
        default=1000.0, gt=0, description="absolute size threshold in base units"
    )


@metric(
    name="large_trade_count_min_size",
    family="trade",
    title="Trades at or above an absolute size",
    unit="count",
    inputs=("trades.size",),
    params=LargeTradeSizeParams,
    output="large_trade_count_min_size_{min_size:g}",
)
def large_trade_count_min_size(params: LargeTradeSizeParams) -> pl.Expr:
    """The number of trades of at least ``min_size`` base units (choose it per instrument).

    Formula:
        count(size >= min_size)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"size": [1.0, 2.0, 3.0, 10.0, 50.0]})
        >>> df.select(large_trade_count_min_size(LargeTradeSizeParams(min_size=10))).item()
        2
    """
    return (
        (pl.col("size") >= params.min_size)
        .sum()
        .alias(f"large_trade_count_min_size_{params.min_size:g}")
    )


def bucket_end(bucket: BucketSpec, ts: pl.Expr) -> pl.Expr:
    """The end instant of the bucket each timestamp falls in."""
    label = bucket.label_expr(ts)
    return label if bucket.label == "end" else label.dt.offset_by(bucket.width)


def time_weights(
    bucket: BucketSpec, ts: pl.Expr = pl.col("ts"), end: pl.Expr | None = None
) -> pl.Expr:
    """ns each row's state lasts: until the next row, capped at its bucket's end.

    Over one instrument's time-sorted rows. The cap keeps a row from weighing time after
    its bucket (no look-ahead past the bucket end); the last row of the data lasts to its
    bucket end. ``end`` may pass the precomputed bucket end of each row.
    """
    end = bucket_end(bucket, ts) if end is None else end
    following = ts.shift(-1)
    until = pl.when(following.is_null() | (following > end)).then(end).otherwise(following)
    return (until - ts).dt.total_nanoseconds()


def time_weighted_per_bucket(
    frame: pl.DataFrame, value: pl.Expr, name: str, bucket: BucketSpec | None
) -> pl.DataFrame:
    """Per instrument and bucket: the time-weighted mean of ``value`` (nulls skipped)."""
    bucket = bucket or BucketSpec()
    label = pl.col("_bucket")
    end = label if bucket.label == "end" else label.dt.offset_by(bucket.width)
    weighted = (
        frame.sort("instrument", "ts", maintain_order=True)
        .with_columns(_value=value, _bucket=bucket.label_expr(pl.col("ts")))
        .with_columns(_weight=time_weights(bucket, end=end).over("instrument"))
        .filter(pl.col("_value").is_not_null() & pl.col("_value").is_not_nan())
    )
    weight = pl.col("_weight")
    return (
        weighted.group_by("instrument", "_bucket")
        .agg(
            pl.when(weight.sum() > 0)
            .then((pl.col("_value") * weight).sum() / weight.sum())
            .alias(name)
        )
        .rename({"_bucket": "ts"})
        .sort("instrument", "ts")
    )


@metric(
    name="twap_price",
    family="trade",
    title="Time-weighted average trade price",
    unit="price",
    inputs=("trades.ts", "trades.price"),
    kind="frame",
    aliases=("twap",),
)
def twap_price(
    frame: pl.DataFrame, params: NoParams, bucket: BucketSpec | None = None
) -> pl.DataFrame:
    """The last-trade price averaged over time within the bucket.

    Each trade's price holds until the next trade or the bucket end, whichever comes
    first; time before the bucket's first trade is not counted (no carry-in).

    Formula:
        sum(price_i * (min(ts_{i+1}, bucket_end) - ts_i)) / sum(same weights)

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime
        >>> f = pl.DataFrame({"instrument": "X", "price": [10.0, 20.0],
        ...     "ts": [datetime(2024, 1, 1, 0, 0, 20), datetime(2024, 1, 1, 0, 0, 40)]})
        >>> twap_price(f, NoParams(), BucketSpec(width="1m"))["twap_price"].to_list()
        [15.0]
    """
    return time_weighted_per_bucket(frame, PRICE, "twap_price", bucket)
