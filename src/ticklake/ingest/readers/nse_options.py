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
from ticklake.ingest.readers._nse_options_kernel import (
    _FILES_REJECTED,
    _FULL_FIELDS,
    _LEAN_FIELDS,
    TIME_COLUMNS,
    _to_canonical,
)
from ticklake.ingest.readers.base import (
    Batch,
    FilesBatch,
    Reader,
    ReaderOptions,
    register_reader,
)
from ticklake.market.nse_symbols import OptionContract, SymbolError, format_symbol, parse_symbol
from ticklake.schemas import DatasetSchema, get_schema

DEFAULT_TIMEZONE = "Asia/Kolkata"


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
                    frame=target.conform(
                        frame.drop("__file", "__symbol_raw", "__time_column"), source=str(path)
                    ),
                    rejected=rejected.drop("__file"),
                    notes=_time_notes(frame),
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
        notes = {
            int(index): _time_notes(rows)
            for (index,), rows in out.partition_by("__file", as_dict=True).items()
        }
        return FilesBatch(
            frame=target.conform(
                out.drop("__file", "__symbol_raw", "__time_column"), source=str(paths[0])
            ).with_columns(files),
            rejected=bad,
            failed=failed,
            notes={index: note for index, note in notes.items() if note},
        )


def _time_notes(frame: pl.DataFrame) -> dict[str, int]:
    """Lineage notes: how many rows took their time from a column other than ``ts``."""
    counts = frame.filter(pl.col("__time_column") != "ts")["__time_column"].value_counts()
    return {
        f"time from `{name}` (ts missing, unparseable or implausible)": int(n)
        for name, n in counts.iter_rows()
    }


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
