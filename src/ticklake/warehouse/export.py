"""``ticklake export``: a dataset (or a SQL result over the lake) out to another store.

The rows stream as Arrow record batches, never as one frame: a dataset partition by
partition (each read in row groups), a ``--sql`` result from DuckDB's streaming reader.
Memory holds a batch (``batch_rows``) at a time.

Targets (``to``):

- ``postgres``: one transaction for the whole export, so a failure (a constraint the
  rows violate, the connection killed, Ctrl+C) leaves the table exactly as it was.
  Column types from :mod:`ticklake.lake.pgtypes`. Modes: ``replace`` (create the table,
  or empty an existing one with ``TRUNCATE`` and keep its definition, constraints,
  indexes and grants), ``append``, ``upsert`` (``key`` required; an existing table must
  have a primary key or unique index on exactly those columns, else one is created:
  ``CREATE UNIQUE INDEX <table>_ticklake_key``; a new table gets ``PRIMARY KEY (key)``).
  Rows go in by binary ``COPY`` (ADBC): straight into the table when its column types
  are the mapped ones, else (and for upsert) through a temporary staging table and one
  ``INSERT ... SELECT`` that lets PostgreSQL cast;
- ``duckdb:FILE[:TABLE]``: ``replace`` or ``append`` in one DuckDB transaction;
- ``parquet:DIR``: a dataset gives ``DIR/date=YYYY-MM-DD/data.parquet`` per day, a SQL
  result ``DIR/data.parquet``; ``replace`` builds a new directory beside it and swaps it
  in (two renames), ``append`` adds files written under temp names and renamed;
- ``delta:DIR``: ``replace`` (overwrite) or ``append``, one Delta commit (atomic);
- ``csv:FILE``: ``replace``: written to a temp file, then renamed over FILE.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.errors import ConfigError, ExecutionError, QueryError, TicklakeError
from ticklake.lake.lake import Lake
from ticklake.lake.pgtypes import FORMAT_TYPE, copy_arrow_type, dsn_from_env, pg_type
from ticklake.lake.sql_names import quote_ident, quote_literal

__all__ = ["ExportSummary", "export", "parse_target"]

MODES = ("replace", "append", "upsert")
_TARGET_MODES = {
    "postgres": MODES,
    "duckdb": ("replace", "append"),
    "parquet": ("replace", "append"),
    "delta": ("replace", "append"),
    "csv": ("replace",),
}
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Target:
    kind: str
    path: str = ""
    table: str = ""


@dataclass
class ExportSummary:
    target: str
    mode: str
    rows: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds else 0.0
        return (
            f"exported {self.rows:,} row(s) to {self.target} ({self.mode}) in "
            f"{self.seconds:.1f} s ({rate:,.0f} rows/s)"
        )


def parse_target(text: str, table: str | None = None) -> Target:
    """``postgres`` | ``duckdb:FILE[:TABLE]`` | ``parquet:DIR`` | ``delta:DIR`` | ``csv:FILE``."""
    kind, _, rest = text.partition(":")
    if kind not in _TARGET_MODES:
        raise ConfigError(
            f"unknown export target {text!r}; use postgres, duckdb:FILE[:TABLE], "
            "parquet:DIR, delta:DIR or csv:FILE"
        )
    if kind == "postgres":
        if not table:
            raise ConfigError("--to postgres needs --table NAME (or SCHEMA.NAME)")
        return Target(kind, table=table)
    if not rest:
        raise ConfigError(f"--to {kind}: name the path, e.g. {kind}:out/{kind}_export")
    if kind == "duckdb":
        path, _, in_file = rest.partition(":")
        return Target(kind, path=path, table=in_file or table or "")
    return Target(kind, path=rest)


# ------------------------------------------------------------------ sources
@dataclass
class Source:
    schema: pa.Schema
    total: int | None
    chunks: Iterator[tuple[date | None, pa.RecordBatch]]
    name: str


def _arrow_clean(schema: pa.Schema) -> pa.Schema:
    """Views and dictionaries to the plain types every writer takes."""
    fields = []
    for f in schema:
        kind = f.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if kind == pa.string_view():
            kind = pa.large_string()
        elif kind == pa.binary_view():
            kind = pa.large_binary()
        fields.append(pa.field(f.name, kind, f.nullable))
    return pa.schema(fields)


@contextmanager
def open_source(
    lake: Lake,
    dataset: str | None,
    sql: str | None,
    *,
    start: date | datetime | str | None,
    end: date | datetime | str | None,
    batch_rows: int,
) -> Iterator[Source]:
    if (dataset is None) == (sql is None):
        raise ConfigError('export: give a DATASET or --sql "SELECT ...", not both or neither')
    if sql is not None:
        if start is not None or end is not None:
            raise ConfigError("--start/--end select days of a DATASET; filter in --sql instead")
        with _sql_source(lake, sql, batch_rows) as source:
            yield source
        return
    assert dataset is not None
    info = lake.dataset_info(dataset)
    parts = [
        p
        for p in lake.partitions(info.name, info.layer)
        if (start is None or p.date >= _day(start)) and (end is None or p.date <= _day(end))
    ]
    lake.check_partitions(parts)
    schema = info.dataset_schema.arrow_schema()

    def chunks() -> Iterator[tuple[date | None, pa.RecordBatch]]:
        for part in parts:
            for batch in pq.ParquetFile(part.path).iter_batches(batch_size=batch_rows):
                yield part.date, batch.cast(schema)

    yield Source(schema, sum(p.rows for p in parts), chunks(), info.name)


def _day(value: date | datetime | str) -> date:
    from ticklake.lake.days import as_day

    day = as_day(value)
    assert day is not None
    return day


@contextmanager
def _sql_source(lake: Lake, query: str, batch_rows: int) -> Iterator[Source]:
    import duckdb

    from ticklake.lake.sql import connect, snapshot

    with snapshot(lake, query) as root:
        con = connect(lake, root=root)
        try:
            try:
                relation = con.sql(query)
                if relation is None:
                    raise QueryError(
                        f"export --sql: {query!r} returns no rows to export", query=query
                    )
                reader = relation.to_arrow_reader(batch_rows)
            except duckdb.Error as exc:
                raise QueryError(f"export --sql failed: {exc}", query=query) from None
            schema = _arrow_clean(reader.schema)

            def chunks() -> Iterator[tuple[date | None, pa.RecordBatch]]:
                try:
                    for batch in reader:
                        yield None, batch.cast(schema)
                except duckdb.Error as exc:
                    raise QueryError(f"export --sql failed: {exc}", query=query) from None

            yield Source(schema, None, chunks(), "export")
        finally:
            con.close()


def _polars_types(schema: pa.Schema) -> dict[str, pl.DataType]:
    out: dict[str, pl.DataType] = {}
    for f in schema:
        converted = None
        if not pa.types.is_interval(f.type):  # Polars cannot take these (it panics)
            try:
                converted = pl.from_arrow(pa.table({f.name: pa.array([], f.type)}))
            except Exception:
                converted = None
        if not isinstance(converted, pl.DataFrame):
            raise ConfigError(
                f"column {f.name!r} of Arrow type {f.type} has no PostgreSQL mapping; cast it "
                "in --sql to a number, text, boolean, date or timestamp",
                column=f.name,
            )
        out[f.name] = converted.schema[f.name]
    return out


# ------------------------------------------------------------------- export
def export(
    lake: Lake,
    dataset: str | None = None,
    *,
    sql: str | None = None,
    to: str,
    table: str | None = None,
    dsn: str | None = None,
    dsn_env: str = "PG_DSN",
    key: Sequence[str] = (),
    mode: str = "replace",
    start: date | datetime | str | None = None,
    end: date | datetime | str | None = None,
    numeric: Sequence[str] = (),
    batch_rows: int = 250_000,
    progress: Progress | None = None,
) -> ExportSummary:
    """Export ``dataset`` (or the ``sql`` result) to ``to`` (see the module docstring)."""
    target = parse_target(to, table)
    if mode not in _TARGET_MODES[target.kind]:
        raise ConfigError(
            f"--to {target.kind} takes --mode {' | '.join(_TARGET_MODES[target.kind])}, "
            f"not {mode!r}"
        )
    if mode == "upsert" and not key:
        raise ConfigError("--mode upsert needs --key k1,k2 (the columns that identify a row)")
    if numeric and target.kind != "postgres":
        raise ConfigError("--numeric applies to --to postgres only")
    started = time.perf_counter()
    with open_source(lake, dataset, sql, start=start, end=end, batch_rows=batch_rows) as source:
        names = source.schema.names
        for name in [*key, *numeric]:
            if name not in names:
                raise ConfigError(
                    f"export: no column {name!r} in the rows (columns: {', '.join(names)})",
                    column=name,
                )
        counted = _Counted(source, progress)
        if target.kind == "postgres":
            write_postgres_table(
                source.schema,
                counted,
                table=target.table,
                dsn=dsn or dsn_from_env(dsn_env, "export --to postgres"),
                mode=mode,
                key=list(key),
                numeric=set(numeric),
            )
        elif target.kind == "duckdb":
            _to_duckdb(source.schema, counted, Path(target.path), target.table or source.name, mode)
        elif target.kind == "parquet":
            _to_parquet(source.schema, counted, Path(target.path), mode)
        elif target.kind == "delta":
            _to_delta(source.schema, counted, target.path, mode)
        else:
            _to_csv(source.schema, counted, Path(target.path))
        rows = counted.rows
    label = f"postgres table {target.table}" if target.kind == "postgres" else to
    return ExportSummary(label, mode, rows, time.perf_counter() - started)


class _Counted:
    """The source's chunks, counting rows and reporting progress as they are pulled."""

    def __init__(self, source: Source, progress: Progress | None) -> None:
        self.source = source
        self.progress = progress
        self.rows = 0

    def __iter__(self) -> Iterator[tuple[date | None, pa.RecordBatch]]:
        for day, batch in self.source.chunks:
            yield day, batch
            self.rows += batch.num_rows
            if self.progress is not None:
                self.progress(self.rows, self.source.total)

    def batches(self, cast: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None) -> Any:
        for _, batch in self:
            yield batch if cast is None else cast(batch)


