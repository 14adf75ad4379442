"""Row coercion: applying a :class:`~ticklake.ingest.mapping.model.Mapping` to a frame.

Casts source columns to the canonical types, parses event times (epoch numbers are
UTC; strings are read with ``format`` or polars' inference, naive ones in
``timezone``; a local time that does not exist or is ambiguous is rejected), translates
value maps, descales prices and checks required values. Rows that do not parse go to
``Batch.rejected`` with their source row number, raw text and a reason naming the
column.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

from ticklake.errors import MappingError
from ticklake.ingest.batch import Batch
from ticklake.ingest.mapping.model import (
    UNIT_NANOSECONDS,
    Mapping,
    TimeSpec,
    _side_map,
    detect_epoch_unit,
    interval_to_polars,
)
from ticklake.schemas import TIMESTAMP, DatasetSchema, get_schema

#: Price-like columns of each schema: the default target of ``price_scale``.
_PRICE_WORDS = ("price", "open", "high", "low", "close", "vwap", "strike")


def to_polars(frame: Any) -> pl.DataFrame:
    """Return ``frame`` (Polars, pandas or Arrow) as a Polars DataFrame."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if isinstance(frame, pa.Table | pa.RecordBatch):
        out = pl.from_arrow(frame)
        assert isinstance(out, pl.DataFrame)
        return out
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(frame, pd.DataFrame):
        return pl.from_pandas(frame)
    raise TypeError(f"cannot ingest a {type(frame).__name__}; pass a Polars, pandas or Arrow table")


def _columns_shown(frame: pl.DataFrame, limit: int = 20) -> str:
    names = [name if len(name) <= 40 else name[:37] + "..." for name in frame.columns[:limit]]
    more = len(frame.columns) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _missing_error(
    mapping_key: str, column: str, frame: pl.DataFrame, source: str, preset: str | None = None
) -> MappingError:
    if preset is not None:
        # A built-in format: the user wrote no mapping, the file is not what it expects.
        return MappingError(
            f"{source}: format {preset!r} needs a column {column!r}, which the file does not "
            f"have (its columns: {_columns_shown(frame)}). Check that the file is a {preset} "
            "export, or pick the format that matches it (`ticklake ingest --list-formats`).",
            source=source,
            key=mapping_key,
            column=column,
            available=list(frame.columns),
        )
    return MappingError(
        f"{source}: mapping key {mapping_key!r} names source column {column!r}, which the "
        f"source does not have. Its columns are: {_columns_shown(frame)}. Fix the mapping "
        "(or propose one with `ticklake ingest csv FILE --infer --schema SCHEMA`).",
        source=source,
        key=mapping_key,
        column=column,
        available=list(frame.columns),
    )


def _check_sources(
    frame: pl.DataFrame, mapping: Mapping, schema: DatasetSchema, source: str
) -> None:
    refs: list[tuple[str, str]] = [(f"columns.{k}", v) for k, v in mapping.columns.items()]
    time = mapping.time
    if time.column is not None:
        refs.append(("time.column", time.column))
    else:
        refs += [("time.date_column", str(time.date_column))]
        refs += [("time.time_column", str(time.time_column))]
    for key in ("seq", "trade_id"):
        policy = getattr(mapping, key)
        if policy not in (None, "row"):
            refs.append((key, policy))
    for key, column in refs:
        if column not in frame.columns:
            raise _missing_error(key, column, frame, source, mapping._preset)
    provided = {schema.ts_column, *mapping.columns, *mapping.constants}
    provided |= {"seq", "trade_id"}  # default to the source row when not mapped
    if time.interval is not None:
        provided.add("ts_end")
    missing = [c.name for c in schema.columns if not c.nullable and c.name not in provided]
    if missing:
        raise MappingError(
            f"{source}: the mapping gives no source for required column(s) {missing} of "
            f"schema {schema.name!r}. Map them under `columns:` (source columns: "
            f"{', '.join(frame.columns)}) or set them under `constants:`"
            + (" (or pass --instrument)" if "instrument" in missing else "")
            + (" (bars: or set time.interval)" if "ts_end" in missing else "")
            + ".",
            source=source,
            columns=missing,
            available=list(frame.columns),
        )


