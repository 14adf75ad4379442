"""Reader for the vendor's per-contract NSE option snapshot Parquet files (52 columns).

The public :class:`NseOptionsReader` does the I/O (bounded ``iter_batches``); the
private ``_to_canonical`` kernel maps one Arrow batch to canonical columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.errors import IngestError
from ticklake.ingest.readers.base import (
    REJECTED_SCHEMA,
    Batch,
    FilesBatch,
    Reader,
    ReaderOptions,
    register_reader,
)
from ticklake.market.nse_symbols import OptionContract, SymbolError, format_symbol, parse_symbol
from ticklake.schemas import DatasetSchema, get_schema

DEFAULT_TIMEZONE = "Asia/Kolkata"
#: Rejected rows of a multi-file read: the usual columns plus the file's index.
_FILES_REJECTED = pl.Schema({**dict(REJECTED_SCHEMA.items()), "__file": pl.UInt32()})
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
    reads_many_files: ClassVar[bool] = True

    def schema_for(self, options: ReaderOptions) -> str:
        return "option_snapshots_full" if options.keep_all_columns else "option_snapshots"

    def source_order(self, path: Path) -> tuple[Any, ...] | None:
        """Contract files in the partition order (underlying, expiry, opt_type, strike),
        decoded from the name; a name that does not decode sorts after them."""
        contract = _contract_from_name(path)
        if contract is None:
            return (1, "", "", "", 0.0)
        return (
            0,
            contract.underlying,
            contract.expiry.isoformat(),
            contract.opt_type,
            float(contract.strike),
        )

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        path = Path(path)
        target = get_schema(self.schema_for(options))
        timezone = options.timezone or DEFAULT_TIMEZONE
        parquet = _open(path)
        columns = _wanted_columns(parquet, path, options)
        contracts: dict[str, OptionContract] = {}
        file_contract = _contract_from_name(path)
        row_offset = 0
        try:
            for record_batch in parquet.iter_batches(
                batch_size=max(1, options.batch_rows), columns=columns
            ):
                table = pl.from_arrow(pa.Table.from_batches([record_batch]))
                assert isinstance(table, pl.DataFrame)
                table = _tag(table, [0], [record_batch.num_rows], row_offset)
                symbols = (
                    table["symbol"].cast(pl.String).unique().to_list()
                    if "symbol" in table.columns
                    else [None]
                )
                lookup, problems = _contract_lookup(0, symbols, path, contracts, file_contract)
                frame, rejected = _to_canonical(
                    table,
                    lookup,
                    timezone=timezone,
                    full=options.keep_all_columns,
                    target_columns=target.column_names,
                )
                if problems and frame["symbol"].null_count():
                    symbol = frame.filter(pl.col("symbol").is_null())["__symbol_raw"][0]
                    raise problems[symbol]
                yield Batch(
                    frame=target.conform(frame.drop("__file", "__symbol_raw"), source=str(path)),
                    rejected=rejected.drop("__file"),
                )
                row_offset += record_batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise IngestError(
                f"{path}: Parquet data is corrupt or truncated after row {row_offset} ({exc}); "
                "re-download the file or remove it.",
                path=str(path),
                row=row_offset,
            ) from exc

    def read_files(self, paths: Sequence[Path], options: ReaderOptions) -> FilesBatch:
        """Read many small per-contract files at once: one kernel pass for all of them.

        A file that cannot be read (or whose contract cannot be told) lands in
        ``failed`` with the same message :meth:`read` raises, and none of its rows
        are returned.
        """
        target = get_schema(self.schema_for(options))
        timezone = options.timezone or DEFAULT_TIMEZONE
        failed: dict[int, str] = {}
        problems: dict[int, dict[str | None, IngestError]] = {}
        # Footers first (cheap): files with the same projected layout are read together.
        by_layout: dict[tuple[tuple[str, str], ...], list[tuple[int, Path, list[str], int]]] = {}
        for index, raw_path in enumerate(paths):
            path = Path(raw_path)
            try:
                parquet = _open(path)
                columns = _wanted_columns(parquet, path, options)
            except IngestError as exc:
                failed[index] = str(exc)
                continue
            types = parquet.schema_arrow
            layout = tuple((name, str(types.field(name).type)) for name in columns)
            by_layout.setdefault(layout, []).append(
                (index, path, columns, parquet.metadata.num_rows)
            )
        groups: list[tuple[pl.DataFrame, pl.DataFrame]] = []
        for members in by_layout.values():
            frame = _read_together(members, failed)
            if frame is None:
                continue
            lookups = []
            symbol = (
                pl.col("symbol").cast(pl.String)
                if "symbol" in frame.columns
                else pl.lit(None, pl.String)
            )
            pairs = frame.select("__file", symbol.alias("symbol"))
            for (index,), symbols in pairs.unique().partition_by("__file", as_dict=True).items():
                path = Path(paths[index])
                lookup, problems[index] = _contract_lookup(
                    index, symbols["symbol"].to_list(), path, {}, _contract_from_name(path)
                )
                lookups.append(lookup)
            groups.append((frame, pl.concat(lookups)))
        frames, rejected = [], []
        for frame, lookup in groups:
            out, bad = _to_canonical(
                frame,
                lookup,
                timezone=timezone,
                full=options.keep_all_columns,
                target_columns=target.column_names,
            )
            frames.append(out)
            rejected.append(bad)
        if not frames:
            return FilesBatch(_empty_files_frame(target), _empty_files_rejected(), failed)
        out = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
        bad = pl.concat(rejected, how="vertical")
        unresolved = out.filter(pl.col("symbol").is_null())
        if unresolved.height:
            # Rows with a time but no contract: their file fails, as read() would.
            for index, symbol in unresolved.select("__file", "__symbol_raw").unique().iter_rows():
                failed.setdefault(index, str(problems[index][symbol]))
            out = out.filter(~pl.col("__file").is_in(list(failed)))
            bad = bad.filter(~pl.col("__file").is_in(list(failed)))
        files = out["__file"]
        return FilesBatch(
            frame=target.conform(
                out.drop("__file", "__symbol_raw"), source=str(paths[0])
            ).with_columns(files),
            rejected=bad,
            failed=failed,
        )


def _empty_files_frame(target: DatasetSchema) -> pl.DataFrame:
    return pl.DataFrame(schema=target.polars_schema()).with_columns(
        pl.lit(None, pl.UInt32).alias("__file")
    )


def _empty_files_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=_FILES_REJECTED)


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise IngestError(
            f"{path}: not a readable Parquet file ({exc}); the file is truncated or "
            "corrupt — re-download it or remove it from the source folder.",
            path=str(path),
        ) from exc


def _wanted_columns(parquet: pq.ParquetFile, path: Path, options: ReaderOptions) -> list[str]:
    """The file's columns the mapping uses (the rest of the 52 are never decoded)."""
    present = parquet.schema_arrow.names
    if not set(present) & set(TIME_COLUMNS):
        raise IngestError(
            f"{path}: none of the time columns {', '.join(TIME_COLUMNS)} is present "
            f"(columns: {', '.join(sorted(present))}); is this the 52-column vendor format?",
            path=str(path),
        )
    used = {*TIME_COLUMNS, "symbol", *_LEAN_FIELDS}
    if options.keep_all_columns:
        used |= set(_FULL_FIELDS)
    return [name for name in present if name in used]


