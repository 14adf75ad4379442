"""Bars in the lake: silver datasets, lineage, cache, views, CLI and slices."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from _bars_data import make_quotes, make_trades
from typer.testing import CliRunner

from ticklake.bars import build_bars, export_slice, rollup_bars
from ticklake.cli import app
from ticklake.errors import ConfigError, SchemaMismatchError
from ticklake.lake import Lake
from ticklake.warehouse.db import Warehouse

runner = CliRunner()
# Two NSE sessions (09:15-15:30 IST); the second day's first bar needs the first day's
# last quote.
DAY_ONE = datetime(2024, 1, 2, 3, 45, tzinfo=UTC)
DAY_TWO = datetime(2024, 1, 3, 3, 45, tzinfo=UTC)


@pytest.fixture
def nse_lake(lake: Lake) -> Lake:
    trades = pl.concat(
        [
            make_trades(start=DAY_ONE, seconds=3600, rows=3000, seed=1),
            make_trades(start=DAY_TWO, seconds=3600, rows=3000, seed=2),
        ]
    ).with_columns((pl.col("trade_id") + pl.col("ts").dt.strftime("-%d")).alias("trade_id"))
    quotes = pl.concat(
        [
            make_quotes(start=DAY_ONE, seconds=3600, rows=2000),
            # Day two's quotes begin 10 minutes after its first trades.
            make_quotes(start=DAY_TWO.replace(minute=55), seconds=3000, rows=2000).with_columns(
                pl.col("seq") + 10_000
            ),
        ]
    )
    lake.write("trades", trades, schema="trades", timezone="Asia/Kolkata")
    lake.write("quotes", quotes, schema="quotes", timezone="Asia/Kolkata")
    return lake


def test_build_writes_silver_bars_that_match_sql_over_the_lake(nse_lake: Lake) -> None:
    summary = build_bars(nse_lake, "trades", "1m", quotes="quotes")
    assert summary.dataset == "silver.bars_1m"
    assert summary.days_built == ["2024-01-02", "2024-01-03"]
    assert summary.rows_in == 6000
    # The independent aggregation runs through the lake's own DuckDB views.
    oracle = nse_lake.sql(
        """
        SELECT instrument, time_bucket(INTERVAL '1 minute', ts::TIMESTAMPTZ) AS ts,
               arg_min(price, (epoch_ns(ts), length(trade_id), trade_id)) AS open,
               arg_max(price, (epoch_ns(ts), length(trade_id), trade_id)) AS close,
               max(price) AS high, min(price) AS low, sum(size) AS volume,
               count(*) AS trade_count
        FROM bronze.trades GROUP BY ALL
        """
    )
    ours = nse_lake.sql("SELECT * FROM silver.bars_1m")
    assert ours.height == oracle.height == summary.bars
    joined = ours.join(
        oracle.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns")),
        on=["instrument", "ts"],
        suffix="_sql",
    )
    assert joined.height == ours.height
    for name in ("open", "close", "high", "low", "trade_count"):
        assert (joined[name] == joined[f"{name}_sql"]).all(), name
    assert (joined["volume"] - joined["volume_sql"]).abs().max() < 1e-9
    # Day two's first bars close before its first quote: the bid is day one's last one.
    day_one_last = nse_lake.read("quotes", end="2024-01-02").sort(["ts", "seq"])
    first_bar = ours.filter(pl.col("ts") == DAY_TWO, pl.col("instrument") == "AAA").row(
        0, named=True
    )
    expected_bid = day_one_last.filter(pl.col("instrument") == "AAA")["bid_price"][-1]
    assert first_bar["bid_price"] == expected_bid


def test_manifest_records_source_hashes_and_spec(nse_lake: Lake) -> None:
    summary = build_bars(nse_lake, "trades", "1m", quotes="quotes")
    trade_parts = {str(p.date): p.manifest for p in nse_lake.partitions("trades")}
    quote_parts = {str(p.date): p.manifest for p in nse_lake.partitions("quotes")}
    for part in nse_lake.partitions("bars_1m"):
        assert part.manifest is not None
        lineage = part.manifest.lineage
        assert lineage.spec_hash == summary.spec_hash
        shas = {s.sha256 for s in lineage.sources}
        trade_manifest = trade_parts[str(part.date)]
        assert trade_manifest is not None and trade_manifest.file_sha256 in shas
        paths = {s.path for s in lineage.sources}
        assert f"bronze/trades/date={part.date}/data.parquet" in paths
    day_two = nse_lake.partitions("bars_1m")[1].manifest
    assert day_two is not None
    day_one_quotes = quote_parts["2024-01-02"]
    assert day_one_quotes is not None
    assert day_one_quotes.file_sha256 in {s.sha256 for s in day_two.lineage.sources}


def test_rebuild_is_skipped_and_another_spec_is_refused(nse_lake: Lake) -> None:
    build_bars(nse_lake, "trades", "1m")
    again = build_bars(nse_lake, "trades", "1m")
    assert again.days_built == [] and [d.status for d in again.days] == ["unchanged"] * 2
    with pytest.raises(ConfigError, match="another bar spec"):
        build_bars(nse_lake, "trades", "1m", fill="forward")
    filled = build_bars(nse_lake, "trades", "1s", fill="forward", out="bars_1s_filled")
    assert filled.bars_filled > 0
    assert filled.bars == nse_lake.read("silver.bars_1s_filled").height


def test_rollup_from_silver_and_views(nse_lake: Lake) -> None:
    build_bars(nse_lake, "trades", "1m")
    summary = rollup_bars(nse_lake, "bars_1m", "1h", anchor="09:15")
    hourly = nse_lake.read("silver.bars_1h")
    assert summary.bars == hourly.height == 4  # 2 instruments x 2 days x one 09:15 hour
    assert set(hourly["ts"].to_list()) == {DAY_ONE, DAY_TWO}
    minute = nse_lake.read("silver.bars_1m")
    assert hourly["volume"].sum() == pytest.approx(minute["volume"].sum(), rel=1e-12)
    # The persisted warehouse exposes silver.bars_1m / bars_1h as views.
    Warehouse(nse_lake).refresh()
    with Warehouse(nse_lake).connect() as con:
        counted = con.sql("SELECT count(*) FROM silver.bars_1m").fetchall()[0]
        views = {row[0] for row in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}
    assert counted is not None and counted[0] == minute.height
    assert {"bars_1m", "bars_1h"} <= views


def test_wrong_sources_are_refused_with_a_hint(nse_lake: Lake) -> None:
    with pytest.raises(SchemaMismatchError, match="bars build"):
        rollup_bars(nse_lake, "trades", "5m")
    with pytest.raises(SchemaMismatchError, match="cannot build bars from"):
        build_bars(nse_lake, "quotes", "1m")
    with pytest.raises(SchemaMismatchError, match="not 'quotes'"):
        build_bars(nse_lake, "trades", "1m", quotes="trades")


def test_cli_build_rollup_and_slice(nse_lake: Lake, tmp_path: Path) -> None:
    root = str(nse_lake.root)
    result = runner.invoke(
        app, ["bars", "build", "--dataset", "trades", "--interval", "5m", "--lake", root]
    )
    assert result.exit_code == 0, result.output
    assert "silver.bars_5m" in result.output and "2 day(s) built" in result.output
    result = runner.invoke(
        app, ["bars", "rollup", "--dataset", "bars_5m", "--interval", "15m", "--lake", root]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["bars", "build", "--dataset", "trades", "--interval", "2w", "--lake", root]
    )
    assert result.exit_code != 0 and "bad bar interval" in result.output
    out = tmp_path / "slice.csv"
    result = runner.invoke(
        app,
        ["slice", "--dataset", "trades", "--symbols", "AAA", "--start", "2024-01-02T04:00",
         "--end", "2024-01-02T04:10", "--out", str(out), "--format", "csv", "--lake", root],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    exported = pl.read_csv(out)
    expected = nse_lake.sql(
        "SELECT * FROM bronze.trades WHERE instrument = 'AAA' AND "
        "ts::TIMESTAMPTZ >= TIMESTAMPTZ '2024-01-02 04:00:00+00' "
        "AND ts::TIMESTAMPTZ < TIMESTAMPTZ '2024-01-02 04:10:00+00'"
    )
    assert exported.height == expected.height > 0
    assert exported["instrument"].unique().to_list() == ["AAA"]
    assert exported["price"].sum() == pytest.approx(expected["price"].sum())
    assert exported["ts"][0].endswith("Z")


def test_slice_with_timeframe_returns_bars(nse_lake: Lake, tmp_path: Path) -> None:
    result = export_slice(
        nse_lake, "trades", tmp_path / "bars.parquet", symbols=["BBB"], start="2024-01-03",
        end="2024-01-03", timeframe="15m",
    )  # fmt: skip
    bars = pl.read_parquet(result.path)
    raw = nse_lake.read(
        "trades", start="2024-01-03", end="2024-01-03", filters={"instrument": "BBB"}
    )
    quarter_hours = {(t.hour, t.minute // 15) for t in raw["ts"]}
    assert result.rows == bars.height == len(quarter_hours)
    assert bars["trade_count"].sum() == raw.height
    assert bars["high"].max() == raw["price"].max()
