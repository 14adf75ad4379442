"""The nse_options kernel: one Arrow batch of vendor rows to canonical and rejected rows.

Private (leading underscore; the reader auto-discovery skips it): the vendor's field
tables, the time rule and the value rules of :mod:`ticklake.ingest.readers.nse_options`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from ticklake.ingest.batch import REJECTED_SCHEMA
from ticklake.ingest.validate import MAX_PRICE, MAX_QUANTITY, MIN_TS, max_ts

#: Rejected rows of a multi-file read: the usual columns plus the file's index.
_FILES_REJECTED = pl.Schema({**dict(REJECTED_SCHEMA.items()), "__file": pl.UInt32()})
#: Candidate time columns, in the order the time rule tries them.
TIME_COLUMNS = ("ts", "timestamp", "lastTradeTime")
#: String layouts tried when a vendor time column holds text instead of a timestamp.
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%d-%m-%Y %H:%M:%S%.f")

# vendor name -> (canonical name, kind). Kind "price" turns 0 into null; what each kind
# accepts is in _value_problem (a row with an impossible value is rejected, never nulled).
_LEAN_FIELDS: dict[str, tuple[str, str]] = {
    "price": ("last_price", "price"),
    "volume": ("volume", "int"),
    "oi": ("oi", "int"),
    **{
        f"{pfx}{what}{i}": (f"{side}_{name}_{i}", kind)
        for side, pfx in (("bid", "b"), ("ask", "s"))
        for i in range(5)
        for what, name, kind in (("p", "price", "price"), ("q", "qty", "int"))
    },
}
_FULL_FIELDS: dict[str, tuple[str, str]] = {
    "qty": ("last_qty", "int"),
    "avgPrice": ("avg_price", "price"),
    "bQty": ("total_bid_qty", "int"),
    "sQty": ("total_ask_qty", "int"),
    "open": ("open", "price"),
    "high": ("high", "price"),
    "low": ("low", "price"),
    "close": ("close", "float"),
    "changeper": ("change_pct", "signed"),
    "oiHigh": ("oi_high", "int"),
    "oiLow": ("oi_low", "int"),
    **{
        f"{pfx}o{i}": (f"{side}_orders_{i}", "int")
        for side, pfx in (("bid", "b"), ("ask", "s"))
        for i in range(5)
    },
}


def _time_expr(frame: pl.DataFrame, name: str, timezone: str) -> pl.Expr:
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.Datetime("ns", "UTC"))
    dtype = frame.schema[name]
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        parsed = col.dt.cast_time_unit("ns")
        if dtype.time_zone is None:
            parsed = parsed.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
        return parsed.dt.convert_time_zone("UTC")
    if dtype == pl.String:
        text = col.str.strip_chars()
        attempts = [
            text.str.strptime(pl.Datetime("ns"), fmt, strict=False) for fmt in _TIME_FORMATS
        ]
        return (
            pl.coalesce(attempts)
            .dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
            .dt.convert_time_zone("UTC")
        )
    return pl.lit(None, dtype=pl.Datetime("ns", "UTC"))


def _value_expr(frame: pl.DataFrame, vendor: str, canonical: str, kind: str) -> pl.Expr:
    """The canonical value of a vendor field (rows with an impossible one are rejected
    before: see :func:`_value_problem`, so nothing here changes a value silently)."""
    if vendor not in frame.columns:
        return pl.lit(None).alias(canonical)
    col = _number(frame, vendor)
    if kind == "int":
        return col.cast(pl.Int64, strict=False).alias(canonical)
    if kind == "price":
        # 0 is the vendor's "none" (no trade yet, no order at that level): null.
        return pl.when(col > 0).then(col).otherwise(None).alias(canonical)
    return col.alias(canonical)


def _number(frame: pl.DataFrame, vendor: str) -> pl.Expr:
    """A vendor field as float64; text is stripped first, an empty text is null."""
    if frame.schema[vendor].is_numeric():
        return pl.col(vendor).cast(pl.Float64, strict=False)
    return pl.col(vendor).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)


def _value_problem(
    frame: pl.DataFrame, vendor: str, canonical: str, kind: str
) -> tuple[pl.Expr, pl.Expr] | None:
    """``(bad, reason)`` for a vendor value that no real snapshot can hold.

    Null (an empty field) is always fine. Every kind rejects text that is not a number
    and NaN / ±inf. ``price``: 0 means "none" (becomes null), negative is rejected, and
    so is 10¹² or more (the ingest price cap); ``int`` (quantities, volume, OI, orders):
    whole numbers >= 0 below 10¹⁸; ``float`` (previous close): >= 0; ``signed``
    (change %): any finite number. The reasons use the words of the ingest row checks.
    """
    if vendor not in frame.columns:
        return None
    dtype = frame.schema[vendor]
    raw = pl.col(vendor)
    num = _number(frame, vendor)
    unsound = "is not a finite positive number" if kind == "price" else "is negative or not finite"
    conditions: list[tuple[pl.Expr, str]] = []
    if not dtype.is_numeric():
        stripped = raw.cast(pl.String).str.strip_chars()
        conditions.append(
            (stripped.is_not_null() & (stripped != "") & num.is_null(), "is not a number")
        )
    if dtype.is_float() or not dtype.is_numeric():
        conditions.append((num.is_nan() | num.is_infinite(), unsound))
    if kind != "signed":
        conditions.append((num < 0, unsound))
    if kind == "int":
        conditions.append((num != num.round(0), "is not a whole number"))
        conditions.append(
            (num >= MAX_QUANTITY, f"is at or above the {MAX_QUANTITY:.0e} plausibility cap")
        )
    elif kind != "signed":
        conditions.append(
            (num >= MAX_PRICE, f"is at or above the {MAX_PRICE:.0e} plausibility cap")
        )
    bad = pl.any_horizontal([c.fill_null(False) for c, _ in conditions])
    reason: pl.Expr = pl.lit(None, pl.String)
    for condition, text in reversed(conditions):
        # The row checks' words; where the vendor calls the field otherwise, its name and
        # value too (the raw text of the quarantined row holds every value anyway).
        said: pl.Expr = (
            pl.lit(f"{canonical} {text}")
            if vendor == canonical
            else pl.format(
                f"{canonical} {text} (vendor field {vendor!r}: {{}})", raw.cast(pl.String)
            )
        )
        reason = pl.when(condition.fill_null(False)).then(said).otherwise(reason)
    return bad, reason


def _plausible(value: pl.Expr, earliest: datetime, latest: datetime) -> pl.Expr:
    """``value`` where it is a plausible event time (the ingest row checks' window)."""
    return pl.when((value >= earliest) & (value < latest)).then(value)


def _to_canonical(
    frame: pl.DataFrame,
    lookup: pl.DataFrame,
    *,
    timezone: str,
    full: bool,
    target_columns: tuple[str, ...],
    exact: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Map tagged vendor rows (``__file``, ``__row``) to canonical rows and rejected rows.

    Both outputs keep ``__file``; the canonical rows also carry ``__time_column`` (the
    vendor column their ``ts`` came from). ``lookup`` holds the contract columns per
    ``(__file, __symbol_raw)``. One lazy plan: Polars fuses the time parsing, the
    contract join and the ~30 column expressions into one pass.

    Time rule, per row: the first of ts, timestamp, lastTradeTime that is present,
    parseable and plausible (1990 .. a day after now, as the ingest row checks): a
    ``ts`` of 1970-01-01 05:30 (epoch 0 in IST) beside a valid ``timestamp`` takes the
    ``timestamp``.
    """
    present = [name for name in TIME_COLUMNS if name in frame.columns]
    naive = all(
        isinstance(dtype := frame.schema[name], pl.Datetime) and dtype.time_zone is None
        for name in present
    )
    latest = max_ts()
    fast = naive and not full and not exact
    if fast:
        # Localizing is the costly step: take the first plausible naive time and localize
        # once, not every column. Differs only when that time does not exist in the zone
        # (a DST gap), where the rule moves on to the next column: checked below. The
        # naive window is the UTC one widened by a day each way; the exact check of the
        # localized time follows.
        naive_lo = MIN_TS.replace(tzinfo=None) - timedelta(days=1)
        naive_hi = latest.replace(tzinfo=None) + timedelta(days=1)
        candidates = [
            _plausible(pl.col(name).dt.cast_time_unit("ns"), naive_lo, naive_hi) for name in present
        ]
        first = pl.coalesce(candidates)
        used = pl.coalesce(
            [
                pl.when(c.is_not_null()).then(pl.lit(n))
                for c, n in zip(candidates, present, strict=True)
            ]
        )
        localized = first.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
        work = frame.lazy().with_columns(
            first.alias("__naive"),
            _plausible(localized.dt.convert_time_zone("UTC"), MIN_TS, latest).alias("__ts"),
            used.alias("__time_column"),
        )
        work = work.with_columns(
            # A first candidate that localizes out of the window: decide exactly below.
            pl.when(pl.col("__ts").is_null()).then(pl.col("__naive")).alias("__naive")
        )
    else:
        times = [_time_expr(frame, name, timezone).alias(f"__t_{name}") for name in TIME_COLUMNS]
        plausible = [
            _plausible(pl.col(f"__t_{name}"), MIN_TS, latest).alias(f"__p_{name}")
            for name in TIME_COLUMNS
        ]
        ts = pl.coalesce([pl.col(f"__p_{name}") for name in TIME_COLUMNS])
        used = pl.coalesce(
            [
                pl.when(pl.col(f"__p_{name}").is_not_null()).then(pl.lit(name))
                for name in TIME_COLUMNS
            ]
        )
        work = (
            frame.lazy()
            .with_columns(*times)
            .with_columns(*plausible)
            .with_columns(ts.alias("__ts"), used.alias("__time_column"))
        )

    raw_cols = [c for c in frame.columns if not c.startswith("__")]
    # Which rows hold some parseable time (then the reason is "implausible", not "none").
    parseable = [
        pl.col(name if fast else f"__t_{name}").is_not_null()
        for name in (present if fast else TIME_COLUMNS)
    ] or [pl.lit(False)]

    def raw_text(columns: list[str]) -> pl.Expr:
        if not columns:
            return pl.lit("").alias("raw")
        return pl.concat_str(
            [pl.format(f"{c}={{}}", pl.col(c).cast(pl.String).fill_null("null")) for c in columns],
            separator=", ",
        ).alias("raw")

    time_raw = [c for c in raw_cols if c in (*TIME_COLUMNS, "symbol")]
    rejected = (
        work.filter(pl.col("__ts").is_null())
        .select(
            pl.col("__row").alias("source_row"),
            raw_text(time_raw),
            pl.when(pl.any_horizontal(parseable))
            .then(
                pl.lit(
                    "time: none of ts, timestamp, lastTradeTime holds a plausible date-time "
                    f"(from {MIN_TS:%Y-%m-%d} to a day after the ingest): wrong unit or a "
                    "1970 placeholder?"
                )
            )
            .otherwise(
                pl.lit("time: none of ts, timestamp, lastTradeTime holds a parseable date-time")
            )
            .alias("reason"),
            pl.col("__file"),
            *([pl.col("__naive")] if fast else []),
        )
        .cast({**dict(_FILES_REJECTED.items()), **({"__naive": pl.Datetime("ns")} if fast else {})})
    )

    fields = dict(_LEAN_FIELDS)
    if full:
        fields.update(_FULL_FIELDS)
    problems = [
        problem
        for vendor, (name, kind) in fields.items()
        if (problem := _value_problem(frame, vendor, name, kind)) is not None
    ]
    timed = work.filter(pl.col("__ts").is_not_null())
    if problems:
        impossible = pl.any_horizontal([bad for bad, _ in problems])
        timed = timed.with_columns(impossible.alias("__impossible"))
        value_rejected = timed.filter(pl.col("__impossible")).select(
            pl.col("__row").alias("source_row"),
            raw_text(raw_cols),
            pl.coalesce([reason for _, reason in problems]).alias("reason"),
            pl.col("__file"),
        )
        timed = timed.filter(~pl.col("__impossible")).drop("__impossible")
    else:
        value_rejected = pl.LazyFrame(schema=_FILES_REJECTED)
    value_rejected = value_rejected.cast(dict(_FILES_REJECTED.items()))

    symbols = (
        pl.col("symbol").cast(pl.String)
        if "symbol" in frame.columns
        else pl.lit(None, dtype=pl.String)
    )
    good = (
        timed.with_columns(symbols.alias("__symbol_raw"))
        .drop([c for c in ("symbol", "strike", "opt_type") if c in frame.columns])
        .join(
            lookup.lazy(),
            on=["__file", "__symbol_raw"],
            how="left",
            nulls_equal=True,
            maintain_order="left",
        )
    )

    values = [_value_expr(frame, vendor, name, kind) for vendor, (name, kind) in fields.items()]
    # A missing level has price 0 and no meaningful quantity.
    level_qty_fix = [
        pl.when(pl.col(f"{side}_price_{i}").is_null())
        .then(None)
        .otherwise(pl.col(f"{side}_qty_{i}"))
        .alias(f"{side}_qty_{i}")
        for side in ("bid", "ask")
        for i in range(5)
    ]
    selected = [
        pl.col("__ts").alias("ts"),
        pl.col("symbol"),
        pl.col("underlying"),
        pl.col("expiry"),
        pl.col("strike"),
        pl.col("opt_type"),
        *values,
    ]
    if full:
        selected.append(pl.col("__t_lastTradeTime").alias("last_trade_ts"))
        # vendor_ts: the vendor's other time column, as written (timestamp when ts was
        # used; ts, even an implausible one, when the rule fell back past it).
        selected.append(
            pl.when(pl.col("__time_column") == "ts")
            .then(pl.col("__t_timestamp"))
            .otherwise(pl.col("__t_ts"))
            .alias("vendor_ts")
        )
    out = (
        good.select(*selected, pl.col("__file"), pl.col("__symbol_raw"), pl.col("__time_column"))
        .with_columns(level_qty_fix)
        .select(*target_columns, "__file", "__symbol_raw", "__time_column")
    )
    canonical, bad, impossible_rows = pl.collect_all([out, rejected, value_rejected])
    if fast:
        if bad["__naive"].is_not_null().any():
            return _to_canonical(
                frame,
                lookup,
                timezone=timezone,
                full=full,
                target_columns=target_columns,
                exact=True,
            )
        bad = bad.drop("__naive")
    if impossible_rows.height:
        bad = pl.concat([bad, impossible_rows], how="vertical")
    return canonical, bad
