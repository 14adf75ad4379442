"""Reader for the vendor's per-contract NSE option snapshot Parquet files (52 columns).

The public :class:`NseOptionsReader` does the I/O (bounded ``iter_batches``); the
private ``_to_canonical`` kernel maps one Arrow batch to canonical columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.errors import IngestError
from ticklake.ingest.readers.base import (
    REJECTED_SCHEMA,
    Batch,
    Reader,
    ReaderOptions,
    register_reader,
)
from ticklake.market.nse_symbols import OptionContract, SymbolError, format_symbol, parse_symbol
from ticklake.schemas import get_schema

DEFAULT_TIMEZONE = "Asia/Kolkata"
#: Candidate time columns, in the order the time rule tries them.
TIME_COLUMNS = ("ts", "timestamp", "lastTradeTime")
#: String layouts tried when a vendor time column holds text instead of a timestamp.
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%d-%m-%Y %H:%M:%S%.f")

# vendor name -> (canonical name, kind). Kind "price" turns 0 into null.
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
    "changeper": ("change_pct", "float"),
    "oiHigh": ("oi_high", "int"),
    "oiLow": ("oi_low", "int"),
    **{
        f"{pfx}o{i}": (f"{side}_orders_{i}", "int")
        for side, pfx in (("bid", "b"), ("ask", "s"))
        for i in range(5)
    },
}


@register_reader
class NseOptionsReader(Reader):
    name = "nse_options"
    schema = "option_snapshots"
    description = (
        "Per-contract NSE option snapshot Parquet files in the 52-column vendor format "
        "(timestamp, price, qty, ..., bq0..so4, ts, symbol, opt_type, strike, year, month), "
        "one file per contract and day, e.g. banknifty24jan48000ce.parquet. Contract "
        "(underlying, expiry, strike, CE/PE) is decoded from the `symbol` column, else from "
        "the file name; the trading date comes from the times inside the file, never from the "
        "name. Time rule, per row: `ts` if present and parseable, else `timestamp`, else "
        "`lastTradeTime`; naive times are Asia/Kolkata wall-clock (options.timezone overrides) "
        "and are converted to UTC; a row with no usable time goes to rejected. Prices are "
        "rupees as written (no scaling); a price of 0 for last/bid/ask (and open/high/low/avg) "
        "means 'none' and becomes null, with the quantity of a missing level set to null. "
        "Lean columns by default; options.keep_all_columns keeps every vendor field "
        "(option_snapshots_full, with vendor_ts holding the other of ts/timestamp). Reads in "
        "bounded batches; a truncated or corrupt file raises IngestError."
    )
    suffixes: ClassVar[tuple[str, ...]] = (".parquet",)
    exchange_timezone: ClassVar[str] = "Asia/Kolkata"

    def schema_for(self, options: ReaderOptions) -> str:
        return "option_snapshots_full" if options.keep_all_columns else "option_snapshots"

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        target = get_schema(self.schema_for(options))
        timezone = options.timezone or DEFAULT_TIMEZONE
        try:
            parquet = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise IngestError(
                f"{path}: not a readable Parquet file ({exc}); the file is truncated or "
                "corrupt — re-download it or remove it from the source folder.",
                path=str(path),
            ) from exc
        columns = set(parquet.schema_arrow.names)
        if not columns & set(TIME_COLUMNS):
            raise IngestError(
                f"{path}: none of the time columns {', '.join(TIME_COLUMNS)} is present "
                f"(columns: {', '.join(sorted(columns))}); is this the 52-column vendor format?",
                path=str(path),
            )
        contracts: dict[str, OptionContract] = {}
        file_contract = _contract_from_name(path)
        row_offset = 0
        try:
            for record_batch in parquet.iter_batches(batch_size=max(1, options.batch_rows)):
                frame = pl.from_arrow(pa.Table.from_batches([record_batch]))
                assert isinstance(frame, pl.DataFrame)
                yield _to_canonical(
                    frame,
                    path=path,
                    row_offset=row_offset,
                    timezone=timezone,
                    full=options.keep_all_columns,
                    contracts=contracts,
                    file_contract=file_contract,
                    target_columns=target.column_names,
                    conform=lambda f: target.conform(f, source=str(path)),
                )
                row_offset += frame.height
        except (OSError, pa.ArrowException) as exc:
            raise IngestError(
                f"{path}: Parquet data is corrupt or truncated after row {row_offset} ({exc}); "
                "re-download the file or remove it.",
                path=str(path),
                row=row_offset,
            ) from exc


def _contract_from_name(path: Path) -> OptionContract | None:
    try:
        return parse_symbol(path.name)
    except SymbolError:
        return None


def _resolve_contract(
    symbol: str | None,
    path: Path,
    contracts: dict[str, OptionContract],
    file_contract: OptionContract | None,
) -> OptionContract:
    key = symbol or ""
    if key in contracts:
        return contracts[key]
    contract: OptionContract | None = None
    problem = ""
    if symbol:
        try:
            contract = parse_symbol(symbol)
        except SymbolError as exc:
            problem = f"the symbol column holds {symbol!r} ({exc})"
    if contract is None:
        contract = file_contract
    if contract is None:
        raise IngestError(
            f"{path}: cannot tell the contract: {problem or 'no symbol column'} and the file "
            "name is not an NSE option symbol (e.g. banknifty24jan48000ce.parquet). Rename "
            "the file to its contract symbol.",
            path=str(path),
        )
    contracts[key] = contract
    return contract


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
    if vendor not in frame.columns:
        return pl.lit(None).alias(canonical)
    col = pl.col(vendor).cast(pl.Float64, strict=False)
    if kind == "int":
        return col.round(0).cast(pl.Int64, strict=False).alias(canonical)
    if kind == "price":
        return pl.when(col > 0).then(col).otherwise(None).alias(canonical)
    return col.alias(canonical)


def _to_canonical(
    frame: pl.DataFrame,
    *,
    path: Path,
    row_offset: int,
    timezone: str,
    full: bool,
    contracts: dict[str, OptionContract],
    file_contract: OptionContract | None,
    target_columns: tuple[str, ...],
    conform: Callable[[pl.DataFrame], pl.DataFrame],
) -> Batch:
    times = [_time_expr(frame, name, timezone).alias(f"__t_{name}") for name in TIME_COLUMNS]
    work = frame.with_columns(
        *times, pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("__row")
    )
    ts = pl.coalesce([pl.col(f"__t_{name}") for name in TIME_COLUMNS])
    work = work.with_columns(ts.alias("__ts"))
    bad = work.filter(pl.col("__ts").is_null())
    good = work.filter(pl.col("__ts").is_not_null())

    rejected = pl.DataFrame(schema=REJECTED_SCHEMA)
    if bad.height:
        raw_cols = [c for c in frame.columns if c in (*TIME_COLUMNS, "symbol")]
        raw = bad.select(
            (pl.col("__row") + row_offset).alias("source_row"),
            pl.concat_str(
                [
                    pl.format(f"{c}={{}}", pl.col(c).cast(pl.String).fill_null("null"))
                    for c in raw_cols
                ],
                separator=", ",
            ).alias("raw")
            if raw_cols
            else pl.lit("").alias("raw"),
            pl.lit("time: none of ts, timestamp, lastTradeTime holds a parseable date-time").alias(
                "reason"
            ),
        )
        rejected = raw.cast(REJECTED_SCHEMA)

    # Contract columns, decoded once per distinct symbol.
    if "symbol" in good.columns:
        symbols = good.get_column("symbol").cast(pl.String)
    else:
        symbols = pl.Series("symbol", [None] * good.height, dtype=pl.String)
    decoded = {
        s: _resolve_contract(s, path, contracts, file_contract) for s in symbols.unique().to_list()
    }
    lookup = pl.DataFrame(
        {
            "__symbol_raw": list(decoded),
            "symbol": [format_symbol(c) for c in decoded.values()],
            "underlying": [c.underlying for c in decoded.values()],
            "expiry": [c.expiry for c in decoded.values()],
            "strike": [c.strike for c in decoded.values()],
            "opt_type": [c.opt_type for c in decoded.values()],
        },
        schema={
            "__symbol_raw": pl.String,
            "symbol": pl.String,
            "underlying": pl.String,
            "expiry": pl.Date,
            "strike": pl.Float64,
            "opt_type": pl.String,
        },
    )
    good = good.with_columns(symbols.alias("__symbol_raw")).drop(
        [c for c in ("symbol", "strike", "opt_type") if c in good.columns]
    )
    good = good.join(lookup, on="__symbol_raw", how="left", nulls_equal=True)

    fields = dict(_LEAN_FIELDS)
    if full:
        fields.update(_FULL_FIELDS)
    values = [_value_expr(good, vendor, name, kind) for vendor, (name, kind) in fields.items()]
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
        # vendor_ts: the time column the rule did not use (timestamp when ts was used).
        selected.append(
            pl.when(pl.col("__t_ts").is_not_null())
            .then(pl.col("__t_timestamp"))
            .otherwise(pl.col("__t_ts"))
            .alias("vendor_ts")
        )
    out = good.select(selected).with_columns(level_qty_fix).select(list(target_columns))
    return Batch(frame=conform(out), rejected=rejected)
