"""``ticklake query``: read-only by default (and says so), ``--write`` persists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import Result
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import QueryError

runner = CliRunner()


@pytest.fixture
def lake_dir(tmp_path: Path) -> str:
    lake = ticklake.init_lake(tmp_path / "lake")
    frame = pl.DataFrame(
        {
            "ts": [datetime(2024, 3, 1, 9, 30, tzinfo=UTC), datetime(2024, 3, 4, 9, 0, tzinfo=UTC)],
            "instrument": ["AAPL", "MSFT"],
            "trade_id": ["1", "2"],
            "price": [180.5, 410.25],
            "size": [100.0, 10.0],
        }
    )
    lake.write("trades", frame, schema="trades")
    return str(lake.root)


def _query(lake_dir: str, sql: str, *flags: str) -> Result:
    return runner.invoke(app, ["query", sql, "--format", "csv", *flags, "--lake", lake_dir])


def test_write_statement_without_write_is_refused_in_one_line(lake_dir: str) -> None:
    result = _query(lake_dir, "create table t as select * from bronze.trades")
    assert result.exit_code == QueryError.exit_code
    output = result.output.strip()
    assert output == (
        "error: <query>: statement 1 is CREATE, but this query runs read-only and would "
        "persist nothing; add --write to run it on the warehouse (<lake>/warehouse.duckdb) "
        "in one transaction"
    )
    assert not (Path(lake_dir) / "warehouse.duckdb").exists()


def test_write_persists_and_a_later_read_sees_it_on_the_warehouse(lake_dir: str) -> None:
    made = _query(
        lake_dir,
        "create table volume as select instrument, sum(size) as v from bronze.trades group by 1",
        "--write",
    )
    assert made.exit_code == 0, made.output
    assert "created main.volume" in made.stderr
    assert "ran on the warehouse" in made.stderr and "(--write): committed" in made.stderr
    # An independent reader: plain DuckDB on the file.
    con = duckdb.connect(str(Path(lake_dir) / "warehouse.duckdb"), read_only=True)
    assert con.execute("select * from volume order by 1").fetchall() == [
        ("AAPL", 100.0),
        ("MSFT", 10.0),
    ]
    con.close()
    read = _query(lake_dir, "select v from volume join bronze.trades using (instrument) order by v")
    assert read.exit_code == 0, read.output
    assert read.stdout.splitlines() == ["v", "10.0", "100.0"]
    assert "ran read-only on the lake views and the warehouse" in read.stderr


def test_plain_read_without_a_warehouse_says_so_and_creates_nothing(lake_dir: str) -> None:
    result = _query(lake_dir, "select count(*) as n from bronze.trades")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["n", "2"]
    assert "no warehouse.duckdb yet" in result.stderr
    assert not (Path(lake_dir) / "warehouse.duckdb").exists()


def test_failing_write_query_rolls_back_everything(lake_dir: str) -> None:
    result = _query(
        lake_dir, "create table a as select 1 as x; insert into a select * from nope", "--write"
    )
    assert result.exit_code == QueryError.exit_code
    assert "<query>:1: statement 2 (INSERT) failed" in result.output
    con = duckdb.connect(str(Path(lake_dir) / "warehouse.duckdb"), read_only=True)
    names = {
        r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()
    }
    con.close()
    assert "a" not in names


def test_read_only_sees_a_dataset_added_after_the_warehouse_was_made(lake_dir: str) -> None:
    assert _query(lake_dir, "create table t (a int)", "--write").exit_code == 0
    lake = ticklake.open_lake(lake_dir)
    lake.write(
        "fills",
        pl.DataFrame(
            {
                "ts": [datetime(2024, 3, 5, 10, tzinfo=UTC)],
                "instrument": ["AAPL"],
                "trade_id": ["9"],
                "price": [1.0],
                "size": [7.0],
            }
        ),
        schema="trades",
    )
    result = _query(lake_dir, "select size from bronze.fills")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["size", "7.0"]


def test_untrusted_and_write_together_is_a_usage_error(lake_dir: str) -> None:
    result = _query(lake_dir, "select 1", "--untrusted", "--write")
    assert result.exit_code == 2
    assert "--untrusted is read-only" in result.output
