"""The pieces of a model build that touch files and the warehouse's bookkeeping.

- :class:`PinnedInputs`: hard-link the committed files of a model's lake inputs (of one
  day, for a by-day build) into a private directory laid out like the lake, so the
  warehouse's relative-path views read exactly those files through
  ``file_search_path``; an input without that day gets an empty partition, so its view
  reads no rows instead of failing;
- :func:`day_output`: check a dataset model's output for one day and give its columns
  lake types without changing a value;
- :func:`read_state` / :func:`write_state`: ``_ticklake.model_state``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from ticklake.lake.days import trading_day_expr
from ticklake.lake.lake import Lake
from ticklake.lake.sql import SNAPSHOT_DIR, link_committed
from ticklake.warehouse.db import META_SCHEMA
from ticklake.warehouse.models import ModelError, ModelSpec


class PinnedInputs:
    """Hard-link the committed files of ``datasets`` (of ``day`` only, if given) into a
    private directory laid out like the lake; an input without that day gets an empty
    partition, so the views over it read no rows instead of failing."""

    def __init__(self, lake: Lake, datasets: list[tuple[str, str]], day: date | None) -> None:
        self.lake, self.datasets, self.day = lake, datasets, day
        self.root = lake.root / SNAPSHOT_DIR / f"{os.getpid()}-{uuid.uuid4().hex}"

    def __enter__(self) -> Path:
        known = {(i.layer, i.name): i for i in self.lake.datasets()}
        try:
            for layer, name in self.datasets:
                if (layer, name) not in known:
                    continue
                parts = [
                    p for p in self.lake.partitions(name, layer)
                    if self.day is None or p.date == self.day
                ]  # fmt: skip
                self.lake.check_partitions(parts)
                base = self.root / layer / name
                for part in parts:
                    target = base / f"date={part.date}" / "data.parquet"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    link_committed(part.path, target)
                if not parts:
                    target = base / f"date={self.day or date(1970, 1, 1)}" / "data.parquet"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    schema = known[(layer, name)].dataset_schema.arrow_schema()
                    pq.write_table(schema.empty_table(), target)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def day_output(
    spec: ModelSpec, frame: pl.DataFrame, day: date, zone: tuple[str, str | None]
) -> pl.DataFrame:
    """Check one day's output and make its columns lake types (values unchanged)."""
    where = f"{spec.where}: model {spec.name} ({day})"
    if spec.ts_column not in frame.columns:
        raise ModelError(
            f"{where}: a dataset model needs its UTC time column {spec.ts_column!r} "
            f"(columns: {', '.join(frame.columns)}); add it or name another with '-- ts:'",
            path=str(spec.path),
        )
    missing = [k for k in spec.key if k not in frame.columns]
    if missing:
        raise ModelError(
            f"{where}: key columns {missing} are not in the result", path=str(spec.path)
        )
    casts = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                raise ModelError(
                    f"{where}: column {name!r} is a TIMESTAMP without time zone; make it "
                    f"TIMESTAMPTZ in the SQL (e.g. {name} AT TIME ZONE 'UTC')",
                    path=str(spec.path),
                )
            casts.append(pl.col(name).dt.convert_time_zone("UTC").dt.cast_time_unit("ns"))
        elif dtype == pl.Int128 or dtype in (pl.UInt8, pl.UInt16, pl.UInt32, pl.Int16):
            casts.append(pl.col(name).cast(pl.Int64, strict=True))  # overflow is an error
        elif isinstance(dtype, pl.Decimal):
            target = pl.Int64 if dtype.scale == 0 else pl.Float64
            casts.append(pl.col(name).cast(target, strict=True))
    if casts:
        frame = frame.with_columns(casts)
    if "date" in frame.columns:  # the hive partition column of a SELECT *
        if frame["date"].dtype != pl.Date or frame.filter(pl.col("date") != day).height:
            raise ModelError(
                f"{where}: column 'date' is the partition and must equal the day built; rename it",
                path=str(spec.path),
            )
        frame = frame.drop("date")
    if frame.height:
        info = _ZoneInfo(*zone)
        expr = trading_day_expr(spec.ts_column, info)  # type: ignore[arg-type]
        days = frame.select(expr.alias("d"))["d"]
        wrong = frame.filter(days != day)
        if wrong.height or days.null_count():
            raise ModelError(
                f"{where}: {wrong.height + days.null_count():,} rows have {spec.ts_column} "
                f"outside the trading day {day} ({zone[0]}); a by-day model may only write "
                f"the day it reads (first: {wrong.head(1).to_dicts() or 'null ts'})",
                path=str(spec.path),
            )
    return frame


@dataclass(frozen=True)
class _ZoneInfo:
    timezone: str
    day_offset: str | None


def read_state(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, date | None], tuple[str, int]]:
    try:
        rows = con.execute(
            f"SELECT model, day, fingerprint, rows FROM {META_SCHEMA}.model_state"
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    return {(model, day): (fingerprint, int(count)) for model, day, fingerprint, count in rows}


def write_state(
    con: duckdb.DuckDBPyConnection, model: str, entries: dict[date | None, tuple[str, int]]
) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.model_state (model VARCHAR, day DATE, "
        "fingerprint VARCHAR, rows BIGINT, built_at TIMESTAMPTZ)"
    )
    for day, (fingerprint, rows) in entries.items():
        con.execute(
            f"DELETE FROM {META_SCHEMA}.model_state WHERE model = ? AND day IS NOT DISTINCT FROM ?",
            [model, day],
        )
        con.execute(
            f"INSERT INTO {META_SCHEMA}.model_state VALUES (?, ?, ?, ?, now())",
            [model, day, fingerprint, rows],
        )
