"""Best-bid/offer rules: R3 crossed and locked books, R6 spread sanity."""

from __future__ import annotations

import polars as pl
from pydantic import Field

from ticklake.quality.base import (
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
    Severity,
    best_quote_columns,
    instrument_column,
    register_rule,
    top_offending,
)
from ticklake.schemas import DatasetSchema


def _two_sided(frame: pl.DataFrame, schema: DatasetSchema) -> pl.DataFrame:
    """Rows with a positive bid and a positive ask (a 0 is the vendor's empty level)."""
    columns = best_quote_columns(schema)
    assert columns is not None
    bid, ask = columns
    return frame.filter((pl.col(bid) > 0) & (pl.col(ask) > 0)).select(
        schema.ts_column,
        instrument_column(schema),
        pl.col(bid).alias("bid"),
        pl.col(ask).alias("ask"),
    )


def _quote_columns(schema: DatasetSchema) -> set[str]:
    columns = best_quote_columns(schema)
    assert columns is not None
    return {schema.ts_column, instrument_column(schema), *columns}


class CrossedBookParameters(RuleParameters):
    locked_is_violation: bool = Field(
        True, description="count locked books (ask == bid) as violations, not only crossed"
    )


@register_rule
class CrossedBookRule(Rule):
    id = "R3"
    name = "ask_above_bid"
    description = (
        "The best ask must be above the best bid. Crossed books (ask < bid) and locked "
        "books (ask == bid) are counted separately in the statistics; a locked book is a "
        "violation unless locked_is_violation is false. Rows missing a side (or with a 0 "
        "empty level) are not checked. Applies to quotes, L2 level 0, option snapshots and "
        "bars that carry the bar's last bid_price/ask_price."
    )
    severity = Severity.error
    schemas = ("quotes", "l2", "option_snapshots", "bars")
    Parameters = CrossedBookParameters
    rank_by = "cross_bps"

    def columns(self, schema: DatasetSchema) -> set[str]:
        return _quote_columns(schema)

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, CrossedBookParameters)
        quotes = _two_sided(frame, context.schema)
        crossed = pl.col("ask") < pl.col("bid")
        locked = pl.col("ask") == pl.col("bid")
        bad_expr = (crossed | locked) if params.locked_is_violation else crossed
        bad = quotes.filter(bad_expr).with_columns(
            pl.when(crossed).then(pl.lit("crossed")).otherwise(pl.lit("locked")).alias("kind")
        )
        crossed_rows = int(quotes.select(crossed.sum()).item())
        locked_rows = int(quotes.select(locked.sum()).item())
        mid = (pl.col("bid") + pl.col("ask")) / 2
        bad = bad.with_columns(((pl.col("bid") - pl.col("ask")) / mid * 1e4).alias("cross_bps"))
        return RuleFinding(
            context.day,
            quotes.height,
            bad.height,
            top_offending(bad, "cross_bps").drop("score"),
            {"crossed_rows": crossed_rows, "locked_rows": locked_rows},
        )


class SpreadParameters(RuleParameters):
    allowed_violation_share: float = Field(
        0.001, ge=0.0, le=1.0, description="share of quotes allowed outside the bounds"
    )
    max_spread_fraction: float = Field(
        0.05, gt=0.0, description="largest sane spread as a fraction of the mid (0.05 = 5 %)"
    )


@register_rule
class SpreadSanityRule(Rule):
    id = "R6"
    name = "spread_sanity"
    description = (
        "The spread (ask - bid) must be >= 0 and below max_spread_fraction of the mid "
        "(default 5 %) for all but allowed_violation_share of two-sided quotes (default "
        "0.1 %, i.e. at least 99.9 % must pass). A quote that is both negative and wide cannot "
        "happen, so each counts once; negative and wide spreads are also counted apart."
    )
    severity = Severity.warning
    schemas = ("quotes", "l2", "option_snapshots", "bars")
    Parameters = SpreadParameters
    rank_by = "spread_bps"

    def columns(self, schema: DatasetSchema) -> set[str]:
        return _quote_columns(schema)

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, SpreadParameters)
        quotes = _two_sided(frame, context.schema).with_columns(
            ((pl.col("ask") - pl.col("bid")) / ((pl.col("ask") + pl.col("bid")) / 2) * 1e4).alias(
                "spread_bps"
            )
        )
        limit_bps = params.max_spread_fraction * 1e4
        negative = pl.col("spread_bps") < 0
        wide = pl.col("spread_bps") >= limit_bps
        bad = quotes.filter(negative | wide)
        stats: dict[str, float] = {
            "negative_spread_rows": int(quotes.select(negative.sum()).item()),
            "wide_spread_rows": int(quotes.select(wide.sum()).item()),
        }
        if quotes.height:
            stats["max_spread_bps"] = float(quotes["spread_bps"].max())  # type: ignore[arg-type]
        offending = top_offending(bad, pl.col("spread_bps").abs()).drop("score")
        return RuleFinding(context.day, quotes.height, bad.height, offending, stats)
