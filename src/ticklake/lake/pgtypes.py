"""PostgreSQL types for lake columns, both ways, and the connection string from the environment.

Shared by the analytics stage's PostgreSQL target and the warehouse's ``ingest postgres``
and ``export --to postgres`` (it sits in the storage layer so both can import it).

Out (a Polars / lake column → a PostgreSQL column type):

=========================  ===========================================================
Polars                     PostgreSQL
=========================  ===========================================================
Datetime with a time zone  ``timestamptz`` (microseconds: nanoseconds are truncated)
Datetime without           ``timestamp``
Date                       ``date``
Int64 / Int32 / Int16/8    ``bigint`` / ``integer`` / ``smallint``
UInt32 / UInt16 / UInt8    ``bigint`` / ``integer`` / ``smallint``
UInt64                     ``numeric(20,0)`` (exact: bigint cannot hold 2⁶⁴−1)
Float64 / Float32          ``double precision`` / ``real``
Decimal(p, s)              ``numeric(p,s)``
String / Categorical       ``text``
Boolean                    ``boolean``
Binary                     ``bytea``
=========================  ===========================================================

An integer column named in ``numeric`` becomes ``numeric(20,0)`` (money in paise, say,
where the target's other tools expect numeric); a float column ``numeric``. Any other
type (lists, structs, durations, objects) is a :class:`ConfigError` naming the column.

In (a PostgreSQL result column → a lake column): :func:`check_source_type` accepts the
PostgreSQL types in :data:`SOURCE_TYPES` for each lake type and names the column
otherwise.
"""

from __future__ import annotations

import os

import polars as pl
import pyarrow as pa

from ticklake.errors import ConfigError

#: numeric(20,0): every uint64 and int64 value, exactly.
NUMERIC_INT = "numeric(20,0)"

_OUT: tuple[tuple[pl.DataType, str], ...] = (
    (pl.Float64(), "double precision"),
    (pl.Float32(), "real"),
    (pl.Int64(), "bigint"),
    (pl.Int32(), "integer"),
    (pl.Int16(), "smallint"),
    (pl.Int8(), "smallint"),
    (pl.UInt64(), NUMERIC_INT),
    (pl.UInt32(), "bigint"),
    (pl.UInt16(), "integer"),
    (pl.UInt8(), "smallint"),
    (pl.Boolean(), "boolean"),
    (pl.String(), "text"),
    (pl.Date(), "date"),
    (pl.Binary(), "bytea"),
)


def pg_type(name: str, dtype: pl.DataType, *, numeric: bool = False) -> str:
    """The PostgreSQL column type for a Polars column (see the module docstring).

    Examples:
        >>> import polars as pl
        >>> pg_type("ts", pl.Datetime("ns", "UTC"))
        'timestamptz'
        >>> pg_type("paise", pl.Int64(), numeric=True)
        'numeric(20,0)'
    """
    if numeric:
        if dtype.is_integer():
            return NUMERIC_INT
        if dtype.is_float():
            return "numeric"
        if not isinstance(dtype, pl.Decimal):
            raise ConfigError(
                f"column {name!r} is {dtype}; only integer, float and decimal columns can be "
                "exported as numeric",
                column=name,
            )
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone else "timestamp"
    if isinstance(dtype, pl.Decimal):
        return f"numeric({dtype.precision},{dtype.scale})" if dtype.precision else "numeric"
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return "text"
    for candidate, sql_type in _OUT:
        if dtype == candidate:
            return sql_type
    raise ConfigError(
        f"column {name!r} of type {dtype} has no PostgreSQL mapping; cast it (e.g. in --sql) "
        "to a number, text, boolean, date or timestamp",
        column=name,
    )


#: Lake column type → the PostgreSQL result types that load into it without loss of
#: meaning (numeric arrives as text and is cast; a strict cast failure names the column).
SOURCE_TYPES: dict[str, frozenset[str]] = {
    "timestamp[ns, UTC]": frozenset({"timestamptz", "int8"}),
    "date32": frozenset({"date"}),
    "float64": frozenset({"float8", "float4", "int2", "int4", "int8", "numeric"}),
    "float32": frozenset({"float4", "int2"}),
    "int64": frozenset({"int8", "int4", "int2", "numeric"}),
    "int32": frozenset({"int4", "int2"}),
    "int8": frozenset({"int2"}),
    "uint64": frozenset({"int8", "int4", "int2", "numeric"}),
    "bool": frozenset({"bool"}),
    "string": frozenset({"text", "varchar", "bpchar", "name", "char"}),
}


def check_source_type(column: str, pg_name: str, lake_type: str, where: str) -> None:
    """Raise a :class:`ConfigError` naming ``column`` if ``pg_name`` cannot fill ``lake_type``."""
    if pg_name in SOURCE_TYPES.get(lake_type, frozenset()):
        return
    hint = ""
    if pg_name == "timestamp" and lake_type.startswith("timestamp"):
        hint = f" (timestamp without time zone: write `{column} AT TIME ZONE 'UTC'` in the query)"
    accepted = ", ".join(sorted(SOURCE_TYPES.get(lake_type, ())))
    raise ConfigError(
        f"{where}: column {column!r} is PostgreSQL {pg_name}, which does not map to the "
        f"schema's {lake_type}{hint}; accepted: {accepted}. Cast it in the query.",
        column=column,
        pg_type=pg_name,
    )


def dsn_from_env(variable: str, what: str = "postgres") -> str:
    """The connection string in ``$variable``, or a :class:`ConfigError` saying how to set it."""
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            f"{what}: environment variable {variable} is not set; set it to a "
            "connection string such as postgresql://user@host:5432/db",
            variable=variable,
        )
    return value


def copy_arrow_type(name: str, kind: pa.DataType, *, numeric: bool = False) -> pa.DataType:
    """The Arrow type to send by binary COPY into a column of type :func:`pg_type`.

    ADBC's COPY writes each Arrow type as one PostgreSQL type; these casts make that
    type the mapped one (unsigned and 8-bit integers widen, uint64 and ``numeric``
    integers become ``decimal128(20, 0)``, dictionaries their values).
    """
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if (numeric and pa.types.is_integer(kind)) or kind == pa.uint64():
        return pa.decimal128(20, 0)
    widen = {pa.uint32(): pa.int64(), pa.uint16(): pa.int32(), pa.uint8(): pa.int16()}
    if kind in widen:
        return widen[kind]
    if kind == pa.int8():
        return pa.int16()
    if kind == pa.string_view():
        return pa.large_string()
    return kind


#: ``format_type()`` spellings of the mapped types that differ from :func:`pg_type`'s.
FORMAT_TYPE = {
    "timestamptz": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
}
