"""SQL models (issue 15): headers, dependencies from the SQL, the DAG, staleness, builds.

Oracles: model outputs are recomputed from the input frame with Polars, never read back
from the model's own bookkeeping; staleness is checked by changing an input partition
on disk and watching which days rebuild.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import ticklake
from ticklake.api import LakeSession
from ticklake.cli import app
from ticklake.errors import QueryError
from ticklake.warehouse.db import Warehouse
from ticklake.warehouse.models import ModelError, parse_model_text, table_refs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _warehouse_data import DAYS, trades, write_model

DAILY = """-- materialized: dataset
-- layer: gold
-- key: instrument, ts
-- incremental: by_day
-- per instrument and day: the last trade time, VWAP and trade count
SELECT instrument, max(ts) AS ts, sum(price * size) / sum(size) AS vwap, count(*) AS trades
FROM bronze.trades
GROUP BY instrument
"""
SUMMARY = """-- materialized: table
SELECT instrument, count(*) AS days, sum(trades) AS trades
FROM gold.daily_vwap GROUP BY instrument
"""
BUSY = "SELECT * FROM summary WHERE trades > 100\n"


@pytest.fixture
def lake(tmp_path: Path) -> LakeSession:
    lake = ticklake.init_lake(tmp_path / "lake")
    lake.write("trades", trades(), schema="trades")
    return lake


@pytest.fixture
def project(lake: LakeSession) -> Path:
    folder = lake.root / "sql"
    write_model(folder, "daily_vwap", DAILY)
    write_model(folder, "summary", SUMMARY)
    write_model(folder, "busy", BUSY)
    return folder


def oracle_daily(frame: pl.DataFrame) -> pl.DataFrame:
    return (
        frame.with_columns(pl.col("ts").dt.date().alias("day"))
        .group_by("instrument", "day")
        .agg(
            pl.col("ts").max(),
            ((pl.col("price") * pl.col("size")).sum() / pl.col("size").sum()).alias("vwap"),
            pl.len().cast(pl.Int64).alias("trades"),
        )
        .drop("day")
        .sort("ts", "instrument")
    )


# ------------------------------------------------------------------ parsing
def test_header_and_sql_are_read() -> None:
    spec = parse_model_text("daily_vwap", DAILY)
    assert (spec.materialized, spec.layer, spec.key, spec.incremental) == (
        "dataset", "gold", ("instrument", "ts"), "by_day",
    )  # fmt: skip
    assert spec.sql.startswith("SELECT instrument") and spec.line == 6
    assert spec.output == "gold.daily_vwap"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- materialised: table\nSELECT 1", "did you mean 'materialized'"),
        ("-- materialized: cube\nSELECT 1", "must be view, table or dataset"),
        ("-- materialized: dataset\nSELECT 1 AS ts", "needs '-- key: col1, col2'"),
        ("-- materialized: table\n-- key: x\nSELECT 1", "apply to dataset models only"),
        ("CREATE TABLE t AS SELECT 1", "must be exactly one SELECT"),
        ("SELECT 1; SELECT 2", "must be exactly one SELECT"),
        ("-- only a comment\n", "has no SQL"),
        ("-- materialized: dataset\n-- key: ts\n-- partition: hour\nSELECT 1", "trading date"),
    ],
)
def test_a_malformed_model_names_its_file_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ModelError, match=message) as caught:
        parse_model_text("bad", text, Path("models/bad.sql"))
    assert "models/bad.sql" in str(caught.value)


def test_free_text_comments_are_not_headers() -> None:
    spec = parse_model_text("m", "-- Per second: spot and the ATM strike\nSELECT 1 AS x")
    assert spec.materialized == "view"


def test_dependencies_come_from_the_sql_without_cte_names() -> None:
    spec = parse_model_text(
        "m",
        "WITH a AS (SELECT * FROM silver.bars_1m), b AS (SELECT * FROM a) "
        "SELECT * FROM b JOIN gold.x USING (ts) JOIN nifty ON true, read_parquet('f.parquet') "
        "WHERE ts IN (SELECT ts FROM main.tbl)",
    )
    assert [str(r) for r in table_refs(spec)] == ["gold.x", "nifty", "silver.bars_1m", "main.tbl"]


def test_an_unknown_table_is_an_error_naming_the_model_file_and_line(
    lake: LakeSession, project: Path
) -> None:
    path = write_model(project, "broken", "-- a model\n\nSELECT * FROM bronze.nope\n")
    with pytest.raises(ModelError, match=r"reads bronze\.nope, which is no model") as caught:
        lake.sql_plan()
    assert f"{path}:3" in str(caught.value) and "bronze.trades" in str(caught.value)


def test_a_cycle_is_an_error_naming_it(lake: LakeSession, project: Path) -> None:
    write_model(project, "a", "SELECT * FROM b")
    write_model(project, "b", "SELECT * FROM a")
    with pytest.raises(ModelError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        lake.sql_plan()


# -------------------------------------------------------------------- build
def test_models_build_in_dependency_order_and_match_polars(
    lake: LakeSession, project: Path
) -> None:
    plans = lake.sql_plan()
    assert [p.spec.name for p in plans] == ["daily_vwap", "summary", "busy"]
    assert plans[1].depends_on == ["daily_vwap"] and plans[0].inputs == ["bronze.trades"]
    assert [len(p.stale) for p in plans] == [3, 1, 1]
    results = {r.name: r for r in lake.sql_build()}
    assert results["daily_vwap"].days_built == 3 and results["summary"].rows == 2

    got = lake.read("gold.daily_vwap").sort("ts", "instrument")
    # each day sees only its own trades: 50 a day and instrument, not the 150 of all days
    assert_frame_equal(got, oracle_daily(trades()), check_column_order=False)
    with Warehouse(lake).connect() as con:
        summary = con.sql("SELECT * FROM summary ORDER BY instrument").pl()
        busy = con.execute("SELECT count(*) FROM busy").fetchone()
    assert summary.rows() == [("AAA", 3, 150), ("BBB", 3, 150)]
    assert busy == (2,)
    part = lake.partitions("daily_vwap", "gold")[0]
    assert part.manifest is not None and part.manifest.lineage.sources[0].path == (
        f"bronze/trades/date={DAYS[0]}"
    )
    assert [p.is_stale for p in lake.sql_plan()] == [False, False, False]
    again = {r.name: r for r in lake.sql_build()}
    assert again["daily_vwap"].days_built == 0 and again["daily_vwap"].days_skipped == 3
    assert again["summary"].days_built == 0


def test_a_changed_input_day_rebuilds_that_day_and_what_reads_it(
    lake: LakeSession, project: Path
) -> None:
    lake.sql_build()
    before = {p.date: p.manifest.file_sha256 for p in lake.partitions("daily_vwap", "gold")}
    extra = trades(days=[DAYS[1]], per_day=5, seed=99).with_columns(pl.col("trade_id") + "-late")
    lake.write("trades", extra, schema="trades")
    plans = {p.spec.name: p for p in lake.sql_plan()}
    assert plans["daily_vwap"].stale == [DAYS[1]]
    assert plans["summary"].is_stale  # it reads a day that will change
    results = {r.name: r for r in lake.sql_build()}
    assert (results["daily_vwap"].days_built, results["daily_vwap"].days_skipped) == (1, 2)
    after = {p.date: p.manifest.file_sha256 for p in lake.partitions("daily_vwap", "gold")}
    assert [d for d in DAYS if before[d] != after[d]] == [DAYS[1]]
    expected = oracle_daily(pl.concat([trades(), extra]))
    got = lake.read("gold.daily_vwap").sort("ts", "instrument")
    assert_frame_equal(got, expected, check_column_order=False)
    with Warehouse(lake).connect() as con:
        assert con.execute("SELECT sum(trades) FROM summary").fetchone() == (310,)


def test_a_changed_sql_rebuilds_every_day(lake: LakeSession, project: Path) -> None:
    lake.sql_build()
    write_model(
        project, "daily_vwap", DAILY.replace("count(*) AS trades", "count(*) AS trades, 1 AS one")
    )
    plans = {p.spec.name: p for p in lake.sql_plan()}
    assert (
        plans["daily_vwap"].stale == DAYS and "SQL or inputs changed" in plans["daily_vwap"].reason
    )


def test_start_and_end_limit_the_days_built(lake: LakeSession, project: Path) -> None:
    results = lake.sql_build(["daily_vwap"], start=DAYS[1], end=DAYS[1])
    assert [r.name for r in results] == ["daily_vwap"] and results[0].days_built == 1
    assert [p.date for p in lake.partitions("daily_vwap", "gold")] == [DAYS[1]]


def test_a_failing_table_model_leaves_the_old_table(lake: LakeSession, project: Path) -> None:
    lake.sql_build()
    path = write_model(
        project, "summary", SUMMARY.replace("count(*) AS days", "error('boom') AS days")
    )
    with pytest.raises(QueryError, match=r"model summary failed: .*boom") as caught:
        lake.sql_build(["summary"])
    assert f"{path}:2" in str(caught.value)
    with Warehouse(lake).connect() as con:
        assert con.sql("SELECT * FROM summary ORDER BY 1").fetchall() == [
            ("AAA", 3, 150), ("BBB", 3, 150),
        ]  # fmt: skip
        names = {
            r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert "summary__building" not in names


def test_a_failing_dataset_day_commits_nothing_of_that_day(
    lake: LakeSession, project: Path
) -> None:
    write_model(
        project,
        "daily_vwap",
        DAILY.replace(
            "count(*) AS trades",
            f"count(*) AS trades, CASE WHEN max(ts)::DATE = DATE '{DAYS[1]}' "
            "THEN error('bad day') ELSE 1 END AS flag",
        ),
    )
    with pytest.raises(QueryError, match=f"failed building {DAYS[1]}: .*bad day"):
        lake.sql_build(["daily_vwap"])
    assert [p.date for p in lake.partitions("daily_vwap", "gold")] == [DAYS[0]]
    assert lake.sql_plan()[0].stale == [DAYS[1], DAYS[2]]  # the built day is kept, fresh


def test_a_by_day_model_may_not_write_another_day(lake: LakeSession, project: Path) -> None:
    write_model(
        project,
        "daily_vwap",
        DAILY.replace("max(ts) AS ts", "max(ts)::TIMESTAMPTZ + INTERVAL 1 DAY AS ts"),
    )
    with pytest.raises(ModelError, match="outside the trading day 2024-03-04"):
        lake.sql_build(["daily_vwap"])
    assert "daily_vwap" not in lake.dataset_names()


def test_a_corrupt_input_partition_stops_the_build(lake: LakeSession, project: Path) -> None:
    part = lake.partitions("trades")[1]
    data = bytearray(part.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.path.write_bytes(bytes(data))
    fresh = ticklake.open_lake(lake.root)  # a new process's first read checks the hash
    with pytest.raises(ticklake.errors.CorruptPartitionError):
        fresh.sql_build(["daily_vwap"])


def test_user_objects_survive_a_refresh_of_the_lake_views(lake: LakeSession) -> None:
    warehouse = Warehouse(lake)
    with warehouse.connect(write=True) as con:
        con.execute("CREATE TABLE main.notes AS SELECT 1 AS x")
        con.execute(
            "CREATE VIEW main.trades_aaa AS SELECT * FROM bronze.trades WHERE instrument = 'AAA'"
        )
    lake.write("other", trades(days=[DAYS[0]]), schema="trades")
    warehouse.refresh()
    with warehouse.connect() as con:
        objects = {o.qualified: o for o in warehouse.objects(con)}
        assert con.execute("SELECT count(*) FROM trades_aaa").fetchone() == (150,)
    assert not objects["main.notes"].generated and not objects["main.trades_aaa"].generated
    assert objects["bronze.other"].generated and objects["bronze.trades"].generated


# ---------------------------------------------------------------------- CLI
def test_cli_plan_and_build(lake: LakeSession, project: Path) -> None:
    runner = CliRunner()
    plan = runner.invoke(app, ["sql", "plan", "--lake", str(lake.root)])
    assert plan.exit_code == 0, plan.output
    assert "daily_vwap" in plan.output and "3 of 3" in plan.output and "never built" in plan.output
    build = runner.invoke(app, ["sql", "build", "--lake", str(lake.root)])
    assert build.exit_code == 0, build.output
    plan = runner.invoke(app, ["sql", "plan", "--lake", str(lake.root)])
    assert "0 of 3" in plan.output and "stale" not in plan.output.split("status")[-1].replace(
        "fresh", ""
    )
    bad = runner.invoke(app, ["sql", "build", "nope", "--lake", str(lake.root)])
    assert bad.exit_code != 0 and "unknown model nope" in bad.output


def test_a_corrupt_model_partition_is_moved_aside_and_rebuilt_by_sql_build(
    lake: LakeSession, project: Path
) -> None:
    lake.sql_build(["daily_vwap"])
    before = lake.read("gold.daily_vwap").sort("ts", "instrument")
    part = lake.partitions("daily_vwap", "gold")[1]
    data = bytearray(part.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.path.write_bytes(bytes(data))
    repaired = lake.verify(repair=True)
    assert repaired.repaired
    notes = list((lake.root / "_corrupt" / "gold" / "daily_vwap").glob("*/NOTE.txt"))
    assert len(notes) == 1
    advice = f"ticklake sql build daily_vwap --start {DAYS[1]} --end {DAYS[1]}"
    assert advice in notes[0].read_text()
    plan = lake.sql_plan()[0]
    assert plan.stale == [DAYS[1]] and "partition missing" in plan.reason
    lake.sql_build(["daily_vwap"])
    assert_frame_equal(lake.read("gold.daily_vwap").sort("ts", "instrument"), before)
    assert lake.verify().ok
