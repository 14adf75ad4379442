"""Row-level checks every ingested row must pass before it may enter bronze.

These are the basics that make a row usable at all (a plausible time, a known
instrument, finite positive prices below a plausibility cap, non-negative finite
quantities); data-quality judgements (outliers, gaps, crossed books) belong to
``ticklake validate`` later and never drop rows. A failing row is moved to the
quarantine with the first reason it failed, never silently dropped or changed.

The one rule for every reader (csv / jsonl / parquet mappings and every vendor preset):

- **time**: ``ts`` in ``[MIN_TS, now + FUTURE_SKEW)``; 1990 catches wrong units (ms read as
  s, 1970 placeholders), the future bound catches ms read as µs and typos (2099).
  ``now`` is the ingest time; the skew (one day) covers every time-zone offset (at most
  ±14 h) a naive time read in the wrong zone can add, plus clock drift.
- **prices** (``price``, ``*_price``, ``*_price_<i>``, ``strike``, ``open`` ...
  ``vwap``): finite, ``> 0`` and ``< MAX_PRICE`` (10¹²). The dearest real quotes are
  about 10⁹ (BTC in IDR ≈ 1.6·10⁹, index points ≤ 10⁵, Berkshire A ≈ 7·10⁵); above 10¹²
  it is a fixed-point price without ``price_scale`` (Databento ×10⁹ gives ≥ 10¹²) or a
  garbage number (1e308, a 40-digit string). ``l3`` prices may be null (cancels); a
  present one follows the same rule except the sign (futures and spreads trade below 0).
- **quantities** (``size``, ``*_size``, ``volume``, ``*_volume``, ``oi``, ``*_qty``,
  ``*_orders_<i>``, ``trade_count`` ...): finite, ``>= 0`` and ``< MAX_QUANTITY`` (10¹⁸,
  the int64 range; a day of PEPE is ≈ 10¹⁵ units). 0 is a legitimate quantity.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import polars as pl

from ticklake.schemas import DatasetSchema

#: Earliest plausible event time: catches wrong units (seconds read as ns, 1970 zeros).
MIN_TS = datetime(1990, 1, 1, tzinfo=UTC)
#: How far after the ingest time an event may lie (time-zone offsets + clock drift).
FUTURE_SKEW = timedelta(days=1)
#: Prices at or above this are not prices (see the module docstring).
MAX_PRICE = 1e12
#: Quantities at or above this are not quantities (see the module docstring).
MAX_QUANTITY = 1e18
#: Kept for callers of the old fixed window; the upper bound is now ``max_ts()``.
MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)

_INSTRUMENT_COLUMNS = ("instrument", "symbol", "underlying")
_POSITIVE_EXACT = {"strike", "open", "high", "low", "close", "vwap"}
_QUANTITY = re.compile(
    r"^(size|volume|oi|open_interest|trade_count|qty)$"
    r"|_(size|qty|volume|orders)(_\d+)?$|^oi_(high|low)$"
)


def max_ts(now: datetime | None = None) -> datetime:
    """The first implausible (future) event time for an ingest running at ``now``."""
    return (now or datetime.now(UTC)) + FUTURE_SKEW


def _is_price(name: str) -> bool:
    return (
        name == "price" or name.endswith("_price") or "_price_" in name or name in _POSITIVE_EXACT
    )


def is_quantity(name: str) -> bool:
    """Whether a canonical column holds a quantity (may be 0, never negative)."""
    return _QUANTITY.search(name) is not None


def row_checks(schema: DatasetSchema, now: datetime | None = None) -> list[tuple[pl.Expr, str]]:
    """Return ``(bad_row_expression, reason)`` pairs for a schema, in priority order.

    ``now`` is the ingest time the future bound is taken from (default: the clock).
    """
    checks: list[tuple[pl.Expr, str]] = []
    ts = schema.ts_column
    latest = max_ts(now)
    checks.append((pl.col(ts).is_null(), f"missing time ({ts})"))
    checks.append(
        (
            pl.col(ts) < MIN_TS,
            f"implausible time ({ts} before {MIN_TS:%Y-%m-%d}: wrong unit, or a 1970 placeholder?)",
        )
    )
    checks.append(
        (
            pl.col(ts) >= latest,
            f"implausible time ({ts} more than {FUTURE_SKEW.days} day after the ingest time "
            f"{latest - FUTURE_SKEW:%Y-%m-%d %H:%M} UTC: wrong unit or a typo?)",
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
            not_finite = value.is_nan() | value.is_infinite()
            if name == "price" and schema.name == "l3":
                # L3 events may carry no price (cancels); a present price must be sane.
                checks.append(
                    (
                        value.is_not_null() & (not_finite | (value.abs() >= MAX_PRICE)),
                        f"{name} is not a finite number below the {MAX_PRICE:.0e} plausibility cap",
                    )
                )
                continue
            checks.append(
                (
                    value.is_not_null() & not_finite,
                    f"{name} is not a finite positive number (NaN or inf)",
                )
            )
            checks.append(
                (
                    value.is_not_null() & (value <= 0),
                    f"{name} is not a finite positive number (zero or negative)",
                )
            )
            checks.append(
                (
                    value.is_not_null() & (value >= MAX_PRICE),
                    f"{name} is not a finite positive number below the {MAX_PRICE:.0e} "
                    "plausibility cap (a fixed-point price without price_scale, or garbage)",
                )
            )
        elif is_quantity(name) and col.type in ("float64", "float32", "int64", "int32"):
            value = pl.col(name)
            bad = value.is_not_null() & (value < 0)
            if col.type.startswith("float"):
                bad = bad | (value.is_not_null() & (value.is_nan() | value.is_infinite()))
            checks.append((bad, f"{name} is negative or not finite"))
            checks.append(
                (
                    value.is_not_null() & (value >= MAX_QUANTITY),
                    f"{name} is at or above the {MAX_QUANTITY:.0e} plausibility cap for quantities",
                )
            )
    return checks


def split_valid(
    frame: pl.DataFrame, schema: DatasetSchema, now: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split conformed rows into ``(valid, rejected)``; rejected has a ``reason`` column.

    Examples:
        >>> from datetime import datetime, timezone
        >>> from ticklake.schemas import get_schema
        >>> df = get_schema("prices").conform(pl.DataFrame({
        ...     "ts": [datetime(2024, 1, 2, tzinfo=timezone.utc)] * 3,
        ...     "instrument": ["NIFTY"] * 3, "price": [21000.0, -1.0, 1e308]}))
        >>> ok, bad = split_valid(df, get_schema("prices"))
        >>> ok.height
        1
        >>> for reason in bad["reason"]:
        ...     print(reason.split(" (")[0])
        price is not a finite positive number
        price is not a finite positive number below the 1e+12 plausibility cap
    """
    if frame.height == 0:
        return frame, frame.with_columns(pl.lit(None, pl.String).alias("reason")).head(0)
    reason: pl.Expr = pl.lit(None, pl.String)
    for bad, text in reversed(row_checks(schema, now)):
        reason = pl.when(bad.fill_null(False)).then(pl.lit(text)).otherwise(reason)
    tagged = frame.with_columns(reason.alias("reason"))
    valid = tagged.filter(pl.col("reason").is_null()).drop("reason")
    rejected = tagged.filter(pl.col("reason").is_not_null())
    return valid, rejected
