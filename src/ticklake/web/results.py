"""Paged, sorted, filtered views of a run's Parquet files (Polars; no SQL from requests).

Columns come from the file's own schema and operators from :data:`OPERATORS`; a filter
value is parsed to the column's type before it reaches an expression, so request text
never becomes code. The file is read once and kept (keyed by path, size and mtime), and
the row numbers of the last few filtered + sorted views are kept too: paging a 1 M-row
result is then a gather of 100 rows (see ``benchmarks/bench_web_paging.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.errors import ConfigError
from ticklake.web.errors import ResourceNotFoundError, json_safe
from ticklake.web.local_time import local_column_entries, with_local_columns

RUN_TABLES = {
    "trades": "trades.parquet",
    "daily": "daily.parquet",
    "attempts": "attempts.parquet",
    "samples": "samples.parquet",
    "variants": "variants.parquet",
}
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "contains", "in")
FACET_COLUMNS = (
    "variant",
    "leg",
    "side",
    "reason",
    "opt_type",
    "status",
    "skip_reason",
    "underlying_source",
)
MAX_PAGE_ROWS = 1000
MAX_FACET_VALUES = 50


@dataclass(frozen=True)
class Filter:
    """``column op value``, parsed from ``column:op:value`` (value may contain ':')."""

    column: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Filter:
        """Parse ``column:op:value``.

        Examples:
            >>> Filter.parse("ts:ge:2024-01-08T09:20:00")
            Filter(column='ts', op='ge', value='2024-01-08T09:20:00')
        """
        parts = text.split(":", 2)
        if len(parts) != 3 or not parts[0] or parts[1] not in OPERATORS:
            raise ConfigError(
                f"filter {text!r} must look like column:op:value with op one of "
                f"{', '.join(OPERATORS)} (e.g. leg:eq:ce, net_pnl_paise:lt:0)",
                filter=text,
            )
        return cls(*parts)


class _Cache:
    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, pl.DataFrame] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any) -> pl.DataFrame | None:
        with self.lock:
            frame = self.items.get(key)
            if frame is not None:
                self.items.move_to_end(key)
            return frame

    def put(self, key: Any, frame: pl.DataFrame) -> None:
        with self.lock:
            self.items[key] = frame
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_FILES = _Cache(4)
_VIEWS = _Cache(8)


def read_table(path: Path) -> pl.DataFrame:
    """The whole Parquet file, cached while the file is unchanged."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ResourceNotFoundError(
            f"{path.name} does not exist (yet): run files are written when the run finishes",
            path=path.name,
        ) from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    frame = _FILES.get(key)
    if frame is None:
        frame = pl.read_parquet(path)
        _FILES.put(key, frame)
    return frame


def _typed_value(dtype: pl.DataType, text: str, column: str) -> Any:
    try:
        if dtype.is_integer():
            return int(text)
        if dtype.is_float():
            return float(text)
        if dtype == pl.Boolean:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if dtype == pl.Date:
            return date.fromisoformat(text)
        if isinstance(dtype, pl.Datetime):
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if dtype == pl.String:
            return text
    except ValueError:
        raise ConfigError(
            f"filter value {text!r} is not a valid {dtype} for column {column!r}", column=column
        ) from None
    raise ConfigError(f"column {column!r} ({dtype}) cannot be filtered", column=column)


def filter_expression(schema: pl.Schema, item: Filter) -> pl.Expr:
    """A Polars expression for one whitelisted filter."""
    if item.column not in schema:
        raise ConfigError(
            f"unknown column {item.column!r}; columns: {', '.join(schema.names())}",
            column=item.column,
        )
    dtype = schema[item.column]
    column = pl.col(item.column)
    if item.op == "contains":
        if dtype != pl.String:
            raise ConfigError(f"'contains' needs a text column; {item.column!r} is {dtype}")
        return column.str.contains(item.value, literal=True)
    if item.op == "in":
        values = [_typed_value(dtype, v, item.column) for v in item.value.split(",") if v != ""]
        return column.is_in(values)
    value = _typed_value(dtype, item.value, item.column)
    literal = pl.lit(value, dtype=dtype) if not isinstance(dtype, pl.Datetime) else pl.lit(value)
    return {
        "eq": column == literal,
        "ne": column != literal,
        "lt": column < literal,
        "le": column <= literal,
        "gt": column > literal,
        "ge": column >= literal,
    }[item.op]


