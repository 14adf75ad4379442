"""Ingest mappings: how a source table's columns become a canonical schema.

A :class:`Mapping` is data, written by hand or proposed by :func:`infer_mapping`
(``ticklake ingest FILE --infer``) and edited::

    schema: trades
    columns: {price: px, size: qty, trade_id: id, side: taker_side}
    time: {column: time, unit: ms}
    constants: {instrument: BTCUSDT, venue: binance}

:func:`apply_mapping` turns one frame of source rows into canonical rows plus rejected
rows (bad time, non-numeric price, missing required value), each with its source row
number, the raw row as text and a reason naming the column.

Time rules: epoch numbers are UTC (``unit`` s/ms/us/ns, or ``auto`` to pick the unit by
magnitude); strings are parsed with ``format`` (or polars' inference) and, when naive,
read in ``timezone`` (default UTC). A local time that does not exist or is ambiguous
(DST change) is rejected, never guessed. Bars get ``ts_end`` from a mapped column or
from ``interval`` and ``label`` (``open``: the stamp is the bar's start, ``close``: its
end).

Examples:
    >>> import polars as pl
    >>> m = Mapping.model_validate({
    ...     "schema": "trades", "columns": {"price": "px", "size": "qty"},
    ...     "time": {"column": "t", "unit": "ms"}, "constants": {"instrument": "X"}})
    >>> src = pl.DataFrame({"t": [1_600_000_000_000, None], "px": ["1.5", "2"], "qty": [1, 2]})
    >>> batch = apply_mapping(src, m, source="demo", first_row=1)
    >>> batch.frame["price"].to_list(), batch.rejected["reason"].to_list()
    ([1.5], ["missing ts: source column 't' is empty"])
"""

from __future__ import annotations

import io
import re
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ticklake.errors import MappingError, SchemaMismatchError
from ticklake.schemas import TIMESTAMP, DatasetSchema, get_schema

if TYPE_CHECKING:
    from ticklake.ingest.readers.base import Batch

# readers.base is imported inside functions: importing it loads every reader module,
# and the generic readers import this module.

EpochUnit = Literal["s", "ms", "us", "ns", "auto"]

#: Nanoseconds per epoch unit.
UNIT_NANOSECONDS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

#: Price-like columns of each schema: the default target of ``price_scale``.
_PRICE_WORDS = ("price", "open", "high", "low", "close", "vwap", "strike")

_TRADE_SIDES = {"buy": "buy", "b": "buy", "bought": "buy", "sell": "sell", "s": "sell"}
_TRADE_SIDES |= {"sold": "sell"}
_BOOK_SIDES = {"bid": "bid", "b": "bid", "bids": "bid", "buy": "bid"}
_BOOK_SIDES |= {"ask": "ask", "a": "ask", "asks": "ask", "offer": "ask", "sell": "ask", "s": "ask"}

_INTERVAL_RE = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|sec|m|min|h|hour|d|day)s?\s*$")
_INTERVAL_POLARS = {"sec": "s", "min": "m", "hour": "h", "day": "d"}


class TimeSpec(BaseModel):
    """Where the event time comes from and how to read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str | None = None
    unit: EpochUnit | None = None
    format: str | None = None
    date_column: str | None = None
    time_column: str | None = None
    timezone: str = "UTC"
    interval: str | None = None
    label: Literal["open", "close"] = "open"

    @model_validator(mode="after")
    def _check(self) -> TimeSpec:
        combined = self.date_column is not None or self.time_column is not None
        if combined and (self.date_column is None or self.time_column is None):
            raise ValueError("time: set both date_column and time_column, or neither")
        if combined == (self.column is not None):
            raise ValueError("time: set exactly one of `column` or `date_column` + `time_column`")
        if self.unit is not None and self.format is not None:
            raise ValueError("time: set `unit` (epoch numbers) or `format` (strings), not both")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"time.timezone {self.timezone!r} is not an IANA time zone "
                "(e.g. UTC, America/New_York, Asia/Kolkata)"
            ) from exc
        if self.interval is not None:
            interval_to_polars(self.interval)
        return self

    def source_columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        return [str(self.date_column), str(self.time_column)]


class CsvSpec(BaseModel):
    """How to split a delimited text file into columns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    has_header: bool = True
    separator: str = ","
    column_names: tuple[str, ...] | None = None
    skip_rows: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> CsvSpec:
        if len(self.separator) != 1:
            raise ValueError(f"csv.separator must be one character, got {self.separator!r}")
        return self


