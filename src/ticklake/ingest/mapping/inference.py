"""Mapping inference: propose a :class:`~ticklake.ingest.mapping.model.Mapping` for an
unknown file (:func:`infer_mapping`) or an in-memory frame (:func:`mapping_for_frame`).

Columns are matched by synonyms of the canonical names, the time column by name, type
or epoch-sized integers, its unit by magnitude and its format from
:data:`TIME_FORMATS`; each guess is noted so :func:`render_yaml` can explain it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from ticklake.errors import MappingError
from ticklake.ingest.mapping.coercion import _time_expr, to_polars
from ticklake.ingest.mapping.model import CsvSpec, Mapping, TimeSpec, detect_epoch_unit
from ticklake.ingest.source_io import iter_text_chunks, open_source
from ticklake.schemas import get_schema

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ts": (
        "ts",
        "timestamp",
        "time",
        "datetime",
        "date_time",
        "timestamp_utc",
        "open_time",
        "transact_time",
        "transaction_time",
        "event_time",
        "exchange_timestamp",
        "t",
        "date",
        "tradetime",
        "trade_time",
    ),
    "instrument": ("instrument", "symbol", "ticker", "sym", "pair", "market", "code"),
    "trade_id": ("trade_id", "tradeid", "id", "agg_trade_id", "match_id", "tid"),
    "price": ("price", "px", "last", "last_price", "ltp", "trade_price", "p", "rate"),
    "size": ("size", "qty", "quantity", "amount", "volume", "q", "base_qty", "vol"),
    "side": ("side", "aggressor", "aggressor_side", "taker_side"),
    "venue": ("venue", "exchange", "exch"),
    "recv_ts": ("recv_ts", "local_timestamp", "receive_time", "received_at"),
    "seq": ("seq", "sequence", "seq_num", "update_id", "last_update_id"),
    "bid_price": ("bid_price", "bid", "bid_px", "best_bid", "best_bid_price", "bidprice", "bp"),
    "bid_size": ("bid_size", "bid_qty", "bid_amount", "bid_volume", "best_bid_qty", "bidsize"),
    "ask_price": ("ask_price", "ask", "ask_px", "best_ask", "best_ask_price", "askprice", "ap"),
    "ask_size": ("ask_size", "ask_qty", "ask_amount", "ask_volume", "best_ask_qty", "asksize"),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last"),
    "volume": ("volume", "vol", "v", "base_volume"),
    "quote_volume": ("quote_volume", "quote_asset_volume", "turnover", "notional"),
    "trade_count": ("trade_count", "count", "trades", "number_of_trades", "num_trades"),
    "ts_end": ("close_time", "ts_end", "end_time"),
    "open_interest": ("open_interest", "oi"),
    "is_snapshot": ("is_snapshot", "snapshot"),
}
_BUYER_MAKER = ("is_buyer_maker", "buyer_maker", "isbuyermaker", "m")

#: Time formats tried on string time columns, most specific first.
TIME_FORMATS: tuple[str, ...] = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M",
    "%Y%m%d %H:%M:%S%.f",
    "%Y%m%d-%H:%M:%S%.f",
    "%Y%m%d %H%M%S",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%Y-%m-%d",
    "%Y%m%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
)

_SAMPLE_ROWS = 1000


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def guess_time_format(values: pl.Series) -> str | None:
    """Return the first of :data:`TIME_FORMATS` that parses every sample string, or None.

    Examples:
        >>> guess_time_format(pl.Series(["2023-03-16 09:30:00", "2023-03-16 09:31:00"]))
        '%Y-%m-%d %H:%M:%S%.f'
    """
    sample = values.cast(pl.String).str.strip_chars().drop_nulls().head(200)
    if sample.len() == 0:
        return None
    for fmt in TIME_FORMATS:
        try:
            parsed = sample.str.strptime(pl.Datetime("ns"), fmt, strict=False)
        except pl.exceptions.PolarsError:
            continue
        if parsed.null_count() == 0:
            return fmt
    return None


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sniff_csv(head: bytes) -> CsvSpec:
    """Guess separator and header from the first lines of a delimited text file."""
    text = head.decode("utf-8", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()][:20]
    if not lines:
        return CsvSpec()
    separator = max((",", ";", "\t", "|"), key=lambda sep: lines[0].count(sep))
    first = [f.strip().strip('"') for f in lines[0].split(separator)]
    first_is_data = any(
        _looks_numeric(f) or guess_time_format(pl.Series([f])) is not None for f in first if f
    )
    return CsvSpec(has_header=not first_is_data, separator=separator)


def _sample_frame(path: Path) -> tuple[pl.DataFrame, CsvSpec | None]:

    name = path.name.lower()
    for suffix in (".gz", ".zst"):
        name = name.removesuffix(suffix)
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            with open_source(path) as fh:
                table = pq.ParquetFile(io.BytesIO(fh.read())).read_row_group(0)
            return to_polars(table.slice(0, _SAMPLE_ROWS)), None
        if name.endswith((".arrow", ".ipc", ".feather", ".arrows")):
            with open_source(path) as fh:
                blob = fh.read()
            try:
                table = pa.ipc.open_file(pa.BufferReader(blob)).read_all()
            except pa.ArrowInvalid:
                table = pa.ipc.open_stream(pa.BufferReader(blob)).read_all()
            return to_polars(table.slice(0, _SAMPLE_ROWS)), None
        head = next(iter_text_chunks(path, _SAMPLE_ROWS + 1), (1, b""))[1]
        if name.endswith((".jsonl", ".ndjson", ".json")):
            return pl.read_ndjson(io.BytesIO(head)), None
        spec = sniff_csv(head)
        frame = pl.read_csv(
            io.BytesIO(head),
            has_header=spec.has_header,
            separator=spec.separator,
            truncate_ragged_lines=True,
            infer_schema_length=_SAMPLE_ROWS,
        )
        if not spec.has_header:
            names = tuple(f"column_{i + 1}" for i in range(frame.width))
            frame.columns = list(names)
            spec = spec.model_copy(update={"column_names": names})
        return frame, spec
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        raise MappingError(
            f"{path}: cannot read a sample to infer a mapping ({exc}); write the mapping by "
            "hand (see `ticklake ingest --help`).",
            path=str(path),
        ) from exc


def infer_mapping(path: str | Path, schema: str | None = None) -> Mapping:
    """Propose a mapping for an unknown file; review it with :func:`render_yaml`."""
    path = Path(path)
    frame, spec = _sample_frame(path)
    mapping = _infer_from_frame(frame, schema, source=str(path), csv=spec)
    return mapping


def mapping_for_frame(frame: Any, schema: str | None = None, **overrides: Any) -> Mapping:
    """Infer a mapping for an in-memory Polars / pandas / Arrow frame, then apply overrides.

    Overrides are mapping fields: ``columns`` / ``constants`` / ``time`` are merged into
    the inferred ones, others replace them (``mapping_for_frame(df, "trades",
    constants={"instrument": "AAPL"})``).
    """
    inferred = _infer_from_frame(to_polars(frame), schema, source="frame", csv=None)
    data = inferred.model_dump(by_alias=True, exclude_none=True)
    for key, value in overrides.items():
        key = "schema" if key == "dataset_schema" else key
        if key in ("columns", "constants", "time") and isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
            if key == "time" and {"date_column", "time_column"} & set(value):
                data[key].pop("column", None)
            if key == "time" and "format" in value:
                data[key].pop("unit", None)
        else:
            data[key] = value
    return Mapping.from_dict(data, source="mapping_for_frame overrides")


def _infer_from_frame(
    frame: pl.DataFrame, schema: str | None, *, source: str, csv: CsvSpec | None
) -> Mapping:
    by_name = {_normalise(c): c for c in frame.columns}

    def find(canonical: str) -> str | None:
        for synonym in _SYNONYMS.get(canonical, (canonical,)):
            if synonym in by_name:
                return by_name[synonym]
        return None

    notes: dict[str, str] = {}
    time_column = _find_time_column(frame, find("ts"))
    if time_column is None:
        raise MappingError(
            f"{source}: no time column found (looked for names like ts/time/timestamp/date "
            f"and epoch-sized integers) among {', '.join(frame.columns)}; write the mapping "
            "by hand with a `time:` block.",
            source=source,
            available=list(frame.columns),
        )
    time: dict[str, Any] = {"column": time_column}
    values = frame[time_column]
    if values.dtype.is_numeric() or (
        values.dtype == pl.String
        and values.drop_nulls().head(50).str.contains(r"^\s*-?\d+(\.\d+)?\s*$").all()
        and guess_time_format(values) is None
    ):
        unit = detect_epoch_unit(values)
        time["unit"] = unit
        median = float(values.cast(pl.Float64, strict=False).median())  # type: ignore[arg-type]
        notes["time.unit"] = f"guessed from magnitude (median {median:.3g} -> {unit})"
    elif values.dtype == pl.String:
        fmt = guess_time_format(values)
        if fmt is None:
            notes["time.column"] = "no known format parsed this column: set time.format"
        else:
            time["format"] = fmt
            notes["time.format"] = "first common format that parsed every sampled value"
    if not isinstance(values.dtype, pl.Datetime) or values.dtype.time_zone is None:
        notes["time.timezone"] = "applied to naive times only; set the source's zone"

    schema_name = schema or _guess_schema(find, frame, time_column)
    target = get_schema(schema_name)
    columns: dict[str, str] = {}
    used = {time_column}
    for col in target.columns:
        if col.name in (target.ts_column,) or col.name in columns:
            continue
        found = find(col.name)
        if col.name == "seq" and found is not None and frame[found].is_duplicated().any():
            notes["seq"] = f"{found!r} repeats within an update, so seq is the row order"
            found = None
        if found is not None and found not in used:
            columns[col.name] = found
            used.add(found)
    extra: dict[str, Any] = {}
    if "side" in target.column_names and "side" not in columns:
        maker = next((by_name[n] for n in _BUYER_MAKER if n in by_name), None)
        if maker is not None and schema_name == "trades":
            columns["side"] = maker
            extra["value_maps"] = {"side": {"true": "sell", "false": "buy"}}
            notes["value_maps"] = "buyer is maker -> the aggressor sold"
    if schema_name == "bars" and "ts_end" not in columns:
        _positional_bars(frame, columns, used)
        interval = _guess_interval(frame, time_column, time)
        if interval is not None:
            time["interval"] = interval
            notes["time.interval"] = "median spacing of the sampled bars"
        notes["time.label"] = "open: stamps are bar starts; close: stamps are bar ends"
    data: dict[str, Any] = {"schema": schema_name, "columns": columns, "time": time, **extra}
    if "seq" in notes:
        data["seq"] = "row"
    if csv is not None:
        data["csv"] = csv.model_dump(exclude_none=True)
    mapping = Mapping.from_dict(data, source=source)
    mapping._notes.update(notes)
    return mapping


def _find_time_column(frame: pl.DataFrame, named: str | None) -> str | None:
    if named is not None:
        return named
    for column, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime | pl.Date):
            return column
    for column, dtype in frame.schema.items():
        values = frame[column].drop_nulls()
        if values.len() == 0:
            continue
        if dtype.is_integer() and float(values.cast(pl.Float64).min()) > 1e9:  # type: ignore[arg-type]
            return column
        if dtype == pl.String and guess_time_format(values) is not None:
            return column
    return None


def _guess_schema(find: Any, frame: pl.DataFrame, time_column: str) -> str:
    if find("bid_price") and find("ask_price"):
        return "quotes"
    if find("open") and find("high") and find("low") and find("close"):
        return "bars"
    if find("price") and find("size") and find("side") and find("seq"):
        return (
            "book_updates" if "update_type" in {_normalise(c) for c in frame.columns} else "trades"
        )
    if find("price") and find("size"):
        return "trades"
    numeric_after = [
        c
        for c in frame.columns[frame.columns.index(time_column) + 1 :]
        if frame.schema[c].is_numeric()
    ]
    if len(numeric_after) >= 4:
        return "bars"
    raise MappingError(
        f"cannot tell which canonical schema columns {', '.join(frame.columns)} hold; "
        "pass one (e.g. `--schema trades`).",
        available=list(frame.columns),
    )


def _positional_bars(frame: pl.DataFrame, columns: dict[str, str], used: set[str]) -> None:
    """Fill open/high/low/close/volume from the numeric columns after the time column."""
    if all(k in columns for k in ("open", "high", "low", "close")):
        return
    numeric = [c for c in frame.columns if c not in used and frame.schema[c].is_numeric()]
    for name, column in zip(("open", "high", "low", "close", "volume"), numeric, strict=False):
        if name not in columns:
            columns[name] = column
            used.add(column)


def _guess_interval(frame: pl.DataFrame, column: str, time: dict[str, Any]) -> str | None:
    spec = TimeSpec.model_validate(time)
    try:
        ts = frame.select(_time_expr(frame, column, spec).dt.epoch("s").alias("t"))["t"]
    except pl.exceptions.PolarsError:
        return None
    gaps = ts.drop_nulls().diff().drop_nulls()
    gaps = gaps.filter(gaps > 0)
    if gaps.len() == 0:
        return None
    seconds = int(gaps.min())  # type: ignore[arg-type]
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
