"""Option-chain rules on option_snapshots: O1 negative time value, O2 put/call parity,
O3 strikes missing around the money.

Mids use the best level (bid_price_0, ask_price_0), both > 0 (the vendor pads empty
levels with 0). Parity and the at-the-money strike use the synthetic forward
``F = C - P + K`` of each strike with both mids, so O2 and O3 need no rates or
dividends: a strike's forward is compared with the median forward of its expiry at
that time.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from pydantic import Field

from ticklake.quality.base import (
    DatasetContext,
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
    Severity,
    register_rule,
    schema_family,
    top_offending,
)
from ticklake.schemas import DatasetSchema

QUOTE_COLUMNS = {
    "ts",
    "symbol",
    "underlying",
    "expiry",
    "strike",
    "opt_type",
    "bid_price_0",
    "ask_price_0",
}


def _mids(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter((pl.col("bid_price_0") > 0) & (pl.col("ask_price_0") > 0)).with_columns(
        ((pl.col("bid_price_0") + pl.col("ask_price_0")) / 2).alias("mid"),
        (pl.col("ask_price_0") - pl.col("bid_price_0")).alias("spread"),
    )


def _pairs(mids: pl.DataFrame) -> pl.DataFrame:
    """One row per (ts, underlying, expiry, strike) quoted on both sides, with its forward."""
    calls = mids.filter(pl.col("opt_type") == "CE").select(
        "ts",
        "underlying",
        "expiry",
        "strike",
        pl.col("mid").alias("call_mid"),
        pl.col("spread").alias("call_spread"),
    )
    puts = mids.filter(pl.col("opt_type") == "PE").select(
        "ts",
        "underlying",
        "expiry",
        "strike",
        pl.col("mid").alias("put_mid"),
        pl.col("spread").alias("put_spread"),
    )
    return calls.join(puts, on=["ts", "underlying", "expiry", "strike"]).with_columns(
        (pl.col("call_mid") - pl.col("put_mid") + pl.col("strike")).alias("forward")
    )


class TimeValueParameters(RuleParameters):
    underlying_dataset: str | None = Field(
        None, description="dataset with the underlying's price (prices, trades, bars or quotes)"
    )
    underlying_instrument: str | None = Field(
        None,
        description="instrument in that dataset; default: its only instrument, else the "
        "option's underlying column",
    )
    max_underlying_age_seconds: float = Field(
        5.0, gt=0.0, description="use an underlying price at most this old (backward as-of)"
    )
    tolerance_bps: float = Field(
        5.0, ge=0.0, description="mid may sit this far below intrinsic, in bps of the underlying"
    )


def _underlying_prices(
    context: PartitionContext, params: TimeValueParameters
) -> pl.DataFrame | None:
    assert params.underlying_dataset is not None
    info = context.dataset.dataset_info(params.underlying_dataset)
    family = schema_family(info.dataset_schema.name)
    frame = context.dataset.read_day(params.underlying_dataset, context.day)
    if frame is None or frame.height == 0:
        return None
    if family == "bars":
        price = pl.col("close")
    elif family == "quotes":
        price = (pl.col("bid_price") + pl.col("ask_price")) / 2
    else:
        price = pl.col("price")
    if params.underlying_instrument is not None:
        frame = frame.filter(pl.col("instrument") == params.underlying_instrument)
    out = frame.select(
        pl.col("ts").alias("underlying_ts"), "instrument", price.alias("underlying_price")
    ).drop_nulls("underlying_price")
    return out.sort("underlying_ts")


@register_rule
class NegativeTimeValueRule(Rule):
    id = "O1"
    name = "negative_time_value"
    description = (
        "An option's mid must not sit below its intrinsic value (call: S - K, put: K - S, "
        "floored at 0) by more than tolerance_bps of the underlying S, taken from "
        "underlying_dataset by a backward as-of join at most max_underlying_age_seconds "
        "old. Unit: snapshots with a two-sided quote and an underlying price."
    )
    severity = Severity.warning
    schemas = ("option_snapshots",)
    unit = "snapshots"
    Parameters = TimeValueParameters
    rank_by = "shortfall_bps"

    def skip_reason(self, context: DatasetContext) -> str | None:
        params = self.parameters
        assert isinstance(params, TimeValueParameters)
        if params.underlying_dataset is None:
            return "needs the underlying_dataset parameter"
        return None

    def columns(self, schema: DatasetSchema) -> set[str]:
        return QUOTE_COLUMNS

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, TimeValueParameters)
        underlying = _underlying_prices(context, params)
        mids = _mids(frame).sort("ts")
        if underlying is None or mids.height == 0:
            return RuleFinding(context.day, 0, 0)
        tolerance = timedelta(seconds=params.max_underlying_age_seconds)
        if underlying["instrument"].n_unique() == 1:
            joined = mids.join_asof(
                underlying.drop("instrument"),
                left_on="ts",
                right_on="underlying_ts",
                strategy="backward",
                tolerance=tolerance,
            )
        else:
            joined = mids.join_asof(
                underlying.rename({"instrument": "underlying"}),
                left_on="ts",
                right_on="underlying_ts",
                by="underlying",
                strategy="backward",
                tolerance=tolerance,
                check_sortedness=False,  # both sorted by time, so per underlying too
            )
        checked = joined.filter(pl.col("underlying_price").is_not_null())
        spot, strike = pl.col("underlying_price"), pl.col("strike")
        intrinsic = (
            pl.when(pl.col("opt_type") == "CE").then(spot - strike).otherwise(strike - spot)
        ).clip(lower_bound=0)
        measured = checked.with_columns(intrinsic.alias("intrinsic")).with_columns(
            ((pl.col("intrinsic") - pl.col("mid")) / spot * 1e4).alias("shortfall_bps")
        )
        bad = measured.filter(pl.col("shortfall_bps") > params.tolerance_bps)
        offending = top_offending(
            bad.select(
                "ts",
                "symbol",
                "strike",
                "opt_type",
                "bid_price_0",
                "ask_price_0",
                "mid",
                "underlying_price",
                "intrinsic",
                "shortfall_bps",
            ),
            "shortfall_bps",
        ).drop("score")
        stats = {"max_shortfall_bps": float(bad["shortfall_bps"].max())} if bad.height else {}  # type: ignore[arg-type]
        return RuleFinding(context.day, checked.height, bad.height, offending, stats)


class ParityParameters(RuleParameters):
    tolerance_bps: float = Field(
        20.0,
        ge=0.0,
        description="a strike's forward C - P + K may differ from the expiry's median "
        "forward by half the two spreads plus this many bps of the forward",
    )
    min_strikes: int = Field(3, ge=2, description="strike pairs needed for a median forward")


@register_rule
class PutCallParityRule(Rule):
    id = "O2"
    name = "put_call_parity"
    description = (
        "For each time, underlying and expiry, every strike quoted on both the call and the "
        "put gives a synthetic forward F = C - P + K. A strike breaks parity when |F - "
        "median F| exceeds half the call and put spreads plus tolerance_bps of the median "
        "(model-free: no rates or dividends needed). Unit: strike pairs; needs min_strikes "
        "pairs per time and expiry."
    )
    severity = Severity.warning
    schemas = ("option_snapshots",)
    unit = "strike pairs"
    Parameters = ParityParameters
    rank_by = "excess_bps"

    def columns(self, schema: DatasetSchema) -> set[str]:
        return QUOTE_COLUMNS

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, ParityParameters)
        group = ["ts", "underlying", "expiry"]
        pairs = (
            _pairs(_mids(frame))
            .with_columns(
                pl.col("forward").median().over(group).alias("median_forward"),
                pl.len().over(group).alias("pairs"),
            )
            .filter(pl.col("pairs") >= params.min_strikes)
        )
        allowed = (pl.col("call_spread") + pl.col("put_spread")) / 2 + pl.col("median_forward") * (
            params.tolerance_bps / 1e4
        )
        measured = pairs.with_columns(
            ((pl.col("forward") - pl.col("median_forward")).abs() - allowed).alias("excess")
        ).with_columns((pl.col("excess") / pl.col("median_forward") * 1e4).alias("excess_bps"))
        bad = measured.filter(pl.col("excess") > 0)
        offending = top_offending(
            bad.select(
                "ts",
                "underlying",
                "expiry",
                "strike",
                "call_mid",
                "put_mid",
                "forward",
                "median_forward",
                "excess_bps",
            ),
            "excess_bps",
        ).drop("score")
        return RuleFinding(context.day, measured.height, bad.height, offending)


class StrikeCoverageParameters(RuleParameters):
    strikes_each_side: int = Field(
        5, ge=0, description="strikes expected on each side of the at-the-money strike"
    )
    bucket_seconds: int = Field(60, gt=0, description="check the chain once per bucket")
    strike_step: float | None = Field(
        None,
        gt=0.0,
        description="strike spacing; default: the smallest gap between the day's strikes",
    )


@register_rule
class StrikeCoverageRule(Rule):
    id = "O3"
    name = "strikes_around_money"
    description = (
        "In every bucket_seconds bucket, each expiry has a snapshot for the call and the put "
        "of the at-the-money strike and strikes_each_side strikes on each side of it. The "
        "money is the median synthetic forward (C - P + K) of the bucket, so no underlying "
        "dataset is needed; the step is the smallest gap between the day's strikes of that "
        "expiry. Unit: expected contract-buckets."
    )
    severity = Severity.warning
    schemas = ("option_snapshots",)
    unit = "contract-buckets"
    Parameters = StrikeCoverageParameters

    def columns(self, schema: DatasetSchema) -> set[str]:
        return QUOTE_COLUMNS

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, StrikeCoverageParameters)
        every = f"{params.bucket_seconds}s"
        keys = ["underlying", "expiry"]
        data = frame.with_columns(pl.col("ts").dt.truncate(every).alias("bucket"))
        forwards = (
            _pairs(_mids(data.drop("bucket")))
            .with_columns(pl.col("ts").dt.truncate(every).alias("bucket"))
            .group_by("bucket", *keys)
            .agg(pl.col("forward").median().alias("forward"))
        )
        if params.strike_step is not None:
            steps = (
                data.select(keys).unique().with_columns(pl.lit(params.strike_step).alias("step"))
            )
        else:
            steps = (
                data.select(*keys, "strike")
                .unique()
                .sort(*keys, "strike")
                .with_columns(pl.col("strike").diff().over(keys).alias("gap"))
                .filter(pl.col("gap") > 0)
                .group_by(keys)
                .agg(pl.col("gap").min().alias("step"))
            )
        offsets = pl.DataFrame(
            {"offset": list(range(-params.strikes_each_side, params.strikes_each_side + 1))}
        )
        expected = (
            forwards.join(steps, on=keys)
            .with_columns(
                ((pl.col("forward") / pl.col("step")).round() * pl.col("step")).alias("atm")
            )
            .join(offsets, how="cross")
            .with_columns((pl.col("atm") + pl.col("offset") * pl.col("step")).alias("strike"))
            .filter(pl.col("strike") > 0)
            .join(pl.DataFrame({"opt_type": ["CE", "PE"]}), how="cross")
        )
        present = (
            data.select("bucket", *keys, "strike", "opt_type")
            .unique()
            .with_columns(pl.lit(True).alias("present"))
        )
        checked = expected.join(present, on=["bucket", *keys, "strike", "opt_type"], how="left")
        missing = checked.filter(pl.col("present").is_null())
        offending = (
            missing.select(
                pl.col("bucket").alias("ts"), *keys, "atm", "strike", "opt_type", "offset"
            )
            .sort("ts", "strike")
            .head(25)
        )
        return RuleFinding(context.day, checked.height, missing.height, offending)
