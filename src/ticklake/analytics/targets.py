"""Output targets: the lake gold dataset (the commit point) and exports from it.

Every pass writes its rows to a gold dataset with key ``(instrument, ts)`` (schema
derived from the frame), one atomic commit per day. External targets are loaded from
those committed gold days by the parent process after each batch, one writer at a
time (a DuckDB file takes one writer; Delta commits are optimistic):

- **Delta Lake**: partitioned by ``date`` (the gold partition day); ``overwrite``
  replaces exactly the batch's days (``predicate``), so re-runs do not duplicate rows;
  ``append`` appends (re-runs duplicate, by request);
- **PostgreSQL**: the table is created from the frame's schema with quoted identifiers
  and primary key ``(instrument, ts)``; rows are bulk-loaded with ``COPY`` into a
  temporary staging table and upserted in one transaction, so re-runs are idempotent.
  PostgreSQL timestamps have microsecond resolution;
- **DuckDB**: a table in a database file; rows with the batch's keys are replaced in
  one transaction.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.pipeline import (
    DeltaTargetSpec,
    DuckdbTargetSpec,
    PassSpec,
    PipelineSpec,
    PostgresTargetSpec,
)
from ticklake.errors import ExecutionError
from ticklake.lake.pgtypes import dsn_from_env, pg_type
from ticklake.schemas.base import schema_from_frame

if TYPE_CHECKING:
    from ticklake.lake import Lake, WriteResult

KEY = ("instrument", "ts")


def gold_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast a pass's output to types a lake dataset stores (ns UTC time, int64, float64)."""
    casts = []
    for name, dtype in frame.schema.items():
        if name == "ts":
            casts.append(pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("ns"))
        elif dtype == pl.Null:
            casts.append(pl.col(name).cast(pl.Float64))
        elif dtype in (pl.UInt8, pl.UInt16, pl.UInt32, pl.Int8, pl.Int16, pl.Int32):
            casts.append(pl.col(name).cast(pl.Int64))
        elif isinstance(dtype, pl.Decimal) or dtype == pl.Float32:
            casts.append(pl.col(name).cast(pl.Float64))
        elif isinstance(dtype, pl.Duration):
            casts.append(pl.col(name).dt.total_nanoseconds().alias(f"{name}_ns"))
        elif isinstance(dtype, pl.Datetime):
            casts.append(pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("ns"))
    out = frame.with_columns(casts) if casts else frame
    durations = [n for n, d in frame.schema.items() if isinstance(d, pl.Duration)]
    return out.drop(durations).select(
        ["instrument", "ts", *[c for c in out.columns if c not in KEY and c not in durations]]
    )


def write_gold(
    lake: Lake,
    dataset: str,
    frame: pl.DataFrame,
    *,
    timezone: str,
    bucket: BucketSpec,
    spec_hash: str,
    mode: Literal["merge", "replace"] = "merge",
) -> WriteResult | None:
    """Commit a pass's rows to ``gold.<dataset>``, one atomic commit per day.

    ``mode="replace"`` drops the existing rows of each (day, instrument) the frame holds
    before writing, so a re-run with changed settings leaves no stale buckets.
    """
    from ticklake.analytics.passes import gold_day_offset

    if frame.height == 0:
        return None
    data = gold_frame(frame)
    exists = "gold" in lake.layers_of(dataset)
    schema = None
    if not exists:
        schema = schema_from_frame(
            dataset, data, key=KEY, description=f"analytics output ({bucket.width} buckets)"
        )
    return lake.write(
        dataset,
        data,
        layer="gold",
        schema=schema,
        timezone=timezone,
        day_offset=gold_day_offset(bucket),
        spec_hash=spec_hash,
        input_is_unique=False,
        mode=mode,
        replace_by=("instrument",) if mode == "replace" else (),
    )


def gold_days(lake: Lake, dataset: str, days: list[date]) -> pl.DataFrame:
    """The committed gold rows of ``days`` with a ``date`` column (their partition day)."""
    if "gold" not in lake.layers_of(dataset):
        return pl.DataFrame()
    wanted = set(days)
    chosen = [p for p in lake.partitions(dataset, layer="gold") if p.date in wanted]
    lake.check_partitions(chosen)  # export only what was committed
    parts = [
        pl.read_parquet(p.path).with_columns(pl.lit(p.date, pl.Date).alias("date")) for p in chosen
    ]
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame()