def table_view(
    frame: pl.DataFrame,
    *,
    key: Any,
    sort: str | None = None,
    descending: bool = False,
    filters: tuple[Filter, ...] = (),
) -> pl.Series | None:
    """Row numbers of the filtered, sorted view (``None``: every row in file order).

    Only the row numbers are sorted and cached, not the rows: a new sort of a 1 M-row
    table costs one ``arg_sort`` of one column.
    """
    if sort is None and not filters:
        return None
    cache_key = (key, sort, descending, filters)
    cached = _VIEWS.get(cache_key)
    if cached is not None:
        return cached.to_series()
    schema = frame.schema
    if sort is not None and sort not in schema:
        raise ConfigError(
            f"cannot sort by unknown column {sort!r}; columns: {', '.join(schema.names())}",
            column=sort,
        )
    if filters:
        mask = pl.all_horizontal([filter_expression(schema, item) for item in filters])
        rows = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).filter(mask).alias("row"))
        index = rows.to_series()
    else:
        index = pl.int_range(frame.height, dtype=pl.UInt32, eager=True).alias("row")
    if sort is not None:
        values = frame.get_column(sort).gather(index) if filters else frame.get_column(sort)
        order = values.arg_sort(descending=descending, nulls_last=True)
        index = index.gather(order)
    _VIEWS.put(cache_key, index.to_frame())
    return index


def facets(frame: pl.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Counts of the values of low-cardinality text columns (variant, leg, reason, ...)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name in FACET_COLUMNS:
        if name not in frame.columns:
            continue
        counts = (
            frame.group_by(name)
            .len()
            .sort(["len", name], descending=[True, False], nulls_last=True)
            .head(MAX_FACET_VALUES)
        )
        out[name] = [
            {"value": json_safe(row[name]), "count": row["len"]} for row in counts.to_dicts()
        ]
    return out


def page_of(
    path: Path,
    *,
    offset: int = 0,
    limit: int = 100,
    sort: str | None = None,
    descending: bool = False,
    filters: tuple[Filter, ...] = (),
    with_facets: bool = False,
    zone: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One page of a Parquet file: columns with types, rows, the filtered total, facets.

    With ``zone`` (:func:`ticklake.web.local_time.zone_fields`) each row also has
    ``<column>_local`` for every UTC instant column (the column entry names it as
    ``local``) and the page names the zone; the UTC fields stay as they are.
    """
    if not offset >= 0:
        raise ConfigError("offset must be 0 or more")
    if not 1 <= limit <= MAX_PAGE_ROWS:
        raise ConfigError(f"limit must be 1..{MAX_PAGE_ROWS}")
    frame = read_table(path)
    stat = path.stat()
    index = table_view(
        frame,
        key=(str(path), stat.st_size, stat.st_mtime_ns),
        sort=sort,
        descending=descending,
        filters=filters,
    )
    if index is None:
        rows, total = frame.slice(offset, limit), frame.height
    else:
        rows, total = frame[index.slice(offset, limit)], index.len()
    with_facets = with_facets and bool(frame.height)
    columns = [{"name": n, "type": str(t)} for n, t in frame.schema.items()]
    if zone is not None:
        columns = local_column_entries(columns, frame.schema)
        rows = with_local_columns(rows, zone["timezone"])
    return {
        **(zone or {}),
        "columns": columns,
        "rows": json_safe(rows.to_dicts()),
        "total": total,
        "unfiltered_total": frame.height,
        "offset": offset,
        "limit": limit,
        "sort": sort,
        "descending": descending,
        "facets": (facets(frame if index is None else frame[index]) if with_facets else {}),
    }
