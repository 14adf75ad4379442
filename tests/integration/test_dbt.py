"""The dbt example (docs/examples/dbt) runs with dbt-duckdb on the generated files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

import ticklake

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "dbt"


def _dbt() -> str | None:
    """$TICKLAKE_DBT, else dbt beside this Python, in `make install-dbt`'s venv, on PATH."""
    if os.environ.get("TICKLAKE_DBT"):
        return os.environ["TICKLAKE_DBT"]
    here = Path(sys.executable).parent
    return (
        shutil.which("dbt", path=str(here))
        or shutil.which("dbt", path=str(here.parent / "dbt-env" / "bin"))
        or shutil.which("dbt")
    )


def _lake(root: Path) -> tuple[ticklake.LakeSession, pl.DataFrame]:
    lake = ticklake.init_lake(root)
    frame = pl.DataFrame(
        {
            "ts": [
                datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
                datetime(2024, 3, 1, 9, 31, tzinfo=UTC),
                datetime(2024, 3, 1, 9, 32, tzinfo=UTC),
                datetime(2024, 3, 4, 14, 0, tzinfo=UTC),
                datetime(2024, 3, 4, 14, 1, tzinfo=UTC),
            ],
            "instrument": ["AAPL", "AAPL", "MSFT", "MSFT", "AAPL"],
            "trade_id": ["1", "2", "3", "4", "5"],
            "price": [180.5, 181.0, 410.25, 411.0, 179.0],
            "size": [100.0, 50.0, 10.0, 500.0, 20.0],
        }
    )
    lake.write("trades", frame, schema="trades")
    lake.write("quotes_empty", frame.clear(), schema="trades")
    return lake, frame


def test_generated_files_name_every_dataset_and_the_database(tmp_path: Path) -> None:
    lake, _ = _lake(tmp_path / "lake")
    files = lake.dbt_files(tmp_path / "profiles", sources_dir=tmp_path / "models")
    profile = yaml.safe_load(files.profiles.read_text())
    assert profile["ticklake"]["outputs"]["dev"]["type"] == "duckdb"
    assert profile["ticklake"]["outputs"]["dev"]["path"] == str(
        lake.root / "cache" / "dbt" / "dbt.duckdb"
    )
    sources = yaml.safe_load(files.sources.read_text())
    (bronze,) = sources["sources"]
    tables = {t["name"]: t for t in bronze["tables"]}
    assert bronze["name"] == "bronze" and set(tables) == {"trades", "quotes_empty"}
    location = tables["trades"]["meta"]["external_location"]
    assert location == (
        f"read_parquet('{lake.root}/bronze/trades/date=*/data.parquet', hive_partitioning=true)"
    )
    # Each location is SQL DuckDB runs as a FROM item: check both against the lake.
    con = duckdb.connect()
    assert con.execute(f"select count(*) from {location}").fetchone() == (5,)
    empty = tables["quotes_empty"]["meta"]["external_location"]
    assert con.execute(f"select count(*) from {empty}").fetchone() == (0,)
    assert [c["name"] for c in tables["trades"]["columns"]][-1] == "date"


def test_dbt_run_on_the_example_project_matches_duckdb(tmp_path: Path) -> None:
    dbt = _dbt()
    if dbt is None:
        if os.environ.get("CI"):
            pytest.fail("dbt is not installed but CI is set: run `make install-dbt`")
        pytest.skip("dbt not installed (`make install-dbt`, or set TICKLAKE_DBT)")
    lake, frame = _lake(tmp_path / "lake")
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    database = tmp_path / "dbt.duckdb"
    lake.dbt_files(project, sources_dir=project / "models", database=database)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    run = subprocess.run(
        [dbt, "run", "--project-dir", str(project), "--profiles-dir", str(project)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    con = duckdb.connect(str(database), read_only=True)
    daily = con.execute(
        "select instrument, date, volume, trades from daily_volume order by 1, 2"
    ).fetchall()
    top = con.execute(
        "select date, top_instrument, volume from top_instrument_by_day order by 1"
    ).fetchall()
    con.close()
    # The oracle: Polars on the frame that was written (trading days in UTC).
    expected = (
        frame.with_columns(date=pl.col("ts").dt.date())
        .group_by("instrument", "date")
        .agg(volume=pl.col("size").sum(), trades=pl.len())
        .sort("instrument", "date")
    )
    assert daily == [tuple(r) for r in expected.iter_rows()]
    best = expected.sort("volume", descending=True).unique("date", keep="first").sort("date")
    assert top == [tuple(r) for r in best.select("date", "instrument", "volume").iter_rows()]