# ------------------------------------------------------------- file targets
def _tmp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:12]}")


def _to_duckdb(schema: pa.Schema, rows: _Counted, path: Path, table: str, mode: str) -> None:
    import duckdb

    path.parent.mkdir(parents=True, exist_ok=True)
    reader = pa.RecordBatchReader.from_batches(schema, rows.batches())
    name = quote_ident(table)
    con = duckdb.connect(
        str(path),
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    try:
        con.execute("SET TimeZone='UTC'")
        con.register("__ticklake_empty", schema.empty_table())
        con.register("__ticklake_rows", reader)
        con.execute("BEGIN TRANSACTION")
        if mode == "replace":
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM __ticklake_rows")
        else:
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM __ticklake_empty")
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM __ticklake_rows")
        con.execute("COMMIT")
    except BaseException as exc:
        con.execute("ROLLBACK")
        if isinstance(exc, duckdb.Error):
            raise ExecutionError(
                f"export to {path}:{table} failed, nothing changed: {exc}"
            ) from None
        raise
    finally:
        con.close()


def _write_files(
    schema: pa.Schema,
    rows: _Counted,
    directory: Path,
    temps: list[tuple[Path, Path]] | None = None,
) -> None:
    """One Parquet file per source day (``date=.../``) or one for a SQL result.

    With ``temps`` (append) each file gets a unique name and is written under a temp
    name; ``(temp, final)`` is noted as soon as the file is opened.
    """
    writer: pq.ParquetWriter | None = None
    current: object = object()
    try:
        for day, batch in rows:
            if day != current:
                if writer is not None:
                    writer.close()
                current = day
                folder = directory if day is None else directory / f"date={day.isoformat()}"
                folder.mkdir(parents=True, exist_ok=True)
                if temps is None:
                    path = folder / "data.parquet"
                else:
                    final = folder / f"part-{uuid.uuid4().hex[:12]}.parquet"
                    path = _tmp_beside(final)
                    temps.append((path, final))
                writer = pq.ParquetWriter(path, schema, compression="zstd")
            assert writer is not None
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()


def _to_parquet(schema: pa.Schema, rows: _Counted, directory: Path, mode: str) -> None:
    if mode == "append":
        temps: list[tuple[Path, Path]] = []
        try:
            _write_files(schema, rows, directory, temps)
            for temp, final in temps:
                os.replace(temp, final)
        finally:
            for temp, _ in temps:
                temp.unlink(missing_ok=True)
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    fresh = _tmp_beside(directory)
    try:
        fresh.mkdir()
        _write_files(schema, rows, fresh)
        if directory.exists():
            old = _tmp_beside(directory)
            os.replace(directory, old)
            os.replace(fresh, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(fresh, directory)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def _to_delta(schema: pa.Schema, rows: _Counted, path: str, mode: str) -> None:
    from deltalake import write_deltalake

    # Delta stores timestamps in microseconds.
    fields = [
        pa.field(f.name, pa.timestamp("us", f.type.tz), f.nullable)
        if pa.types.is_timestamp(f.type)
        else f
        for f in schema
    ]
    target = pa.schema(fields)
    reader = pa.RecordBatchReader.from_batches(target, rows.batches(lambda b: b.cast(target)))
    try:
        write_deltalake(path, reader, mode="overwrite" if mode == "replace" else "append")
    except Exception as exc:
        if isinstance(exc, TicklakeError):
            raise
        raise ExecutionError(
            f"export to delta:{path} failed, no Delta commit was made: {_one_line(exc)}"
        ) from None


def _to_csv(schema: pa.Schema, rows: _Counted, path: Path) -> None:
    import pyarrow.csv as pacsv

    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _tmp_beside(path)
    try:
        with pacsv.CSVWriter(temp, schema) as writer:
            for batch in rows.batches():
                writer.write_batch(batch)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# ---------------------------------------------------------------- postgres
def _split_table(table: str) -> tuple[str | None, str]:
    db_schema, dot, name = table.partition(".")
    return (db_schema, name) if dot else (None, table)


def write_postgres_table(
    schema: pa.Schema,
    rows: _Counted,
    *,
    table: str,
    dsn: str,
    mode: str,
    key: list[str],
    numeric: set[str],
) -> None:
    """Load the rows into ``table`` in one transaction (see the module docstring)."""
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi

    types = _polars_types(schema)
    columns = list(schema.names)
    mapped = {c: pg_type(c, types[c], numeric=c in numeric) for c in columns}
    send = pa.schema(
        [
            pa.field(f.name, copy_arrow_type(f.name, f.type, numeric=f.name in numeric))
            for f in schema
        ]
    )
    db_schema, name = _split_table(table)
    qualified = (quote_ident(db_schema) + "." if db_schema else "") + quote_ident(name)
    cols = ", ".join(quote_ident(c) for c in columns)
    try:
        conn = adbc_driver_postgresql.dbapi.connect(dsn)
    except adbc_driver_manager.Error as exc:
        raise ExecutionError(f"export: cannot connect to PostgreSQL: {_one_line(exc)}") from None
    try:
        cur = conn.cursor()
        existing = _existing_columns(cur, qualified)
        if existing is None:
            defs = ", ".join(
                f"{quote_ident(c)} {mapped[c]}" + (" NOT NULL" if c in key else "") for c in columns
            )
            primary = f", PRIMARY KEY ({', '.join(quote_ident(k) for k in key)})" if key else ""
            cur.execute(f"CREATE TABLE {qualified} ({defs}{primary})")
            direct = mode != "upsert"
        else:
            missing = [c for c in columns if c not in existing]
            if missing:
                raise ConfigError(
                    f"PostgreSQL table {table} has no column(s) {missing}; add them "
                    "(ALTER TABLE ... ADD COLUMN) or export to another table",
                    table=table,
                    columns=missing,
                )
            direct = mode != "upsert" and all(
                existing[c] == FORMAT_TYPE.get(mapped[c], mapped[c]) for c in columns
            )
            if mode == "replace":
                cur.execute(f"TRUNCATE {qualified}")
            elif mode == "upsert":
                _ensure_unique(cur, qualified, name, key)
        reader = pa.RecordBatchReader.from_batches(send, rows.batches(lambda b: b.cast(send)))
        if direct:
            cur.adbc_ingest(name, reader, mode="append", db_schema_name=db_schema)
        else:
            stage = f"_ticklake_stage_{uuid.uuid4().hex[:12]}"
            cur.adbc_ingest(stage, reader, mode="create", temporary=True)
            insert = f"INSERT INTO {qualified} ({cols}) SELECT {cols} FROM pg_temp.{stage}"
            if mode == "upsert":
                updates = ", ".join(
                    f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in columns if c not in key
                )
                keys = ", ".join(quote_ident(k) for k in key)
                action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
                insert += f" ON CONFLICT ({keys}) {action}"
            cur.execute(insert)
            cur.execute(f"DROP TABLE pg_temp.{stage}")
        conn.commit()
    except adbc_driver_manager.Error as exc:
        with suppress(adbc_driver_manager.Error):
            conn.rollback()
        raise ExecutionError(
            f"export to PostgreSQL table {table} failed after {rows.rows:,} row(s) were sent; "
            f"the transaction was rolled back and the table is as it was: {_one_line(exc)}",
            table=table,
        ) from None
    except BaseException:
        with suppress(Exception):
            conn.rollback()
        raise
    finally:
        with suppress(adbc_driver_manager.Error):
            conn.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]


def _existing_columns(cur: Any, qualified: str) -> dict[str, str] | None:
    """Column name → ``format_type`` of an existing table; None when there is none."""
    cur.execute(f"SELECT to_regclass({quote_literal(qualified)}) IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        f"WHERE attrelid = {quote_literal(qualified)}::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum"
    )
    return dict(cur.fetchall())


def _ensure_unique(cur: Any, qualified: str, name: str, key: list[str]) -> None:
    """Upsert's ON CONFLICT needs a unique index on exactly ``key``: find it or make it."""
    cur.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        f"WHERE i.indrelid = {quote_literal(qualified)}::regclass AND i.indisunique "
        "AND i.indpred IS NULL GROUP BY i.indexrelid"
    )
    if any(sorted(found) == sorted(key) for (found,) in cur.fetchall()):
        return
    index = quote_ident(f"{name}_ticklake_key"[:63])
    cur.execute(
        f"CREATE UNIQUE INDEX {index} ON {qualified} ({', '.join(quote_ident(k) for k in key)})"
    )