class Mapping(BaseModel):
    """A source → canonical mapping; ``Mapping.from_yaml(path)`` loads one."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    dataset_schema: str = Field(alias="schema")
    columns: dict[str, str] = Field(default_factory=dict)
    time: TimeSpec
    price_scale: float | None = Field(default=None, gt=0)
    price_columns: tuple[str, ...] | None = None
    constants: dict[str, str | int | float | bool] = Field(default_factory=dict)
    seq: str | None = None
    trade_id: str | None = None
    value_maps: dict[str, dict[str, str | int | float | bool]] = Field(default_factory=dict)
    csv: CsvSpec = Field(default_factory=CsvSpec)

    # Why each inferred value was chosen, shown as comments by render_yaml.
    _notes: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        try:
            schema = get_schema(self.dataset_schema)
        except SchemaMismatchError as exc:
            raise ValueError(str(exc)) from None
        names = set(schema.column_names)
        for key, cols in (
            ("columns", self.columns),
            ("constants", self.constants),
            ("price_columns", self.price_columns or ()),
        ):
            unknown = sorted(c for c in cols if c not in names)
            if unknown:
                raise ValueError(
                    f"{key}: {unknown} are not columns of schema {schema.name!r} "
                    f"({', '.join(schema.column_names)})"
                )
        if schema.ts_column in self.columns:
            raise ValueError(f"columns.{schema.ts_column}: set the event time in the time block")
        for key in ("seq", "trade_id"):
            if getattr(self, key) is not None and key not in names:
                raise ValueError(f"{key}: schema {schema.name!r} has no {key!r} column")
        unmapped = sorted(c for c in self.value_maps if c not in self.columns)
        if unmapped:
            raise ValueError(f"value_maps: {unmapped} are not mapped under `columns`")
        if "side" in self.value_maps:
            allowed = set(_side_map(schema.name).values())
            bad = sorted(str(v) for v in self.value_maps["side"].values() if v not in allowed)
            if bad:
                raise ValueError(f"value_maps.side: {bad} must be one of {sorted(allowed)}")
        return self

    @property
    def schema_name(self) -> str:
        return self.dataset_schema

    @classmethod
    def from_yaml(cls, path: str | Path) -> Mapping:
        """Load a mapping from a YAML file (``yaml.safe_load``; unknown keys are errors)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise MappingError(f"{path}: cannot read mapping ({exc})", path=str(path)) from exc
        except yaml.YAMLError as exc:
            raise MappingError(f"{path}: not valid YAML ({exc})", path=str(path)) from exc
        if not isinstance(data, dict):
            raise MappingError(
                f"{path}: a mapping file must be a YAML mapping with keys "
                f"{', '.join(_valid_keys(cls))}",
                path=str(path),
            )
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "mapping") -> Mapping:
        """Validate a mapping from plain data, raising :class:`MappingError` on problems."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _mapping_error(exc, source) from None


def _valid_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _mapping_error(exc: ValidationError, source: str) -> MappingError:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            model: type[BaseModel] = Mapping
            sub: dict[str, type[BaseModel]] = {"time": TimeSpec, "csv": CsvSpec}
            if len(err["loc"]) > 1 and err["loc"][0] in sub:
                model = sub[str(err["loc"][0])]
            problems.append(f"unknown key {loc!r}; valid keys are {', '.join(_valid_keys(model))}")
        else:
            problems.append(f"{loc or 'mapping'}: {err['msg']}")
    return MappingError(f"{source}: " + "; ".join(problems), source=source, problems=problems)


def interval_to_polars(interval: str) -> str:
    """Return a polars duration string for an interval such as ``1min``, ``5m``, ``1h``, ``1d``.

    Examples:
        >>> interval_to_polars("1min"), interval_to_polars("1hour"), interval_to_polars("500ms")
        ('1m', '1h', '500ms')
    """
    match = _INTERVAL_RE.match(interval)
    if match is None:
        raise ValueError(
            f"interval {interval!r} is not understood; write e.g. 1s, 1min, 5m, 1h, 1d"
        )
    count, unit = match.groups()
    return f"{count}{_INTERVAL_POLARS.get(unit, unit)}"


def detect_epoch_unit(values: pl.Series) -> str:
    """Pick the epoch unit of numbers by their magnitude (around 1e9 s, 1e12 ms, 1e15 us, 1e18 ns).

    Examples:
        >>> detect_epoch_unit(pl.Series([1_637_971_200_000]))
        'ms'
        >>> detect_epoch_unit(pl.Series([1.7e15]))
        'us'
    """
    numbers = values.cast(pl.Float64, strict=False).drop_nulls().abs()
    if numbers.len() == 0:
        return "ms"
    magnitude = float(numbers.median())  # type: ignore[arg-type]
    # Boundaries sit halfway (in decades) between the units, valid for years ~1973..5000.
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    if magnitude < 1e17:
        return "us"
    return "ns"


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


# --------------------------------------------------------------------------- apply


def _side_map(schema_name: str) -> dict[str, str]:
    return dict(_TRADE_SIDES) if schema_name == "trades" else dict(_BOOK_SIDES)


def _missing_error(mapping_key: str, column: str, frame: pl.DataFrame, source: str) -> MappingError:
    return MappingError(
        f"{source}: mapping key {mapping_key!r} names source column {column!r}, which the "
        f"source does not have. Its columns are: {', '.join(frame.columns)}. "
        "Fix the mapping (or run `ticklake ingest FILE --infer` to propose one).",
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
            raise _missing_error(key, column, frame, source)
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
    from ticklake.ingest.readers.base import Batch

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


# --------------------------------------------------------------------------- inference

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
    from ticklake.ingest.readers.base import iter_text_chunks, open_source

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


# --------------------------------------------------------------------------- YAML

_COMMENTS = {
    "schema": "canonical schema (ticklake schemas: trades, quotes, bars, ...)",
    "columns": "canonical column: source column",
    "time": "event time",
    "time.column": "source column holding the time",
    "time.unit": "epoch numbers: s | ms | us | ns | auto (by magnitude)",
    "time.format": "strftime format of time strings",
    "time.timezone": "IANA zone of naive times (epoch numbers are UTC)",
    "time.interval": "bar length; with label it gives ts_end",
    "time.label": "open: stamps are bar starts; close: stamps are bar ends",
    "price_scale": "divide price columns by this (e.g. 10000)",
    "constants": "canonical column: fixed value for every row",
    "seq": "source column, or `row` for the source row order",
    "trade_id": "source column, or `row` for the source row number",
    "value_maps": "canonical column: {source value: canonical value}",
    "csv": "how to split the text file",
}


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def render_yaml(mapping: Mapping) -> str:
    """Render ``mapping`` as commented YAML for a user to review and edit."""
    notes = mapping._notes
    schema = get_schema(mapping.dataset_schema)
    data = mapping.model_dump(by_alias=True, exclude_none=True)
    if schema.name != "bars":
        data["time"].pop("label", None)
    lines = [
        "# ticklake ingest mapping. Check every line, then ingest with --mapping FILE.",
        f"# Schema {schema.name!r} columns: {', '.join(schema.column_names)}",
    ]

    def comment(key: str) -> str:
        text = notes.get(key) or _COMMENTS.get(key)
        return f"  # {text}" if text else ""

    for key, value in data.items():
        if key == "csv" and value == CsvSpec().model_dump(exclude_none=True):
            continue
        if key == "constants" and not value:
            lines.append("# constants: {instrument: SYMBOL, venue: VENUE}  # fixed values")
            continue
        if isinstance(value, dict):
            lines.append(f"{key}:{comment(key)}")
            for sub, item in value.items():
                lines.append(f"  {_scalar(sub)}: {_scalar(item)}{comment(f'{key}.{sub}')}")
            if key == "columns":
                lines += [
                    f"  # {c.name}: ?  # required: map a source column or set constants.{c.name}"
                    for c in schema.columns
                    if not c.nullable
                    and c.name not in value
                    and c.name not in (schema.ts_column, "seq", "trade_id")
                    and c.name not in mapping.constants
                    and not (c.name == "ts_end" and mapping.time.interval)
                ]
            if not value:
                lines[-1] = f"{key}: {{}}{comment(key)}"
        else:
            lines.append(f"{key}: {_scalar(value)}{comment(key)}")
    return "\n".join(lines) + "\n"


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
