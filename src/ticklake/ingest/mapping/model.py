"""The mapping model: :class:`Mapping` and its ``time`` / ``csv`` blocks, as data.

Validation (unknown keys and columns are errors naming the valid ones), loading from
YAML (:meth:`Mapping.from_yaml`) and rendering as commented YAML for review
(:func:`render_yaml`), plus the small time helpers the model itself needs.
"""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ticklake.errors import MappingError, SchemaMismatchError
from ticklake.schemas import get_schema

EpochUnit = Literal["s", "ms", "us", "ns", "auto"]

#: Nanoseconds per epoch unit.
UNIT_NANOSECONDS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}

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
    # The reader whose built-in preset this is (None: the user's mapping). Errors about a
    # preset name the format and the file, never "the mapping" the user did not write.
    _preset: str | None = PrivateAttr(default=None)

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
    def from_dict(
        cls, data: dict[str, Any], *, source: str = "mapping", preset: str | None = None
    ) -> Mapping:
        """Validate a mapping from plain data, raising :class:`MappingError` on problems.

        ``preset`` names the reader whose built-in mapping this is (see ``_preset``).
        """
        try:
            mapping = cls.model_validate(data)
        except ValidationError as exc:
            raise _mapping_error(exc, source) from None
        mapping._preset = preset
        return mapping


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


def _side_map(schema_name: str) -> dict[str, str]:
    return dict(_TRADE_SIDES) if schema_name == "trades" else dict(_BOOK_SIDES)


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
