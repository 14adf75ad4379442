"""Q1 stale quotes: quote age beyond a TTL; for option snapshots, missing seconds."""

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
    register_rule,
    schema_family,
    top_offending,
)
from ticklake.schemas import DatasetSchema

NS_PER_SECOND = 1_000_000_000


class StaleParameters(RuleParameters):
    ttl_seconds: float = Field(
        60.0, gt=0.0, description="a quote older than this when the next one arrives is stale"
    )
    max_receive_delay_seconds: float = Field(
        5.0, gt=0.0, description="recv_ts - ts above this means the quote arrived stale"
    )


@register_rule
class StaleQuoteRule(Rule):
    id = "Q1"
    name = "stale_quotes"
    description = (
        "Quotes (quotes, L2): a quote is stale when the instrument's previous quote is more "
        "than ttl_seconds older (the book sat unchanged past its TTL), or when it was "
        "received more than max_receive_delay_seconds after its exchange time (recv_ts). "
        "A row failing both counts once. Option snapshots, which repeat every second, are "
        "checked for missing seconds instead: each contract is expected once per second "
        "from the day's first to last snapshot; unit contract-seconds."
    )
    severity = Severity.warning
    schemas = ("quotes", "l2", "option_snapshots")
    Parameters = StaleParameters
    unit = "rows (option snapshots: contract-seconds)"
    rank_by = "stale_seconds"

    def columns(self, schema: DatasetSchema) -> set[str]:
        extra = {"recv_ts"} if "recv_ts" in schema.column_names else set()
        return {schema.ts_column, instrument_column(schema), *extra}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        if schema_family(context.schema.name) == "option_snapshots":
            return self._missing_seconds(frame, context)
        params = self.parameters
        assert isinstance(params, StaleParameters)
        ts, instrument = context.schema.ts_column, instrument_column(context.schema)
        age = (pl.col(ts) - pl.col(ts).shift(1).over(instrument)).dt.total_nanoseconds() / 1e9
        rows = frame.sort(instrument, ts).with_columns(age.alias("previous_quote_age_seconds"))
        stale_book = pl.col("previous_quote_age_seconds") > params.ttl_seconds
        if "recv_ts" in rows.columns:
            delay = (pl.col("recv_ts") - pl.col(ts)).dt.total_nanoseconds() / 1e9
            rows = rows.with_columns(delay.alias("receive_delay_seconds"))
            late = pl.col("receive_delay_seconds") > params.max_receive_delay_seconds
        else:
            rows = rows.with_columns(pl.lit(None, pl.Float64).alias("receive_delay_seconds"))
            late = pl.lit(False)
        marked = rows.with_columns(
            stale_book.fill_null(False).alias("stale_book"), late.fill_null(False).alias("late")
        )
        bad = marked.filter(pl.col("stale_book") | pl.col("late")).with_columns(
            pl.max_horizontal("previous_quote_age_seconds", "receive_delay_seconds").alias(
                "stale_seconds"
            )
        )
        stats = {
            "stale_book_rows": float(bad["stale_book"].sum()),
            "late_rows": float(bad["late"].sum()),
        }
        if bad.height:
            stats["max_stale_seconds"] = float(bad["stale_seconds"].max())  # type: ignore[arg-type]
        offending = top_offending(
            bad.select(
                ts,
                instrument,
                "previous_quote_age_seconds",
                "receive_delay_seconds",
                "stale_seconds",
            ),
            "stale_seconds",
        ).drop("score")
        return RuleFinding(context.day, frame.height, bad.height, offending, stats)

    def _missing_seconds(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        ts = context.schema.ts_column
        if frame.height == 0:
            return RuleFinding(context.day, 0, 0)
        seconds = frame.select(
            "symbol", (pl.col(ts).dt.epoch("ns") // NS_PER_SECOND).alias("second")
        ).unique()
        first, last = int(seconds["second"].min()), int(seconds["second"].max())  # type: ignore[arg-type]
        span = last - first + 1
        per_contract = (
            seconds.sort("symbol", "second")
            .group_by("symbol", maintain_order=True)
            .agg(
                pl.len().alias("present_seconds"),
                ((pl.col("second").diff().fill_null(1) - 1).max()).alias("longest_hole_seconds"),
                (pl.col("second").min() - first).alias("late_start_seconds"),
                (last - pl.col("second").max()).alias("early_end_seconds"),
            )
            .with_columns((span - pl.col("present_seconds")).alias("stale_seconds"))
        )
        missing = int(per_contract["stale_seconds"].sum())
        checked = span * per_contract.height
        offending = top_offending(
            per_contract.filter(pl.col("stale_seconds") > 0), "stale_seconds"
        ).drop("score")
        stats = {
            "contracts": float(per_contract.height),
            "max_stale_seconds": float(per_contract["stale_seconds"].max()),  # type: ignore[arg-type]
        }
        return RuleFinding(context.day, checked, missing, offending, stats)
