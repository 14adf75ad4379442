from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app

runner = CliRunner()


def _lake_with_trades(root: Path) -> ticklake.Lake:
    lake = ticklake.init_lake(root)
    frame = pl.DataFrame(
        {
            "ts": [
                datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
                datetime(2024, 3, 1, 9, 31, tzinfo=UTC),
                datetime(2024, 3, 4, 14, 0, tzinfo=UTC),
            ],
            "instrument": ["AAPL", "AAPL", "MSFT"],
            "trade_id": ["1", "2", "3"],
            "price": [180.5, 181.0, 410.25],
            "size": [100.0, 50.0, 10.0],
        }
    )
    lake.write("trades", frame, schema="trades", timezone="America/New_York")
    return lake


def test_init_creates_lake_and_refuses_twice(tmp_path: Path) -> None:
    target = tmp_path / "mylake"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "ticklake.toml").is_file()
    assert {p.name for p in target.iterdir()} >= {"bronze", "silver", "gold"}
    again = runner.invoke(app, ["init", str(target)])
    assert again.exit_code == 3
    assert "a lake already exists" in again.output


def test_missing_lake_is_one_line_with_exit_code(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--lake", str(tmp_path / "nowhere")])
    assert result.exit_code == 3
    assert "ticklake init" in result.output
    assert "Traceback" not in result.output


def test_lake_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _lake_with_trades(tmp_path / "envlake")
    monkeypatch.setenv("TICKLAKE_LAKE", str(tmp_path / "envlake"))
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "bronze.trades" in result.output
    assert "America/New_York" in result.output


def test_status_counts_rows_and_days(tmp_path: Path) -> None:
    _lake_with_trades(tmp_path / "lake")
    result = runner.invoke(app, ["status", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if "bronze.trades" in ln)
    assert " 2 " in line and " 3 " in line  # 2 trading days, 3 rows
    assert "2024-03-01" in line and "2024-03-04" in line


def test_query_formats(tmp_path: Path) -> None:
    lake_dir = str(tmp_path / "lake")
    _lake_with_trades(tmp_path / "lake")
    sql = "select instrument, sum(size) as volume from bronze.trades group by 1 order by 1"
    csv = runner.invoke(app, ["query", sql, "--format", "csv", "--lake", lake_dir])
    assert csv.exit_code == 0, csv.output
    assert csv.stdout.splitlines() == ["instrument,volume", "AAPL,150.0", "MSFT,10.0"]
    js = runner.invoke(app, ["query", sql, "--format", "json", "--lake", lake_dir])
    assert json.loads(js.stdout) == [
        {"instrument": "AAPL", "volume": 150.0},
        {"instrument": "MSFT", "volume": 10.0},
    ]
    out = tmp_path / "out.parquet"
    pq = runner.invoke(
        app, ["query", sql, "--format", "parquet", "--output", str(out), "--lake", lake_dir]
    )
    assert pq.exit_code == 0, pq.output
    assert pl.read_parquet(out)["volume"].to_list() == [150.0, 10.0]


def test_untrusted_query_refuses_copy(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    _lake_with_trades(lake_dir)
    target = lake_dir / "stolen.csv"
    result = runner.invoke(
        app,
        ["query", f"copy (select 1) to '{target}'", "--untrusted", "--lake", str(lake_dir)],
    )
    assert result.exit_code == 8
    assert "only SELECT queries are allowed" in result.output
    assert not target.exists()


def test_describe_verify_vacuum(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    lake = _lake_with_trades(lake_dir)
    described = runner.invoke(app, ["lake", "describe", "trades", "--lake", str(lake_dir)])
    assert described.exit_code == 0, described.output
    assert "key: instrument, ts, trade_id" in described.output
    sha = lake.partitions("trades")[0].manifest.file_sha256  # type: ignore[union-attr]
    assert sha[:12] in described.output

    ok = runner.invoke(app, ["lake", "verify", "--lake", str(lake_dir)])
    assert ok.exit_code == 0 and "no problems" in ok.output

    part = lake.partitions("trades")[0].path.parent
    (part / ".tmp-deadbeef.tmp").write_bytes(b"half a file")
    bad = runner.invoke(app, ["lake", "verify", "--lake", str(lake_dir)])
    assert bad.exit_code == 7
    assert "orphan_temp" in bad.output
    vac = runner.invoke(app, ["lake", "vacuum", "--lake", str(lake_dir)])
    assert "removed orphan temp file .tmp-deadbeef.tmp" in vac.output
    assert runner.invoke(app, ["lake", "verify", "--lake", str(lake_dir)]).exit_code == 0


def test_unknown_dataset_lists_known(tmp_path: Path) -> None:
    _lake_with_trades(tmp_path / "lake")
    result = runner.invoke(app, ["lake", "describe", "quotes", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 4
    assert "Known datasets: bronze.trades" in result.output


@pytest.mark.slow
def test_demo_runs_and_reports(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "(92 already ingested, 0 failed), 0 rows read" in result.output
    assert "no problems" in result.output
    # Each summary is one line however long (piped output used to break mid-phrase) ...
    assert "0 quarantined, 3 day(s) touched" in result.output
    # ... and the greeks said to be at 10:00 IST show 10:00 IST, not the UTC instant.
    greeks = result.output.split("Greeks nearest the money at 10:00 IST:")[1].split("6. ")[0]
    assert "ts (IST)" in greeks and greeks.count("2024-01-08 10:00:00") == 4
    assert "UTC" not in greeks
    # The demo's suggested next step works on the lake it made (it holds an analytics run).
    runs = runner.invoke(app, ["backtest", "runs", "--lake", str(tmp_path / "demo" / "lake")])
    assert runs.exit_code == 0, runs.output
    assert "atm_straddle_hourly" in runs.output
    lake = ticklake.open_lake(tmp_path / "demo" / "lake")
    rows = lake.sql("select count(*) as n from bronze.banknifty_options")["n"][0]
    generated = sum(
        pl.scan_parquet(p).select(pl.len()).collect().item()
        for p in (tmp_path / "demo" / "vendor" / "options").rglob("*.parquet")
    )
    assert rows == generated > 0
    # The example SQL models built: one ATM row for every second of option snapshots, and
    # the ATM strike at 10:00 IST is the strike nearest the spot then (Polars, by hand).
    atm = lake.read("gold.atm_map")
    options = lake.scan("banknifty_options").select("ts", "expiry", "strike").collect()
    assert atm.height == atm["ts"].n_unique() == options["ts"].n_unique()
    ten = datetime(2024, 1, 8, 4, 30, tzinfo=UTC)
    spot = lake.read("banknifty_spot").filter(pl.col("ts") == ten)["price"].item()
    chain = options.filter(pl.col("ts") == ten)
    chain = chain.filter(pl.col("expiry") == chain["expiry"].min())
    nearest = chain.with_columns((pl.col("strike") - spot).abs().alias("d")).sort("d", "strike")
    assert atm.filter(pl.col("ts") == ten)["atm_strike"].item() == nearest["strike"][0]
    assert "7. SQL models" in result.output and lake.read("gold.opening_window").height == 3
    # The validation report is kept in the lake, so the dashboard's Quality page has it.
    quality = list((tmp_path / "demo" / "lake" / "reports" / "quality").glob("*.json"))
    assert [p.name.split("-")[0] for p in quality] == ["bronze.banknifty_spot"]
    report = next((tmp_path / "demo" / "lake" / "runs").glob("*/report.html"))
    assert "Equity" in report.read_text()
    daily = pl.read_parquet(report.parent / "daily.parquet")
    trades = pl.read_parquet(report.parent / "trades.parquet")
    # Daily net P&L is exactly the fills' cash flows minus their costs.
    by_day = trades.group_by("date").agg(
        (pl.col("cash_flow_paise").sum() - pl.col("costs_paise").sum()).alias("net")
    )
    joined = daily.join(by_day, on="date")
    assert joined.height == 3
    assert (joined["net"] == joined["net_pnl_paise"]).all()


def test_demo_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "mine")])
    assert result.exit_code == 2
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"
