"""Dataset schemas: columns, key, sort order and time column, declared once.

A :class:`DatasetSchema` is plain data. It renders as an Arrow schema (for Parquet) and a
Polars schema (for frames), has a stable fingerprint, serialises to JSON (so every
dataset in a lake records the exact schema it was written with) and conforms incoming
frames: columns are reordered and cast, missing nullable columns become null, a
missing required column or an unknown column is an error that names it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from ticklake.errors import SchemaMismatchError

#: Stored timestamps: UTC, int64 nanoseconds since the epoch.
TIMESTAMP = "timestamp[ns, UTC]"

_ARROW_TYPES: dict[str, pa.DataType] = {
    TIMESTAMP: pa.timestamp("ns", tz="UTC"),
    "date32": pa.date32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int8": pa.int8(),
    "uint64": pa.uint64(),
    "bool": pa.bool_(),
    "string": pa.large_string(),
}

_POLARS_TYPES: dict[str, pl.DataType] = {
    TIMESTAMP: pl.Datetime("ns", "UTC"),
    "date32": pl.Date(),
    "float64": pl.Float64(),
    "float32": pl.Float32(),
    "int64": pl.Int64(),
    "int32": pl.Int32(),
    "int8": pl.Int8(),
    "uint64": pl.UInt64(),
    "bool": pl.Boolean(),
    "string": pl.String(),
}


def type_names() -> list[str]:
    """List the column type names a schema may use."""
    return sorted(_ARROW_TYPES)


@dataclass(frozen=True)
class Column:
    """One column: name, logical type name, nullability and a one-line description."""

    name: str
    type: str
    nullable: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in _ARROW_TYPES:
            raise SchemaMismatchError(
                f"column {self.name!r} has unknown type {self.type!r}; "
                f"use one of {', '.join(type_names())}",
                column=self.name,
            )

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.type]

    @property
    def polars_type(self) -> pl.DataType:
        return _POLARS_TYPES[self.type]


@dataclass(frozen=True)
class DatasetSchema:
    """The shape of a dataset.

    ``key`` identifies a row (merges dedupe on it); ``sort`` is the physical order in
    each partition file; ``ts_column`` holds the UTC event time used for partitioning.

    Examples:
        >>> s = DatasetSchema(
        ...     name="ticks",
        ...     columns=(Column("ts", TIMESTAMP, False), Column("price", "float64")),
        ...     key=("ts",), sort=("ts",),
        ... )
        >>> s.column_names
        ('ts', 'price')
        >>> len(s.fingerprint())
        16
    """

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    sort: tuple[str, ...]
    ts_column: str = "ts"
    description: str = ""
    #: Rows per Parquet row group for this dataset; None = the lake's ``row_group_rows``.
    #: Not part of the fingerprint: it changes how a file is cut, not what it holds.
    row_group_rows: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = self.column_names
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise SchemaMismatchError(f"schema {self.name!r} repeats columns {dupes}")
        for role, cols in (("key", self.key), ("sort", self.sort), ("ts", (self.ts_column,))):
            missing = [c for c in cols if c not in names]
            if missing:
                raise SchemaMismatchError(
                    f"schema {self.name!r}: {role} column(s) {missing} are not columns "
                    f"of the schema ({', '.join(names)})"
                )
        if self.column(self.ts_column).type != TIMESTAMP:
            raise SchemaMismatchError(
                f"schema {self.name!r}: time column {self.ts_column!r} must be {TIMESTAMP}"
            )

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise SchemaMismatchError(
            f"schema {self.name!r} has no column {name!r}", column=name, schema=self.name
        )

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in self.columns])

    def polars_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.polars_type for c in self.columns})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [
                {
                    "name": c.name,
                    "type": c.type,
                    "nullable": c.nullable,
                    "description": c.description,
                }
                for c in self.columns
            ],
            "key": list(self.key),
            "sort": list(self.sort),
            "ts_column": self.ts_column,
            "description": self.description,
            **({"row_group_rows": self.row_group_rows} if self.row_group_rows else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetSchema:
        return cls(
            name=data["name"],
            columns=tuple(Column(**c) for c in data["columns"]),
            key=tuple(data["key"]),
            sort=tuple(data["sort"]),
            ts_column=data.get("ts_column", "ts"),
            description=data.get("description", ""),
            row_group_rows=data.get("row_group_rows"),
        )

    def fingerprint(self) -> str:
        """Hash what changes the physical layout: names, types, nullability, key, sort."""
        body = {
            "columns": [[c.name, c.type, c.nullable] for c in self.columns],
            "key": list(self.key),
            "sort": list(self.sort),
            "ts": self.ts_column,
        }
        blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_sort(self, sort: tuple[str, ...]) -> DatasetSchema:
        return DatasetSchema(
            name=self.name,
            columns=self.columns,
            key=self.key,
            sort=sort,
            ts_column=self.ts_column,
            description=self.description,
            row_group_rows=self.row_group_rows,
        )

    def conform(self, frame: pl.DataFrame, *, source: str = "frame") -> pl.DataFrame:
        """Return ``frame`` with exactly this schema's columns, order and types.

        Missing nullable columns are added as nulls; a missing required column, an
        unknown column, a null in a required column or a failed cast raises
        :class:`SchemaMismatchError` naming the column and ``source``.
        """
        names = set(self.column_names)
        unknown = [c for c in frame.columns if c not in names]
        if unknown:
            raise SchemaMismatchError(
                f"{source}: column(s) {unknown} are not in schema {self.name!r}. "
                f"Expected columns: {', '.join(self.column_names)}. Rename or drop them "
                "(an ingest mapping file can do this).",
                source=source,
                columns=unknown,
            )
        exprs: list[pl.Expr] = []
        for col in self.columns:
            if col.name not in frame.columns:
                if not col.nullable:
                    raise SchemaMismatchError(
                        f"{source}: required column {col.name!r} ({col.type}) is missing "
                        f"for schema {self.name!r}.",
                        source=source,
                        column=col.name,
                    )
                exprs.append(pl.lit(None, dtype=col.polars_type).alias(col.name))
                continue
            exprs.append(_cast_expr(frame, col))
        try:
            out = frame.select(exprs)
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
            raise SchemaMismatchError(
                f"{source}: cannot convert to schema {self.name!r}: {exc}", source=source
            ) from exc
        required = [c.name for c in self.columns if not c.nullable]
        if required and out.height:
            nulls = out.select(pl.col(required).null_count()).row(0, named=True)
            bad = {k: v for k, v in nulls.items() if v}
            if bad:
                name, count = next(iter(bad.items()))
                raise SchemaMismatchError(
                    f"{source}: required column {name!r} has {count} null value(s); "
                    "fill them or route those rows to quarantine before writing.",
                    source=source,
                    column=name,
                    nulls=bad,
                )
        return out


def _cast_expr(frame: pl.DataFrame, col: Column) -> pl.Expr:
    have = frame.schema[col.name]
    want = col.polars_type
    expr = pl.col(col.name)
    if isinstance(want, pl.Datetime):
        if isinstance(have, pl.Datetime):
            if have.time_zone is None:
                raise SchemaMismatchError(
                    f"column {col.name!r} holds naive datetimes; ticklake stores UTC. "
                    "Attach the source time zone first (e.g. "
                    "`.dt.replace_time_zone('Asia/Kolkata')`) or set `timezone` in the "
                    "ingest mapping.",
                    column=col.name,
                )
            return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("ns").alias(col.name)
        if have.is_integer():
            # Integers are taken as UTC nanoseconds since the epoch.
            return expr.cast(pl.Int64).cast(want).alias(col.name)
        raise SchemaMismatchError(
            f"column {col.name!r} is {have}; expected a datetime or int64 UTC nanoseconds",
            column=col.name,
        )
    return expr.cast(want, strict=True).alias(col.name)


def _type_name_for(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return TIMESTAMP
    for name, candidate in _POLARS_TYPES.items():
        if name != TIMESTAMP and dtype == candidate:
            return name
    if dtype in (pl.Int16(), pl.UInt8(), pl.UInt16()):
        return "int32"
    if dtype == pl.UInt32():
        return "int64"
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return "string"
    raise SchemaMismatchError(
        f"column type {dtype} is not supported in a lake dataset; cast it to one of "
        f"{', '.join(type_names())}",
    )


def schema_from_frame(
    name: str,
    frame: pl.DataFrame,
    *,
    key: tuple[str, ...],
    sort: tuple[str, ...] | None = None,
    ts_column: str = "ts",
    description: str = "",
) -> DatasetSchema:
    """Derive a schema for a custom dataset (e.g. gold results) from a frame.

    Key and time columns become required; every other column is nullable.

    Examples:
        >>> import polars as pl
        >>> from datetime import datetime, timezone
        >>> df = pl.DataFrame({"ts": [datetime(2024, 1, 1, tzinfo=timezone.utc)], "x": [1.0]})
        >>> schema_from_frame("results", df, key=("ts",)).column("x").type
        'float64'
    """
    required = {*key, ts_column}
    cols = tuple(
        Column(col, _type_name_for(dtype), col not in required)
        for col, dtype in frame.schema.items()
    )
    return DatasetSchema(
        name=name,
        columns=cols,
        key=tuple(key),
        sort=tuple(sort or (ts_column, *[k for k in key if k != ts_column])),
        ts_column=ts_column,
        description=description,
    )
