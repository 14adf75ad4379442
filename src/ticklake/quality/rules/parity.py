"""R7: our bars against the venue's own aggregates (klines, vendor N-minute files)."""

from __future__ import annotations

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
    top_offending,
)
from ticklake.schemas import DatasetSchema

PRICES = ("open", "high", "low", "close")


class ParityParameters(RuleParameters):
    reference_dataset: str | None = Field(
        None, description="bars dataset of the venue's own aggregates (name or layer.name)"
    )
    tolerance_bps: float = Field(
        0.1, ge=0.0, description="largest O/H/L/C difference, in bps of the reference price"
    )
    volume_tolerance_bps: float | None = Field(
        None, ge=0.0, description="also fail on volume differences above this (None: report only)"
    )


def _roll_up(ours: pl.DataFrame, reference: pl.DataFrame) -> pl.DataFrame:
    """Aggregate our bars into the reference's windows [ts, ts_end), ordered by time."""
    windows = reference.select(
        "instrument", pl.col("ts").alias("window"), pl.col("ts_end").alias("window_end")
    ).sort("window")
    assigned = (
        ours.sort("ts")
        # Both sides are sorted by time, so each instrument's rows are too.
        .join_asof(
            windows,
            left_on="ts",
            right_on="window",
            by="instrument",
            strategy="backward",
            check_sortedness=False,
        )
        .filter(pl.col("window").is_not_null() & (pl.col("ts") < pl.col("window_end")))
    )
    # first/last are taken in time order explicitly (never an unordered first()).
    return (
        assigned.group_by("instrument", "window")
        .agg(
            pl.col("open").sort_by("ts").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").sort_by("ts").last(),
            pl.when(pl.col("volume").is_not_null().any())
            .then(pl.col("volume").sum())
            .alias("volume"),
            pl.len().alias("bars"),
        )
        .rename({"window": "ts"})
    )


@register_rule
class BarParityRule(Rule):
    id = "R7"
    name = "bar_parity"
    description = (
        "Our bars match the venue's own aggregates in reference_dataset (e.g. bars built "
        "from trades vs Binance klines, or FirstRate 1m rolled up vs its 5m file): bars "
        "are rolled up into the reference's [ts, ts_end) windows when the reference is "
        "coarser (open/close by time order), then each of O/H/L/C must agree within "
        "tolerance_bps of the reference price (relative, so it means the same at any price "
        "level). A bar with several bad prices counts once. Volume differences are reported "
        "in bps, and fail only with volume_tolerance_bps."
    )
    severity = Severity.error
    schemas = ("bars",)
    unit = "bars"
    Parameters = ParityParameters
    rank_by = "max_difference_bps"

    def skip_reason(self, context: DatasetContext) -> str | None:
        params = self.parameters
        assert isinstance(params, ParityParameters)
        if params.reference_dataset is None:
            return "needs the reference_dataset parameter (the venue's own bars)"
        return None

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {"ts", "ts_end", "instrument", *PRICES, "volume"}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, ParityParameters) and params.reference_dataset
        reference = context.dataset.read_day(
            params.reference_dataset, context.day, ["ts", "ts_end", "instrument", *PRICES, "volume"]
        )
        if reference is None or reference.height == 0 or frame.height == 0:
            return RuleFinding(context.day, 0, 0)
        ours = _roll_up(frame, reference)
        joined = ours.join(reference, on=["instrument", "ts"], suffix="_reference")
        diffs = [
            (
                (pl.col(p) - pl.col(f"{p}_reference")).abs() / pl.col(f"{p}_reference").abs() * 1e4
            ).alias(f"{p}_difference_bps")
            for p in PRICES
        ]
        volume_diff = (
            (pl.col("volume") - pl.col("volume_reference")).abs()
            / pl.col("volume_reference").abs()
            * 1e4
        ).alias("volume_difference_bps")
        measured = joined.with_columns(*diffs, volume_diff).with_columns(
            pl.max_horizontal(f"{p}_difference_bps" for p in PRICES).alias("max_difference_bps")
        )
        bad_expr = pl.col("max_difference_bps") > params.tolerance_bps
        if params.volume_tolerance_bps is not None:
            bad_expr = bad_expr | (
                pl.col("volume_difference_bps").fill_null(0) > params.volume_tolerance_bps
            )
        bad = measured.filter(bad_expr)
        stats: dict[str, float] = {
            "reference_bars": float(reference.height),
            "reference_bars_unmatched": float(reference.height - joined.height),
        }
        if measured.height:
            stats["max_price_difference_bps"] = float(measured["max_difference_bps"].max())  # type: ignore[arg-type]
            volume = measured["volume_difference_bps"].drop_nulls()
            if volume.len():
                stats["max_volume_difference_bps"] = float(volume.max())  # type: ignore[arg-type]
        keep = ["instrument", "ts", "bars"]
        for p in PRICES:
            keep += [p, f"{p}_reference"]
        keep += ["max_difference_bps", "volume_difference_bps"]
        offending = top_offending(bad.select(keep), "max_difference_bps").drop("score")
        return RuleFinding(context.day, measured.height, bad.height, offending, stats)
