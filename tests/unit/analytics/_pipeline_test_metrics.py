"""Small metrics registered only for the pipeline tests (imported through a pipeline's
``metric_modules``, exactly as a user's own metric module would be)."""

from __future__ import annotations

import time

import polars as pl

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.registry import MetricParams, NoParams, metric

FAMILY = "pipeline_test"


@metric(
    name="pipeline_test_volume",
    family=FAMILY,
    title="Traded volume (test)",
    unit="shares",
    inputs=("trades.size",),
)
def volume(params: NoParams) -> pl.Expr:
    """Sum of trade sizes in the bucket, for the pipeline tests.

    Formula:
        sum(size)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"size": [1.0, 2.0]}).select(volume(NoParams())).item()
        3.0
    """
    return pl.col("size").sum()


@metric(
    name="pipeline_test_trade_count",
    family=FAMILY,
    title="Trade count (test)",
    unit="trades",
    inputs=("trades.price",),
)
def trade_count(params: NoParams) -> pl.Expr:
    """Number of trades in the bucket, for the pipeline tests.

    Formula:
        count(price)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [1.0, 2.0]}).select(trade_count(NoParams())).item()
        2
    """
    return pl.col("price").count()


@metric(
    name="pipeline_test_last_price",
    family=FAMILY,
    title="Last trade price (test)",
    unit="price",
    inputs=("trades.price",),
)
def last_price(params: NoParams) -> pl.Expr:
    """The last trade price of the bucket (rows are time-sorted), for the pipeline tests.

    Formula:
        last(price)

    Examples:
        >>> import polars as pl
        >>> pl.DataFrame({"price": [1.0, 2.0]}).select(last_price(NoParams())).item()
        2.0
    """
    return pl.col("price").last()


class ScaleParams(MetricParams):
    factor: float = 1.0


@metric(
    name="pipeline_test_scaled_notional",
    family=FAMILY,
    title="Scaled notional (test)",
    unit="currency",
    inputs=("trades.price", "trades.size"),
    params=ScaleParams,
    output="pipeline_test_notional_x{factor:g}",
)
def scaled_notional(params: ScaleParams) -> pl.Expr:
    """Sum of price × size times a factor, for the pipeline tests' parameter checks.

    Formula:
        factor * sum(price * size)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"price": [2.0], "size": [3.0]})
        >>> df.select(scaled_notional(ScaleParams(factor=2))).item()
        12.0
    """
    return (pl.col("price") * pl.col("size")).sum() * params.factor


@metric(
    name="pipeline_test_cumulative_volume",
    family=FAMILY,
    title="Cumulative volume of the day (test)",
    unit="shares",
    inputs=("trades.size",),
    kind="series",
)
def cumulative_volume(params: NoParams) -> pl.Expr:
    """Running sum of trade sizes over the instrument's rows so far, for the tests.

    Formula:
        cumsum(size)

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"size": [1.0, 2.0]})
        >>> df.select(cumulative_volume(NoParams()))["size"].to_list()
        [1.0, 3.0]
    """
    return pl.col("size").cum_sum()


class SlowParams(MetricParams):
    seconds_per_call: float = 0.0


@metric(
    name="pipeline_test_slow_count",
    family=FAMILY,
    title="Row count after a pause (test)",
    unit="rows",
    inputs=("trades.ts",),
    kind="frame",
    params=SlowParams,
)
def slow_count(frame: pl.DataFrame, params: SlowParams, buckets: BucketSpec) -> pl.DataFrame:
    """Rows per bucket, after sleeping: lets the interrupt test stop a batch midway.

    Formula:
        count(*) per instrument and bucket

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, timezone
        >>> t = datetime(2024, 1, 2, 10, 0, 30, tzinfo=timezone.utc)
        >>> df = pl.DataFrame({"ts": [t, t], "instrument": ["A", "A"]})
        >>> slow_count(df, SlowParams(), BucketSpec(width="1m"))["pipeline_test_slow_count"].item()
        2
    """
    time.sleep(params.seconds_per_call)
    return (
        frame.group_by("instrument", buckets.label_expr(pl.col("ts")).alias("ts"))
        .agg(pl.len().cast(pl.Int64).alias("pipeline_test_slow_count"))
        .sort("instrument", "ts")
    )


@metric(
    name="pipeline_test_buy_volume",
    family=FAMILY,
    title="Buyer-initiated volume (test)",
    unit="shares",
    inputs=("trades.size", "trades.side"),
)
def buy_volume(params: NoParams) -> pl.Expr:
    """Sum of sizes of trades whose aggressor side is 'buy', for the pipeline tests.

    Formula:
        sum(size where side = 'buy')

    Examples:
        >>> import polars as pl
        >>> df = pl.DataFrame({"size": [1.0, 2.0], "side": ["buy", "sell"]})
        >>> df.select(buy_volume(NoParams())).item()
        1.0
    """
    return pl.col("size").filter(pl.col("side") == "buy").sum()
