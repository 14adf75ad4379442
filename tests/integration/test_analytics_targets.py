"""A pipeline writes the lake gold dataset, a Delta table, a PostgreSQL table (a real
server, from conftest.py) and a DuckDB table; each reads back equal to gold, and a re-run
adds no duplicates."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "analytics"))
from _pipeline_helpers import make_trades, registered_test_metrics

from ticklake import init_lake
from ticklake.analytics.pipeline import parse_pipeline
from ticklake.analytics.run import run_pipeline
from ticklake.lake import Lake

DAYS = [date(2024, 3, 4), date(2024, 3, 5)]
TABLE = 'Analytics "minute"'  # needs quoting: a space, capitals and a double quote


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    lake = init_lake(tmp_path / "lake")
    lake.write("trades", make_trades(DAYS, ["AAA", "BBB"], per_day=300), schema="trades")
    return lake


def _spec(tmp_path: Path) -> object:
    return parse_pipeline(
        {
            "name": "targets",
            "metric_modules": ["_pipeline_test_metrics"],
            "batch_frequency": "D",
            "targets": [
                {"type": "lake"},
                {"type": "delta", "path": str(tmp_path / "delta" / "{pass}")},
                {"type": "postgres", "dsn_env": "TICKLAKE_TEST_PG", "table": TABLE},
                {"type": "duckdb", "path": str(tmp_path / "out.duckdb"), "table": TABLE},
            ],
            "passes": [
                {
                    "name": "minute",
                    "input": "trades",
                    "modules": [
                        {"metric": "pipeline_test_volume"},
                        {"metric": "pipeline_test_trade_count"},
                        {"metric": "pipeline_test_last_price"},
                        {"metric": "pipeline_test_cumulative_volume"},
                    ],
                }
            ],
        }
    )


def _normalise(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    ).sort("instrument", "ts")


def _read_postgres(dsn: str) -> pl.DataFrame:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn) as conn:
        cur = conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY instrument, ts").format(sql.Identifier(TABLE))
        )
        names = [d.name for d in cur.description or []]
        return pl.DataFrame(cur.fetchall(), schema=names, orient="row")


def test_pipeline_writes_all_four_targets_idempotently(
    tmp_path: Path, lake: Lake, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb
    from deltalake import DeltaTable

    monkeypatch.setenv("TICKLAKE_TEST_PG", postgres_dsn)
    spec = _spec(tmp_path)
    for attempt in range(2):  # the second run must not add a single row anywhere
        if attempt == 1:  # ... and must update rows whose values changed
            late = lake.read("trades").filter(
                pl.col("ts") > pl.datetime(2024, 3, 5, 18, time_zone="UTC")
            )
            lake.write("trades", late.with_columns(pl.col("size") + 100_000))
        with registered_test_metrics():
            run_pipeline(lake, spec, executor="serial")  # type: ignore[arg-type]
        gold = _normalise(lake.read("gold.targets_minute"))
        assert gold.height > 300, attempt
        assert (gold["pipeline_test_volume"].max() > 100_000) == (attempt == 1)

        delta = pl.from_arrow(DeltaTable(str(tmp_path / "delta" / "minute")).to_pyarrow_table())
        assert isinstance(delta, pl.DataFrame)
        days = {p.date: p.rows for p in lake.partitions("gold.targets_minute")}
        assert dict(delta.group_by("date").len().iter_rows()) == days
        assert_frame_equal(_normalise(delta.drop("date")).select(gold.columns), gold)

        postgres = _normalise(_read_postgres(postgres_dsn))
        assert_frame_equal(postgres.select(gold.columns), gold, check_dtypes=False)

        with duckdb.connect(str(tmp_path / "out.duckdb")) as con:
            table = con.sql(f'SELECT * FROM "{TABLE.replace(chr(34), chr(34) * 2)}"').pl()
        assert_frame_equal(_normalise(table).select(gold.columns), gold, check_dtypes=False)

    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        key = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            ['"Analytics ""minute"""'],
        ).fetchall()
    assert sorted(r[0] for r in key) == ["instrument", "ts"]
