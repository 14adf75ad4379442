"""SQL over the lake: views, the locked untrusted path, limits, a movable warehouse."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import polars as pl
import pytest
from lakecheck import sha256
from lakegen import make_trades

import ticklake
from ticklake.errors import QueryError, QueryRejectedError, QueryTimeoutError
from ticklake.lake.lake import Lake
from ticklake.lake.sql import run_untrusted_sql
from ticklake.warehouse.db import Warehouse


@pytest.fixture
def sql_lake(lake: Lake) -> Lake:
    trades = make_trades(days=2, rows_per_day=300, seed=41)
    lake.write("nifty", trades, schema="trades", timezone="Asia/Kolkata")
    lake.write("nifty", trades.head(120), layer="silver", schema="trades", timezone="Asia/Kolkata")
    lake.write("banknifty", trades.tail(50), layer="gold", schema="trades")
    return lake


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): sha256(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "_locks" not in p.parts
    }


def test_views_per_layer_and_bare_names(sql_lake: Lake) -> None:
    counts = sql_lake.sql(
        "SELECT (SELECT count(*) FROM bronze.nifty) AS bronze_rows, "
        "(SELECT count(*) FROM silver.nifty) AS silver_rows, "
        "(SELECT count(*) FROM gold.banknifty) AS gold_rows, "
        "(SELECT count(*) FROM banknifty) AS bare_rows"
    ).row(0)
    assert counts == (600, 120, 50, 50)
    # The same name in two layers has no bare view: the reader must say which one.
    with pytest.raises(QueryError, match="nifty"):
        sql_lake.sql("SELECT count(*) FROM nifty")
    per_day = sql_lake.sql(
        "SELECT date, count(*) AS n, sum(size) AS volume FROM bronze.nifty "
        "GROUP BY date ORDER BY date"
    )
    oracle = (
        make_trades(days=2, rows_per_day=300, seed=41)
        .with_columns(pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.date().alias("date"))
        .group_by("date")
        .agg(pl.len().cast(pl.Int64).alias("n"), pl.col("size").sum().alias("volume"))
        .sort("date")
    )
    assert per_day.rows() == oracle.rows()


def test_untrusted_select_works_and_row_cap_truncates(sql_lake: Lake) -> None:
    result = run_untrusted_sql(sql_lake, "SELECT * FROM bronze.nifty ORDER BY ts", max_rows=25)
    assert result.truncated
    assert result.frame.height == 25
    whole = run_untrusted_sql(sql_lake, "SELECT count(*) AS n FROM silver.nifty")
    assert not whole.truncated
    assert whole.frame["n"].to_list() == [120]


ESCAPES = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_parquet('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_text('{lake}/../outside.txt')",
    "SELECT * FROM read_text('{lake}/bronze/../../outside.txt')",
    "SELECT * FROM '{outside}'",
    "COPY (SELECT 1) TO '{outside}'",
    "COPY (SELECT 1) TO '{lake}/bronze/copied.csv'",
    "COPY bronze.nifty TO '{lake}/copied.parquet' (FORMAT parquet)",
    "ATTACH '{outside}.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access=true",
    "SET threads=64",
    "PRAGMA database_list",
    "SELECT 1; COPY (SELECT 1) TO '{outside}'",
    "SELECT 1; SELECT 2",
    "CREATE TABLE t AS SELECT 1",
    "SELECT getenv('HOME')",
    "EXPORT DATABASE '{outside}'",
]


@pytest.mark.parametrize("template", ESCAPES)
def test_untrusted_path_refuses_escapes(sql_lake: Lake, tmp_path: Path, template: str) -> None:
    (tmp_path / "outside.txt").write_text("secret")
    outside = tmp_path / "written.csv"
    query = template.format(lake=sql_lake.root, outside=outside)
    before = tree(sql_lake.root)
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises((QueryRejectedError, QueryError)) as caught:
        run_untrusted_sql(sql_lake, query)
    assert caught.value.query == query
    assert tree(sql_lake.root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before


def test_runaway_query_is_stopped_by_the_timeout(sql_lake: Lake) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="1 s limit"):
        run_untrusted_sql(
            sql_lake,
            "SELECT count(*) FROM range(1000000000) a, range(1000000000) b "
            "WHERE a.range <> b.range",
            timeout_seconds=1,
        )
    assert time.monotonic() - started < 3.0


def test_warehouse_survives_moving_the_lake(sql_lake: Lake, tmp_path: Path) -> None:
    Warehouse(sql_lake).refresh()
    moved = tmp_path / "elsewhere" / "lake"
    moved.parent.mkdir()
    shutil.move(str(sql_lake.root), str(moved))
    lake = ticklake.open_lake(moved)
    with Warehouse(lake).connect() as con:
        rows = con.execute(
            "SELECT (SELECT count(*) FROM bronze.nifty), (SELECT count(*) FROM banknifty), "
            "(SELECT count(DISTINCT date) FROM silver.nifty)"
        ).fetchall()
    assert rows == [(600, 50, 1)]
