"""Row-level checks every ingested row must pass before it may enter bronze.

These are the basics that make a row usable at all (a time, a known instrument,
finite positive prices); data-quality judgements (outliers, gaps, crossed books)
belong to ``ticklake validate`` later and never drop rows. A failing row is moved to
the quarantine with the first reason it failed, never silently dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from ticklake.schemas import DatasetSchema

#: Plausible event times: catches wrong units (seconds read as ns, ms as s...).
MIN_TS = datetime(1990, 1, 1, tzinfo=UTC)
MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)

_INSTRUMENT_COLUMNS = ("instrument", "symbol", "underlying")
_POSITIVE_EXACT = {"strike", "open", "high", "low", "close", "vwap"}
_NON_NEGATIVE = {"size", "volume", "oi", "quote_volume", "trade_count"}


def _is_price(name: str) -> bool:
    return (
        name == "price" or name.endswith("_price") or "_price_" in name or name in _POSITIVE_EXACT
    )


def row_checks(schema: DatasetSchema) -> list[tuple[pl.Expr, str]]:
    """Return ``(bad_row_expression, reason)`` pairs for a schema, in priority order."""
    checks: list[tuple[pl.Expr, str]] = []
    ts = schema.ts_column
    checks.append((pl.col(ts).is_null(), f"missing time ({ts})"))
    checks.append(
        (
            (pl.col(ts) < MIN_TS) | (pl.col(ts) >= MAX_TS),
            f"implausible time ({ts} outside 1990..2100: wrong unit or time zone?)",
        )
    )
    for col in schema.columns:
        name = col.name
        if name in _INSTRUMENT_COLUMNS:
            checks.append(
                (
                    pl.col(name).is_null() | (pl.col(name).str.strip_chars() == ""),
                    f"unknown instrument (empty {name})",
                )
            )
        elif col.type in ("float64", "float32") and _is_price(name):
            value = pl.col(name)
            bad = value.is_not_null() & (value.is_nan() | value.is_infinite() | (value <= 0))
            if name == "price" and schema.name == "l3":
                # L3 events may carry no price (cancels); a present price must be sane.
                bad = value.is_not_null() & (value.is_nan() | value.is_infinite())
            checks.append((bad, f"{name} is not a finite positive number"))
        elif name in _NON_NEGATIVE and col.type in ("float64", "float32", "int64", "int32"):
            value = pl.col(name)
            bad = value.is_not_null() & (value < 0)
            if col.type.startswith("float"):
                bad = bad | (value.is_not_null() & (value.is_nan() | value.is_infinite()))
            checks.append((bad, f"{name} is negative or not finite"))
    return checks


def split_valid(frame: pl.DataFrame, schema: DatasetSchema) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split conformed rows into ``(valid, rejected)``; rejected has a ``reason`` column.

    Examples:
        >>> from datetime import datetime, timezone
        >>> from ticklake.schemas import get_schema
        >>> df = get_schema("prices").conform(pl.DataFrame({
        ...     "ts": [datetime(2024, 1, 2, tzinfo=timezone.utc)] * 2,
        ...     "instrument": ["NIFTY", "NIFTY"], "price": [21000.0, -1.0]}))
        >>> ok, bad = split_valid(df, get_schema("prices"))
        >>> ok.height, bad["reason"].to_list()
        (1, ['price is not a finite positive number'])
    """
    if frame.height == 0:
        return frame, frame.with_columns(pl.lit(None, pl.String).alias("reason")).head(0)
    reason: pl.Expr = pl.lit(None, pl.String)
    for bad, text in reversed(row_checks(schema)):
        reason = pl.when(bad.fill_null(False)).then(pl.lit(text)).otherwise(reason)
    tagged = frame.with_columns(reason.alias("reason"))
    valid = tagged.filter(pl.col("reason").is_null()).drop("reason")
    rejected = tagged.filter(pl.col("reason").is_not_null())
    return valid, rejected
