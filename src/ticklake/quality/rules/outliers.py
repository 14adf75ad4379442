"""Price behaviour: P1 robust outliers (rolling median / MAD), P2 frozen values."""

from __future__ import annotations

import polars as pl
from pydantic import Field

from ticklake.quality.base import (
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
    Severity,
    instrument_column,
    price_expression,
    register_rule,
    schema_family,
    top_offending,
)
from ticklake.schemas import DatasetSchema

#: MAD × this estimates the standard deviation of normal data.
MAD_TO_SIGMA = 1.4826


def _price_inputs(schema: DatasetSchema) -> set[str]:
    family = schema_family(schema.name)
    return {
        "trades": {"price"},
        "prices": {"price"},
        "bars": {"close"},
        "quotes": {"bid_price", "ask_price"},
        "l2": {"bid_price_0", "ask_price_0"},
        "option_snapshots": {"last_price"},
    }.get(family, set())


class OutlierParameters(RuleParameters):
    window_rows: int = Field(
        61, ge=5, description="rows in the centred rolling window, per instrument"
    )
    threshold_mads: float = Field(
        10.0, gt=0.0, description="flag a price this many scaled MADs from the rolling median"
    )
    min_deviation_bps: float = Field(
        50.0,
        ge=0.0,
        description="and at least this far from the median, in bps of it (a frozen window "
        "has MAD 0; tiny moves are never outliers)",
    )


@register_rule
class PriceOutlierRule(Rule):
    id = "P1"
    name = "price_outliers"
    description = (
        "A price (trade/last price, bar close, quote mid) is an outlier when it lies more "
        "than threshold_mads × 1.4826 × MAD and more than min_deviation_bps away from the "
        "median of the centred window_rows-row window of its instrument. Robust to the "
        "outlier itself, unlike a z-score. Unit: rows with a price."
    )
    severity = Severity.warning
    schemas = ("trades", "prices", "bars", "quotes", "l2", "option_snapshots")
    Parameters = OutlierParameters
    rank_by = "deviation_bps"

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {schema.ts_column, instrument_column(schema), *_price_inputs(schema)}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, OutlierParameters)
        schema = context.schema
        ts, instrument = schema.ts_column, instrument_column(schema)
        price = price_expression(schema)
        assert price is not None
        window = params.window_rows | 1  # odd, so the window is centred on the row
        min_samples = max(3, window // 4)
        series = (
            frame.select(ts, instrument, price.alias("price"))
            .filter(pl.col("price").is_not_null() & pl.col("price").is_finite())
            .sort(instrument, ts)
        )
        median = pl.col("price").rolling_median(window, min_samples=min_samples, center=True)
        series = series.with_columns(median.over(instrument).alias("rolling_median"))
        deviation = (pl.col("price") - pl.col("rolling_median")).abs()
        series = series.with_columns(deviation.alias("deviation")).with_columns(
            pl.col("deviation")
            .rolling_median(window, min_samples=min_samples, center=True)
            .over(instrument)
            .alias("mad")
        )
        checked = series.filter(pl.col("rolling_median").is_not_null())
        deviation_bps = pl.col("deviation") / pl.col("rolling_median").abs() * 1e4
        bad = checked.with_columns(
            deviation_bps.alias("deviation_bps"),
            (pl.col("deviation") / (MAD_TO_SIGMA * pl.col("mad"))).alias("robust_z"),
        ).filter(
            (pl.col("deviation") > params.threshold_mads * MAD_TO_SIGMA * pl.col("mad"))
            & (pl.col("deviation_bps") >= params.min_deviation_bps)
        )
        stats = {"max_deviation_bps": float(bad["deviation_bps"].max())} if bad.height else {}  # type: ignore[arg-type]
        offending = top_offending(
            bad.select(ts, instrument, "price", "rolling_median", "deviation_bps", "robust_z"),
            "deviation_bps",
        ).drop("score")
        return RuleFinding(context.day, checked.height, bad.height, offending, stats)


class FrozenParameters(RuleParameters):
    min_frozen_seconds: float = Field(
        120.0, gt=0.0, description="a value unchanged for at least this long is frozen"
    )
    min_rows: int = Field(3, ge=2, description="and repeated on at least this many rows")


def _frozen_value(schema: DatasetSchema) -> pl.Expr:
    if schema_family(schema.name) == "bars":
        # A bar is frozen only when all of O/H/L/C repeat: a flat close alone is common.
        return pl.struct("open", "high", "low", "close").hash(seed=3)
    price = price_expression(schema)
    assert price is not None
    return price


@register_rule
class FrozenValueRule(Rule):
    id = "P2"
    name = "frozen_values"
    description = (
        "A value (index/last price, quote mid, or a whole bar's O/H/L/C) repeated on "
        "consecutive rows of an instrument for at least min_frozen_seconds (first to last "
        "repeat) and min_rows rows is frozen, e.g. the NSE index during the pre-open "
        "auction. Unit: rows; every row of a frozen run counts once, and the offending rows "
        "list the runs, longest first."
    )
    severity = Severity.warning
    schemas = ("prices", "quotes", "l2", "bars")
    Parameters = FrozenParameters
    rank_by = "frozen_seconds"

    def columns(self, schema: DatasetSchema) -> set[str]:
        extra = {"open", "high", "low", "close"} if schema_family(schema.name) == "bars" else set()
        return {schema.ts_column, instrument_column(schema), *_price_inputs(schema), *extra}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, FrozenParameters)
        schema = context.schema
        ts, instrument = schema.ts_column, instrument_column(schema)
        price = price_expression(schema)
        assert price is not None
        series = (
            frame.select(ts, instrument, price.alias("value"), _frozen_value(schema).alias("key"))
            .filter(pl.col("key").is_not_null())
            .sort(instrument, ts)
        )
        changed = (pl.col("key") != pl.col("key").shift(1)).fill_null(True)
        runs = (
            series.with_columns(changed.cum_sum().over(instrument).alias("run"))
            .group_by(instrument, "run")
            .agg(
                pl.col(ts).first().alias("start"),
                pl.col(ts).last().alias("end"),
                pl.len().alias("rows"),
                pl.col("value").first(),
            )
            .with_columns(
                ((pl.col("end") - pl.col("start")).dt.total_nanoseconds() / 1e9).alias(
                    "frozen_seconds"
                )
            )
            .filter(
                (pl.col("frozen_seconds") >= params.min_frozen_seconds)
                & (pl.col("rows") >= params.min_rows)
            )
        )
        frozen_rows = int(runs["rows"].sum()) if runs.height else 0
        stats: dict[str, float] = {"frozen_runs": runs.height}
        if runs.height:
            stats["max_frozen_seconds"] = float(runs["frozen_seconds"].max())  # type: ignore[arg-type]
        offending = top_offending(
            runs.select(instrument, "start", "end", "rows", "frozen_seconds", "value"),
            "frozen_seconds",
        ).drop("score")
        return RuleFinding(context.day, series.height, frozen_rows, offending, stats)
