"""Value rules: R1 OHLC ordering, R2 positive prices, R4 finite required fields."""

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


def _identity(schema: DatasetSchema) -> list[str]:
    return [schema.ts_column, instrument_column(schema)]


@register_rule
class OhlcOrderRule(Rule):
    id = "R1"
    name = "ohlc_order"
    description = (
        "Bars must satisfy low <= open, close <= high (and so low <= high). A bar breaking "
        "several inequalities counts once; bars with a null open/high/low/close are not "
        "checked here (R4 reports them). Offending rows are ranked by the breach in bps of "
        "the close."
    )
    severity = Severity.error
    schemas = ("bars",)
    unit = "bars"
    rank_by = "breach_bps"

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {*_identity(schema), "open", "high", "low", "close"}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        o, h, low, c = (pl.col(x) for x in ("open", "high", "low", "close"))
        checked = frame.filter(pl.all_horizontal(o, h, low, c).is_not_null())
        breach = pl.max_horizontal(
            low - pl.min_horizontal(o, c), pl.max_horizontal(o, c) - h, low - h
        )
        bad = checked.filter(breach > 0)
        offending = top_offending(
            bad.select(
                *_identity(context.schema),
                "open",
                "high",
                "low",
                "close",
                (breach / c.abs() * 1e4).alias("breach_bps"),
            ),
            "breach_bps",
        ).drop("score")
        return RuleFinding(context.day, checked.height, bad.height, offending)


class PositivePriceParameters(RuleParameters):
    empty_level_zero_ok: bool = Field(
        True,
        description="a book level with price 0 and size 0 (or null) is an empty level, "
        "not a bad price (vendor option files pad empty levels with zeros)",
    )


def _price_columns(schema: DatasetSchema) -> list[tuple[str, str | None]]:
    """(price column, its size column or None) for every price column of the schema."""
    names = set(schema.column_names)
    family = schema_family(schema.name)
    out: list[tuple[str, str | None]] = []
    for name in schema.column_names:
        if name == "vendor_ts" or schema.column(name).type != "float64":
            continue
        is_price = (
            name in ("price", "open", "high", "low", "close", "vwap", "last_price", "strike")
            or name.endswith("_price")
            or "_price_" in name
        )
        if family == "option_snapshots" and name in ("open", "high", "low", "close", "avg_price"):
            is_price = False  # the vendor's session fields are 0 before the first trade
        if not is_price:
            continue
        size = None
        for candidate in (
            name.replace("_price", "_size"),
            name.replace("_price", "_qty"),
        ):
            if candidate != name and candidate in names:
                size = candidate
        out.append((name, size))
    return out


@register_rule
class PositivePriceRule(Rule):
    id = "R2"
    name = "positive_prices"
    description = (
        "Every non-null price column must be > 0 (trade/last prices, OHLC and VWAP, bid/ask "
        "at every level, strikes). A row counts once however many of its prices are bad. "
        "With empty_level_zero_ok, a book level with price 0 and size 0 is an empty level."
    )
    severity = Severity.error
    schemas = ("trades", "prices", "bars", "quotes", "l2", "l3", "book_updates", "option_snapshots")
    Parameters = PositivePriceParameters

    def columns(self, schema: DatasetSchema) -> set[str]:
        cols = {c for pair in _price_columns(schema) for c in pair if c}
        return {*_identity(schema), *cols}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, PositivePriceParameters)
        pairs = _price_columns(context.schema)
        bad_exprs = []
        for price, size in pairs:
            bad = pl.col(price) <= 0
            if size is not None and params.empty_level_zero_ok:
                empty = (pl.col(price) == 0) & pl.col(size).fill_null(0).eq(0)
                bad = bad & ~empty
            bad_exprs.append(bad.fill_null(False).alias(f"__bad_{price}"))
        present = pl.any_horizontal(pl.col(p).is_not_null() for p, _ in pairs)
        flagged = frame.with_columns(*bad_exprs).filter(present)
        bad_any = pl.any_horizontal(pl.col(f"__bad_{p}") for p, _ in pairs)
        bad_rows = flagged.filter(bad_any)
        stats = {
            f"nonpositive_{p}": float(bad_rows[f"__bad_{p}"].sum())
            for p, _ in pairs
            if bad_rows.height and bad_rows[f"__bad_{p}"].any()
        }
        bad_cols = pl.concat_str(
            [pl.when(pl.col(f"__bad_{p}")).then(pl.lit(p)) for p, _ in pairs],
            separator=",",
            ignore_nulls=True,
        ).alias("columns")
        offending = bad_rows.select(
            *_identity(context.schema),
            bad_cols,
            pl.min_horizontal(
                pl.when(pl.col(f"__bad_{p}")).then(pl.col(p)) for p, _ in pairs
            ).alias("lowest_bad_price"),
        )
        return RuleFinding(
            context.day, flagged.height, bad_rows.height, top_offending(offending), stats
        )


#: Value columns that must be present even where the schema allows nulls.
REQUIRED_VALUES: dict[str, tuple[str, ...]] = {
    "bars": ("open", "high", "low", "close"),
    "prices": ("price",),
    "trades": ("price", "size"),
}


class FiniteParameters(RuleParameters):
    required_columns: tuple[str, ...] | None = Field(
        None,
        description="columns that must be non-null and finite; default: the schema's "
        "non-nullable columns plus the family's value columns (bars OHLC, trade price/size)",
    )


@register_rule
class FiniteRequiredRule(Rule):
    id = "R4"
    name = "finite_required_fields"
    description = (
        "Required fields hold no null, NaN or infinity. Required means the schema's "
        "non-nullable columns plus the family's value columns (bars: open, high, low, "
        "close), or the required_columns parameter. A row counts once; statistics count "
        "each column and kind (null / nan / inf)."
    )
    severity = Severity.error
    schemas = ("trades", "prices", "bars", "quotes", "l2", "l3", "book_updates", "option_snapshots")
    Parameters = FiniteParameters

    def _required(self, schema: DatasetSchema) -> list[str]:
        params = self.parameters
        assert isinstance(params, FiniteParameters)
        if params.required_columns is not None:
            return list(params.required_columns)
        required = [c.name for c in schema.columns if not c.nullable]
        extra = REQUIRED_VALUES.get(schema_family(schema.name), ())
        return [*required, *(c for c in extra if c not in required)]

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {*_identity(schema), *self._required(schema)}

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        required = self._required(context.schema)
        flags: list[pl.Expr] = []
        names: list[str] = []
        for column in required:
            dtype = frame.schema[column]
            flags.append(pl.col(column).is_null().alias(f"__null_{column}"))
            names.append(f"__null_{column}")
            if dtype.is_float():
                flags.append(pl.col(column).is_nan().fill_null(False).alias(f"__nan_{column}"))
                flags.append(pl.col(column).is_infinite().fill_null(False).alias(f"__inf_{column}"))
                names += [f"__nan_{column}", f"__inf_{column}"]
        marked = frame.with_columns(flags)
        bad = marked.filter(pl.any_horizontal(pl.col(n) for n in names))
        stats = {
            n.removeprefix("__"): float(bad[n].sum()) for n in names if bad.height and bad[n].any()
        }
        problems = pl.concat_str(
            [pl.when(pl.col(n)).then(pl.lit(n.removeprefix("__"))) for n in names],
            separator=",",
            ignore_nulls=True,
        ).alias("problems")
        offending = bad.select(*_identity(context.schema), problems)
        return RuleFinding(context.day, frame.height, bad.height, top_offending(offending), stats)