def export_days(lake: Lake, pipeline: PipelineSpec, spec: PassSpec, days: list[date]) -> int:
    """Load a pass's committed gold ``days`` into its external targets; returns rows."""
    targets = [t for t in pipeline.targets_of(spec) if t.type != "lake"]
    if not targets:
        return 0
    frame = gold_days(lake, pipeline.output_dataset(spec), days)
    for target in targets:
        if isinstance(target, DeltaTargetSpec):
            write_delta(frame, pipeline.fill(target.path, spec), target.mode, days)
        elif isinstance(target, PostgresTargetSpec):
            if frame.height:
                write_postgres(frame.drop("date"), target, pipeline.fill(target.table, spec))
        elif isinstance(target, DuckdbTargetSpec) and frame.height:
            write_duckdb(
                frame.drop("date"),
                pipeline.fill(target.path, spec),
                pipeline.fill(target.table, spec),
            )
    return frame.height


# ---------------------------------------------------------------------------- delta
def write_delta(frame: pl.DataFrame, path: str, mode: str, days: list[date]) -> None:
    """Write rows partitioned by ``date``; ``overwrite`` replaces exactly ``days``."""
    from deltalake import DeltaTable, write_deltalake

    exists = DeltaTable.is_deltatable(path)
    if frame.height == 0 and (not exists or mode == "append"):
        return
    # Delta stores timestamps in microseconds.
    table = frame.with_columns(pl.col("ts").dt.cast_time_unit("us")).to_arrow()
    if mode == "append" or not exists:
        write_deltalake(path, table, mode="append", partition_by=["date"])
        return
    first, last = min(days).isoformat(), max(days).isoformat()
    # Dates come from the batch (date objects), never from user text.
    write_deltalake(
        path,
        table,
        mode="overwrite",
        partition_by=["date"],
        predicate=f"date >= '{first}' AND date <= '{last}'",
    )


# ------------------------------------------------------------------------- postgres
def postgres_dsn(target: PostgresTargetSpec) -> str:
    if target.dsn is not None:
        return target.dsn
    assert target.dsn_env is not None
    return dsn_from_env(target.dsn_env, "postgres target")


def write_postgres(frame: pl.DataFrame, target: PostgresTargetSpec, table: str) -> None:
    """Upsert rows on (instrument, ts): COPY into a staging table, then one INSERT."""
    import psycopg
    from psycopg import sql

    qualified = (
        sql.Identifier(target.db_schema, table) if target.db_schema else sql.Identifier(table)
    )
    columns = list(frame.columns)
    idents = [sql.Identifier(c) for c in columns]
    definitions = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(
            sql.Identifier(c),
            sql.SQL(pg_type(c, frame.schema[c])),
            sql.SQL(" NOT NULL" if c in KEY else ""),
        )
        for c in columns
    )
    column_list = sql.SQL(", ").join(idents)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in columns
        if c not in KEY
    )
    try:
        with psycopg.connect(postgres_dsn(target)) as conn, conn.transaction():
            cur = conn.cursor()
            cur.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (instrument, ts))").format(
                    qualified, definitions
                )
            )
            for c in columns:  # a metric added to the pipeline adds a column
                cur.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        qualified, sql.Identifier(c), sql.SQL(pg_type(c, frame.schema[c]))
                    )
                )
            stage = sql.Identifier(f"_ticklake_stage_{table}"[:63])
            cur.execute(
                sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(stage, definitions)
            )
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, column_list)) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
            conflict = (
                sql.SQL("DO UPDATE SET {}").format(updates)
                if columns != list(KEY)
                else (sql.SQL("DO NOTHING"))
            )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (instrument, ts) "
                ).format(qualified, column_list, column_list, stage)
                + conflict
            )
    except psycopg.Error as exc:
        raise ExecutionError(
            f"postgres target {table!r}: {type(exc).__name__}: {str(exc).strip()}",
            table=table,
        ) from None


# --------------------------------------------------------------------------- duckdb
def _duck_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_duckdb(frame: pl.DataFrame, path: str, table: str) -> None:
    """Replace the rows with the batch's (instrument, ts) keys in one transaction."""
    import duckdb

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    name = _duck_ident(table)
    # Extensions come from the Python packages or not at all, as in ticklake.lake.sql.
    con = duckdb.connect(
        path,
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    try:
        con.register("__ticklake_batch", frame.to_arrow())
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM __ticklake_batch LIMIT 0")
        con.execute(
            f"DELETE FROM {name} AS t USING __ticklake_batch AS b "
            "WHERE t.instrument = b.instrument AND t.ts = b.ts"
        )
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM __ticklake_batch")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