def _time_expr(
    frame: pl.DataFrame, column: str, time: TimeSpec, raw: pl.Expr | None = None
) -> pl.Expr:
    """Parse one time column to a tz-aware datetime (local zone for naive sources)."""
    expr = pl.col(column) if raw is None else raw
    dtype = frame.schema[column] if raw is None else pl.String()
    unit: str | None = time.unit
    if unit == "auto" or (unit is None and dtype.is_numeric()):
        unit = detect_epoch_unit(frame[column]) if raw is None else None
    if isinstance(dtype, pl.Datetime):
        parsed = expr.dt.cast_time_unit("ns")
        if dtype.time_zone is not None:
            return parsed
        return _localize(parsed, time.timezone)
    if isinstance(dtype, pl.Date):
        return _localize(expr.cast(pl.Datetime("ns")), time.timezone)
    if unit is not None:
        factor = UNIT_NANOSECONDS[unit]
        if dtype.is_integer():
            nanos = expr.cast(pl.Int64) * factor
        else:
            text = expr.cast(pl.String).str.strip_chars()
            # Integers first: float64 cannot hold ns epochs exactly.
            as_float = (text.cast(pl.Float64, strict=False) * factor).round(0)
            nanos = pl.coalesce(
                text.cast(pl.Int64, strict=False) * factor, as_float.cast(pl.Int64, strict=False)
            )
        return nanos.cast(pl.Datetime("ns", "UTC"))
    text = expr.cast(pl.String).str.strip_chars()
    if time.format is not None:
        parsed = text.str.strptime(pl.Datetime("ns"), time.format, strict=False)
        if time.format.endswith("Z"):
            return _localize(parsed, "UTC")
        if "%z" in time.format or "%:z" in time.format:
            return parsed.dt.convert_time_zone("UTC")
        return _localize(parsed, time.timezone)
    return _localize(
        text.str.to_datetime(time_unit="ns", strict=False, ambiguous="null"), time.timezone
    )


def _localize(expr: pl.Expr, timezone: str) -> pl.Expr:
    # Polars keeps an aware result aware; only naive datetimes get the source zone.
    return expr.dt.replace_time_zone(timezone, ambiguous="null", non_existent="null")