def _tag(
    frame: pl.DataFrame, files: Sequence[int], rows: Sequence[int], row_offset: int = 0
) -> pl.DataFrame:
    """Add ``__file`` (source file index) and ``__row`` (1-based row in that file).

    ``frame`` holds the files' rows back to back: ``rows[i]`` rows of file ``files[i]``.
    """
    counts = np.asarray(rows, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    index = np.arange(int(counts.sum()), dtype=np.int64)
    return frame.with_columns(
        pl.Series("__file", np.repeat(np.asarray(files, dtype=np.uint32), counts)),
        pl.Series("__row", index - np.repeat(starts, counts) + 1 + row_offset),
    )


def _read_together(
    members: list[tuple[int, Path, list[str], int]], failed: dict[int, str]
) -> pl.DataFrame | None:
    """Read files of one layout in one native multi-file scan, tagged with file and row.

    If the scan fails (a file whose data pages are corrupt), read them one by one so
    the broken file is named in ``failed`` and the others still load.
    """
    columns = members[0][2]
    try:
        frame = pl.scan_parquet([path for _, path, _, _ in members]).select(columns).collect()
        if frame.height == sum(rows for *_, rows in members):
            return _tag(frame, [m[0] for m in members], [m[3] for m in members])
    except (pl.exceptions.PolarsError, OSError):
        pass
    parts, files, counts = [], [], []
    for index, path, _, _ in members:
        try:
            table = pq.ParquetFile(path).read(columns=columns)
        except (OSError, pa.ArrowException) as exc:
            failed[index] = (
                f"{path}: Parquet data is corrupt or truncated after row 0 ({exc}); "
                "re-download the file or remove it."
            )
            continue
        part = pl.from_arrow(table)
        assert isinstance(part, pl.DataFrame)
        parts.append(part)
        files.append(index)
        counts.append(part.height)
    if not parts:
        return None
    return _tag(pl.concat(parts, how="vertical"), files, counts)


def _contract_lookup(
    file_index: int,
    distinct: list[str | None],
    path: Path,
    contracts: dict[str, OptionContract],
    file_contract: OptionContract | None,
) -> tuple[pl.DataFrame, dict[str | None, IngestError]]:
    """Contract columns for each distinct symbol of one file, keyed by (file, raw symbol).

    A symbol that cannot be decoded is left out and its error returned: it only fails
    the file if a row with a usable time carries it (rows without a time are rejected
    for that first).
    """
    decoded: dict[str | None, OptionContract] = {}
    problems: dict[str | None, IngestError] = {}
    for symbol in distinct:
        try:
            decoded[symbol] = _resolve_contract(symbol, path, contracts, file_contract)
        except IngestError as exc:
            problems[symbol] = exc
    lookup = pl.DataFrame(
        {
            "__file": [file_index] * len(decoded),
            "__symbol_raw": list(decoded),
            "symbol": [format_symbol(c) for c in decoded.values()],
            "underlying": [c.underlying for c in decoded.values()],
            "expiry": [c.expiry for c in decoded.values()],
            "strike": [c.strike for c in decoded.values()],
            "opt_type": [c.opt_type for c in decoded.values()],
        },
        schema={
            "__file": pl.UInt32,
            "__symbol_raw": pl.String,
            "symbol": pl.String,
            "underlying": pl.String,
            "expiry": pl.Date,
            "strike": pl.Float64,
            "opt_type": pl.String,
        },
    )
    return lookup, problems


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
    lookup: pl.DataFrame,
    *,
    timezone: str,
    full: bool,
    target_columns: tuple[str, ...],
    exact: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Map tagged vendor rows (``__file``, ``__row``) to canonical rows and rejected rows.

    Both outputs keep ``__file``. ``lookup`` holds the contract columns per
    ``(__file, __symbol_raw)``. One lazy plan: Polars fuses the time parsing, the
    contract join and the ~30 column expressions into one pass.
    """
    present = [name for name in TIME_COLUMNS if name in frame.columns]
    naive = all(
        isinstance(dtype := frame.schema[name], pl.Datetime) and dtype.time_zone is None
        for name in present
    )
    fast = naive and not full and not exact
    if fast:
        # Localizing is the costly step: take the first non-null naive time and localize
        # once, not every column. Differs only when that time does not exist in the zone
        # (a DST gap), where the rule moves on to the next column: checked below.
        first = pl.coalesce([pl.col(name).dt.cast_time_unit("ns") for name in present])
        localized = first.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")
        work = frame.lazy().with_columns(
            first.alias("__naive"), localized.dt.convert_time_zone("UTC").alias("__ts")
        )
    else:
        times = [_time_expr(frame, name, timezone).alias(f"__t_{name}") for name in TIME_COLUMNS]
        ts = pl.coalesce([pl.col(f"__t_{name}") for name in TIME_COLUMNS])
        work = frame.lazy().with_columns(*times).with_columns(ts.alias("__ts"))

    raw_cols = [c for c in frame.columns if c in (*TIME_COLUMNS, "symbol")]
    rejected = (
        work.filter(pl.col("__ts").is_null())
        .select(
            pl.col("__row").alias("source_row"),
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
            pl.col("__file"),
            *([pl.col("__naive")] if fast else []),
        )
        .cast({**dict(_FILES_REJECTED.items()), **({"__naive": pl.Datetime("ns")} if fast else {})})
    )

    symbols = (
        pl.col("symbol").cast(pl.String)
        if "symbol" in frame.columns
        else pl.lit(None, dtype=pl.String)
    )
    good = (
        work.filter(pl.col("__ts").is_not_null())
        .with_columns(symbols.alias("__symbol_raw"))
        .drop([c for c in ("symbol", "strike", "opt_type") if c in frame.columns])
        .join(
            lookup.lazy(),
            on=["__file", "__symbol_raw"],
            how="left",
            nulls_equal=True,
            maintain_order="left",
        )
    )

    fields = dict(_LEAN_FIELDS)
    if full:
        fields.update(_FULL_FIELDS)
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
        # vendor_ts: the time column the rule did not use (timestamp when ts was used).
        selected.append(
            pl.when(pl.col("__t_ts").is_not_null())
            .then(pl.col("__t_timestamp"))
            .otherwise(pl.col("__t_ts"))
            .alias("vendor_ts")
        )
    out = (
        good.select(*selected, pl.col("__file"), pl.col("__symbol_raw"))
        .with_columns(level_qty_fix)
        .select(*target_columns, "__file", "__symbol_raw")
    )
    canonical, bad = pl.collect_all([out, rejected])
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
    return canonical, bad
