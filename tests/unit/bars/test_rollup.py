"""Roll-ups: FirstRate SPX 1m → the vendor's own 5m/30m/1h/1d files; pandas oracle; errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from _bars_data import make_trades

from ticklake.bars import BarGrid, rollup, rollup_bars, trades_to_bars
from ticklake.errors import ConfigError
from ticklake.ingest.pipeline import ingest_files
from ticklake.lake import Lake

FIRSTRATE = "firstratedata-spx-sample"


@pytest.fixture
def spx_lake(shared_data: Path, lake: Lake) -> Lake:
    folder = shared_data / FIRSTRATE
    ingest_files(lake, "firstrate_bars", [folder / "SPX_1min.txt_sample.txt"], "spx_1m")
    return lake


@pytest.mark.parametrize(
    ("interval", "vendor_file"),
    [("5m", "SPX_5min"), ("30m", "SPX_30min"), ("1h", "SPX_1hour"), ("1d", "SPX_1day")],
)
def test_spx_rollups_match_the_vendor_files(
    spx_lake: Lake, shared_data: Path, interval: str, vendor_file: str
) -> None:
    """Both sides labelled at the bar open in New York time; the match is exact.

    The vendor's 1hour file starts at 09:00 with a bar holding 09:30–10:00 only, and
    its daily bars include the 16:00–16:05 prints; open-time labels on a midnight
    aligned New York grid reproduce both without special cases.
    """
    summary = rollup_bars(spx_lake, "spx_1m", interval)
    ours = spx_lake.read(f"silver.bars_{interval}")
    assert summary.bars == ours.height
    vendor = pl.read_csv(
        shared_data / FIRSTRATE / f"{vendor_file}.txt_sample.txt",
        has_header=False,
        new_columns=["stamp", "open", "high", "low", "close"],
    )
    fmt = "%Y-%m-%d" if interval == "1d" else "%Y-%m-%d %H:%M:%S"
    vendor = vendor.with_columns(
        pl.col("stamp")
        .str.strptime(pl.Datetime("ns"), fmt)
        .dt.replace_time_zone("America/New_York")
        .dt.convert_time_zone("UTC")
        .alias("ts")
    )
    assert ours.height == vendor.height
    joined = ours.join(vendor, on="ts", how="inner", suffix="_vendor")
    assert joined.height == vendor.height
    for name in ("open", "high", "low", "close"):
        assert (joined[name] == joined[f"{name}_vendor"]).all(), name
    assert ours["volume"].is_null().all()  # an index has no volume: null, not 0


def test_rollup_matches_pandas_resample_of_the_small_bars(trades: pl.DataFrame) -> None:
    seconds = trades_to_bars(trades, BarGrid.create("1s"))
    rolled = rollup(seconds, BarGrid.create("5m"))
    frame = seconds.to_pandas().set_index("ts").sort_index()
    for instrument, group in frame.groupby("instrument"):
        resampled = group.resample("5min", label="left", closed="left")
        expected = pd.DataFrame(
            {
                "open": resampled["open"].first(),
                "high": resampled["high"].max(),
                "low": resampled["low"].min(),
                "close": resampled["close"].last(),
                "volume": resampled["volume"].sum(),
                "quote_volume": resampled["quote_volume"].sum(),
                "trade_count": resampled["trade_count"].sum(),
                "buy_volume": resampled["buy_volume"].sum(),
            }
        ).dropna(subset=["open"])
        ours = rolled.filter(pl.col("instrument") == instrument)
        assert ours.height == len(expected)
        for name in ("open", "high", "low", "close", "trade_count"):
            assert ours[name].to_list() == expected[name].tolist(), name
        for name in ("volume", "quote_volume", "buy_volume"):
            np.testing.assert_allclose(ours[name].to_numpy(), expected[name].to_numpy(), rtol=1e-12)
        vwap = expected["quote_volume"] / expected["volume"]
        np.testing.assert_allclose(ours["vwap"].to_numpy(), vwap.to_numpy(), rtol=1e-12)
    # VWAP is Σ quote volume / Σ volume of the big bar, not the last small bar's vwap.
    last_small = seconds.group_by("instrument").agg(pl.col("vwap").last())
    assert (
        not rolled.join(last_small, on="instrument")
        .select((pl.col("vwap") == pl.col("vwap_right")).all())
        .item()
    )


def test_rollup_refuses_bars_that_straddle_the_target_grid(trades: pl.DataFrame) -> None:
    hourly = trades_to_bars(trades, BarGrid.create("1h", anchor="00:30"))
    with pytest.raises(ConfigError, match="cross a 1h bar boundary"):
        rollup(hourly, BarGrid.create("1h"))
    with pytest.raises(ConfigError, match="multiple of the input interval"):
        rollup(trades_to_bars(trades, BarGrid.create("5m")), BarGrid.create("1m"))


def test_rollup_forward_fill_inserts_flat_bars() -> None:
    start = datetime(2024, 1, 2, 10, tzinfo=UTC)
    sparse = make_trades(start=start, seconds=3600, rows=40, instruments=("AAA",), seed=4)
    minute = trades_to_bars(sparse, BarGrid.create("1m"))
    rolled = rollup(minute, BarGrid.create("5m"), fill="forward")
    opens = rolled["ts"].dt.epoch("s").to_numpy()
    assert set(np.diff(opens)) == {300}  # no holes between the first and last bar
    filled = rolled.filter(pl.col("trade_count") == 0)
    assert filled.height > 0
    previous_close = rolled["close"].shift(1).filter(rolled["trade_count"] == 0)
    assert filled["open"].to_list() == previous_close.to_list()
    assert (filled["volume"] == 0).all()


def test_cme_daily_rollup_follows_the_globex_trading_day(shared_data: Path, lake: Lake) -> None:
    """6E 1m bars (close-stamped) to 1d: each day opens 17:00 Chicago the evening before."""
    path = shared_data / "cme-6e-1min" / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
    ingest_files(lake, "cme_bars", [path], "six_e")
    summary = rollup_bars(lake, "six_e", "1d")
    daily = lake.read("silver.bars_1d")
    assert summary.bars == daily.height
    # January: Chicago is UTC-6, so 17:00 CT = 23:00 UTC.
    assert {(t.hour, t.minute) for t in daily["ts"]} == {(23, 0)}
    # Oracle from the raw file with pandas: stamp - 1 min = open; day = date(open + 1 h UTC).
    raw = pd.read_csv(path, parse_dates=["timestamp_utc"])
    raw["open_time"] = raw["timestamp_utc"] - pd.Timedelta(minutes=1)
    raw["day"] = (raw["open_time"] + pd.Timedelta(hours=1)).dt.date
    raw = raw.sort_values("open_time")
    grouped = raw.groupby("day").agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"),
        close=("close", "last"), volume=("volume", "sum"),
    )  # fmt: skip
    assert daily.height == len(grouped)
    for bar, (_, expected) in zip(daily.iter_rows(named=True), grouped.iterrows(), strict=True):
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
            expected["open"], expected["high"], expected["low"], expected["close"],
        )  # fmt: skip
        assert bar["volume"] == expected["volume"]