def _number_expr(src: pl.Expr, dtype: pl.DataType, target: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        src = src.str.strip_chars()
    if target.is_integer() and not dtype.is_integer():
        as_float = src.cast(pl.Float64, strict=False)
        integral = pl.when(as_float == as_float.floor()).then(as_float)
        return pl.coalesce(src.cast(target, strict=False), integral.cast(target, strict=False))
    return src.cast(target, strict=False)


def _bool_expr(src: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean:
        return src
    words = {"true": True, "t": True, "1": True, "yes": True, "y": True}
    words |= {"false": False, "f": False, "0": False, "no": False, "n": False}
    text = src.cast(pl.String).str.strip_chars().str.to_lowercase()
    return text.replace_strict(words, default=None, return_dtype=pl.Boolean)


def _shown(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String, strict=False).fill_null("")


def apply_mapping(frame: Any, mapping: Mapping, *, source: str, first_row: int = 1) -> Batch:
    """Map source rows to canonical rows; rows that do not parse go to ``Batch.rejected``.

    ``first_row`` is the 1-based source row number of ``frame``'s first row; rejected rows
    carry ``first_row + index``. Raise :class:`MappingError` when the mapping names a
    source column the frame lacks or leaves a required column without a source.
    """

    frame = to_polars(frame)
    schema = get_schema(mapping.dataset_schema)
    _check_sources(frame, mapping, schema, source)
    time = mapping.time
    value_maps: dict[str, dict[str, Any]] = {
        name: {str(k).strip().lower(): v for k, v in table.items()}
        for name, table in mapping.value_maps.items()
    }
    if "side" in schema.column_names:
        value_maps.setdefault("side", _side_map(schema.name))
    price_columns = set(
        mapping.price_columns
        if mapping.price_columns is not None
        else [c.name for c in schema.columns if c.type == "float64" and _is_price(c.name)]
    )
    row_number = pl.int_range(pl.len(), dtype=pl.Int64) + first_row

    values: dict[str, pl.Expr] = {}
    reasons: list[pl.Expr] = []

    def check(name: str, value: pl.Expr, raw: pl.Expr | None, described: str) -> None:
        """Reject a row whose source value is missing (required) or does not parse."""
        required = not schema.column(name).nullable
        if raw is None:
            if required:
                reasons.append(pl.when(value.is_null()).then(pl.lit(f"missing {name}")))
            return
        text = raw.cast(pl.String, strict=False).fill_null("")
        if required:
            reasons.append(
                pl.when(raw.is_null()).then(pl.lit(f"missing {name}: {described} is empty"))
            )
        reasons.append(
            pl.when(raw.is_not_null() & value.is_null()).then(
                pl.format(f"cannot read {name} from {described}: '{{}}'", text)
            )
        )

    # Event time.
    if time.column is not None:
        ts_raw = pl.col(time.column)
        ts_local = _time_expr(frame, time.column, time)
        described = f"source column {time.column!r}"
    else:
        ts_raw = pl.concat_str(
            [pl.col(str(time.date_column)), pl.col(str(time.time_column))], separator=" "
        )
        ts_local = _time_expr(frame, str(time.date_column), time, raw=ts_raw)
        described = f"source columns {time.date_column!r} + {time.time_column!r}"
    if time.interval is not None and schema.name == "bars" and "ts_end" not in mapping.columns:
        step = interval_to_polars(time.interval)
        if time.label == "close":
            values["ts_end"] = ts_local
            ts_local = ts_local.dt.offset_by(f"-{step}")
        else:
            values["ts_end"] = ts_local.dt.offset_by(step)
    values[schema.ts_column] = ts_local
    check(schema.ts_column, ts_local, ts_raw, described)

    for name, column in mapping.columns.items():
        target = schema.column(name)
        src = pl.col(column)
        dtype = frame.schema[column]
        if name in value_maps:
            # Translate source codes first (unknown codes become null and are rejected).
            text = src.cast(pl.String).str.strip_chars().str.to_lowercase()
            table = value_maps[name]
            out_type = pl.String if all(isinstance(v, str) for v in table.values()) else None
            src = text.replace_strict(table, default=None, return_dtype=out_type)
            dtype = pl.String() if out_type is not None else _value_dtype(table)
        if target.type == TIMESTAMP:
            value = _time_expr(frame, column, time)
        elif target.type == "bool":
            value = _bool_expr(src, dtype)
        elif target.type == "string":
            value = src.cast(pl.String)
        else:
            value = _number_expr(src, dtype, target.polars_type)
            if mapping.price_scale is not None and name in price_columns:
                value = _descale(value, mapping.price_scale)
        values[name] = value
        check(name, value, pl.col(column), f"source column {column!r}")

    for name, constant in mapping.constants.items():
        values[name] = pl.lit(constant)
    for name in ("seq", "trade_id"):
        if name not in schema.column_names or name in mapping.columns:
            continue
        policy = getattr(mapping, name)
        if policy is None and name in mapping.constants:
            continue
        if policy in (None, "row"):
            values[name] = row_number if name == "seq" else row_number.cast(pl.String)
        else:
            src = pl.col(policy)
            target_type = schema.column(name).polars_type
            if target_type == pl.String:
                values[name] = src.cast(pl.String)
            else:
                values[name] = _number_expr(src, frame.schema[policy], target_type)
            check(name, values[name], src, f"source column {policy!r}")
    for name in schema.column_names:
        if name in values and schema.column(name).type == TIMESTAMP:
            values[name] = values[name].dt.convert_time_zone("UTC")
    if "ts_end" in values and time.interval is not None and "ts_end" not in mapping.columns:
        check("ts_end", values["ts_end"], None, "")

    reason = pl.coalesce(reasons) if reasons else pl.lit(None, dtype=pl.String)
    # Evaluate on the whole frame, then filter: row numbers must count every source row.
    mapped = frame.select(
        *[expr.alias(name) for name, expr in values.items()],
        reason.alias("__reason"),
        row_number.alias("__source_row"),
    )
    failed = mapped["__reason"].is_not_null()
    shown = [c for c in frame.columns if _renderable(frame.schema[c])]
    raw = frame.filter(failed).select(
        pl.concat_str([_shown(c) for c in shown], separator=mapping.csv.separator).alias("raw")
        if shown
        else pl.lit("").alias("raw")
    )
    bad = mapped.filter(failed)
    rejected = pl.DataFrame(
        {"source_row": bad["__source_row"], "raw": raw["raw"], "reason": bad["__reason"]}
    )
    out = mapped.filter(~failed).drop("__reason", "__source_row")
    return Batch(frame=schema.conform(out, source=source), rejected=rejected)


def _descale(value: pl.Expr, scale: float) -> pl.Expr:
    """Divide by ``scale`` element by element, correctly rounded.

    Polars turns division by a scalar into multiplication by its reciprocal, which
    gives 185.70000000000002 for 1857000 / 10000; numpy divides exactly.
    """
    divided = value.fill_null(0.0).map_batches(
        lambda s: pl.Series(s.name, s.to_numpy() / scale), return_dtype=pl.Float64
    )
    return pl.when(value.is_null()).then(None).otherwise(divided)


def _value_dtype(table: dict[str, Any]) -> pl.DataType:
    kinds = {type(v) for v in table.values()}
    if kinds == {bool}:
        return pl.Boolean()
    if kinds <= {int}:
        return pl.Int64()
    return pl.Float64()


def _renderable(dtype: pl.DataType) -> bool:
    return not isinstance(dtype, pl.List | pl.Struct | pl.Array | pl.Object)


def _is_price(name: str) -> bool:
    return any(word in name for word in _PRICE_WORDS)


def resolve_auto_unit(mapping: Mapping, frame: pl.DataFrame) -> Mapping:
    """Return ``mapping`` with ``time.unit: auto`` fixed from ``frame`` (once per file).

    Readers call this on a file's first chunk so every chunk of one file uses the same
    unit, even a chunk whose values are all garbage.
    """
    time = mapping.time
    if time.unit != "auto" or time.column is None or time.column not in frame.columns:
        return mapping
    unit = detect_epoch_unit(frame[time.column])
    resolved = mapping.model_copy(update={"time": time.model_copy(update={"unit": unit})})
    resolved._notes.update(mapping._notes)
    return resolved
