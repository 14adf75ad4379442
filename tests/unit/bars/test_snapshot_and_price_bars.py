"""Option-snapshot bars (reset-safe volume, OI) and price-series bars (NIFTY 50 sample)."""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ticklake.bars import BarGrid, build_bars, prices_to_bars, snapshots_to_bars
from ticklake.generate import generate_options
from ticklake.ingest.pipeline import ingest_files
from ticklake.lake import Lake

IST = ZoneInfo("Asia/Kolkata")


def _snapshots(rows: list[tuple[int, float | None, int | None, int]]) -> pl.DataFrame:
    """One contract, (second after 09:15 IST, last price, cumulative volume, oi)."""
    base = datetime(2024, 1, 10, 9, 15, tzinfo=IST)
    return pl.DataFrame(
        {
            "ts": [base + timedelta(seconds=s) for s, *_ in rows],
            "symbol": ["BANKNIFTY2411048000CE"] * len(rows),
            "last_price": [p for _, p, _, _ in rows],
            "volume": [v for _, _, v, _ in rows],
            "oi": [o for *_, o in rows],
            "bid_price_0": [100.0] * len(rows),
            "ask_price_0": [100.5] * len(rows),
        },
        schema_overrides={"volume": pl.Int64, "oi": pl.Int64, "last_price": pl.Float64},
    ).with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"))


def test_snapshot_volume_is_reset_safe_and_never_negative() -> None:
    snapshots = _snapshots(
        [
            (0, None, 0, 1000),  # before the first trade: no price
            (10, 100.0, 150, 1000),
            (30, 102.0, 400, 1100),
            (59, 101.0, None, 1100),  # volume missing: no increment, next diff spans it
            (61, 99.0, 450, 1200),
            (70, 98.0, 30, 1150),  # vendor reset: the new count is 30, not -420
            (119, 97.5, 90, 1150),
        ]
    )
    bars = snapshots_to_bars(snapshots, BarGrid.create("1m", timezone="Asia/Kolkata"))
    assert bars["instrument"].unique().to_list() == ["BANKNIFTY2411048000CE"]
    first, second = bars.rows(named=True)
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        100.0,
        102.0,
        100.0,
        101.0,
    )
    assert first["volume"] == 400.0 and first["open_interest"] == 1100.0
    assert (second["open"], second["close"], second["low"]) == (99.0, 97.5, 97.5)
    assert second["volume"] == 50.0 + 30.0 + 60.0
    assert second["open_interest"] == 1150.0 and second["bid_price"] == 100.0
    assert (bars["volume"] >= 0).all()
    assert first["ts"] == datetime(2024, 1, 10, 3, 45, tzinfo=UTC)


def _oracle_option_bars(frame: pl.DataFrame) -> dict[tuple[str, datetime], tuple]:
    """Plain-Python loop: per contract in time order, increments and 1-minute buckets."""
    out: dict[tuple[str, datetime], list] = {}
    by_symbol: dict[str, list[dict]] = defaultdict(list)
    for row in frame.sort("ts").iter_rows(named=True):
        by_symbol[row["symbol"]].append(row)
    for symbol, rows in by_symbol.items():
        previous = 0
        for row in rows:
            cumulative = row["volume"]
            if cumulative is None:
                increment = 0
            else:
                increment = cumulative - previous if cumulative >= previous else cumulative
                previous = cumulative
            bucket = row["ts"].replace(second=0, microsecond=0)
            bar = out.setdefault((symbol, bucket), [None, None, None, None, 0, None])
            price = row["last_price"]
            if price is not None:
                bar[0] = price if bar[0] is None else bar[0]
                bar[1] = price if bar[1] is None else max(bar[1], price)
                bar[2] = price if bar[2] is None else min(bar[2], price)
                bar[3] = price
            bar[4] += increment
            bar[5] = row["oi"] if row["oi"] is not None else bar[5]
    return {key: tuple(value) for key, value in out.items()}


def test_generated_chain_bars_through_the_lake_match_a_python_loop(
    lake: Lake, tmp_path: Path
) -> None:
    generate_options(
        "BANKNIFTY", start=date(2024, 1, 10), days=1, out=tmp_path / "chain", seed=3,
        strikes_each_side=1, expiries=("weekly",), seconds_step=15,
    )  # fmt: skip
    ingest_files(lake, "nse_options", [tmp_path / "chain" / "options"], "options")
    summary = build_bars(lake, "options", "1m")
    assert summary.days_built == ["2024-01-10"]
    ours = lake.read("silver.bars_1m")
    oracle = _oracle_option_bars(lake.read("options"))
    assert ours.height == len(oracle)
    for bar in ours.iter_rows(named=True):
        expected = oracle[(bar["instrument"], bar["ts"])]
        got = (
            bar["open"],
            bar["high"],
            bar["low"],
            bar["close"],
            bar["volume"],
            bar["open_interest"],
        )
        assert got == pytest.approx(expected, nan_ok=True), bar
    assert ours["volume"].sum() > 0 and (ours["volume"] >= 0).all()


def _nifty_oracle(path: Path, anchor_minutes: int, width_minutes: int) -> dict[datetime, tuple]:
    """OHLC per bucket straight from the raw gzip CSV with the csv module."""
    out: dict[datetime, list[float]] = {}
    with gzip.open(path, "rt") as handle:
        for stamp, value in csv.reader(handle):
            local = datetime.fromisoformat(stamp).replace(tzinfo=IST)
            minutes = local.hour * 60 + local.minute - anchor_minutes
            bucket_minutes = minutes // width_minutes * width_minutes + anchor_minutes
            midnight = local.replace(hour=0, minute=0, second=0)
            bucket = (midnight + timedelta(minutes=bucket_minutes)).astimezone(UTC)
            price = float(value)
            bar = out.setdefault(bucket, [price, price, price, price])
            bar[1], bar[2], bar[3] = max(bar[1], price), min(bar[2], price), price
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize(("interval", "anchor", "width"), [("1m", None, 1), ("1h", "09:15", 60)])
def test_nifty_index_bars_match_the_raw_file(
    shared_data: Path, lake: Lake, interval: str, anchor: str | None, width: int
) -> None:
    path = shared_data / "nse-nifty50-index-1s" / "2022-11-22.csv.gz"
    ingest_files(lake, "nse_index", [path], "nifty")
    prices = lake.read("nifty")
    bars = prices_to_bars(prices, BarGrid.create(interval, timezone="Asia/Kolkata", anchor=anchor))
    oracle = _nifty_oracle(path, 9 * 60 + 15 if anchor else 0, width)
    assert bars.height == len(oracle)
    for bar in bars.iter_rows(named=True):
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == oracle[bar["ts"]]
        assert bar["volume"] is None and bar["trade_count"] is None
    if anchor:
        assert bars["ts"][1].astimezone(IST).strftime("%H:%M") == "09:15"
