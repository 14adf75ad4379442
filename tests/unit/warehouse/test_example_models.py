"""The example models that ship with ticklake build on a lake laid out like the demo's,
and give what an independent Polars computation gives (issue 15)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import ticklake
from ticklake.api import LakeSession
from ticklake.cli import app
from ticklake.warehouse.db import Warehouse

DAYS = [date(2024, 1, 8), date(2024, 1, 9)]
STRIKES = [47000.0, 47100.0, 47200.0, 47300.0, 47400.0]
OPEN_UTC = (3, 45)  # 09:15 IST


def session(day: date, seconds: int) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, *OPEN_UTC, tzinfo=UTC)
    return [start + timedelta(seconds=s) for s in range(seconds)]


def nse_frames(seconds: int = 600) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(11)
    spots, options = [], []
    for day in DAYS:
        times = session(day, seconds)
        # spot ticks every 2 s, so the ATM map must take the spot as of each second
        path = 47200 + np.cumsum(rng.normal(0, 12, seconds))
        # put the spot exactly between two strikes once: the tie goes to the lower strike
        path[8] = 47150.0  # ticks at even seconds: seconds 8 and 9 see it
        spots += [{"ts": t, "instrument": "BANKNIFTY", "price": float(p)}
                  for t, p in zip(times[::2], path[::2], strict=True)]  # fmt: skip
        for expiry in (day + timedelta(days=2), day + timedelta(days=9)):
            for strike in STRIKES:
                for kind in ("CE", "PE"):
                    mid = rng.uniform(50, 400, seconds)
                    options.append(pl.DataFrame({
                        "ts": times,
                        "symbol": f"BANKNIFTY{expiry:%d%b}{int(strike)}{kind}",
                        "underlying": "BANKNIFTY",
                        "expiry": expiry,
                        "strike": strike,
                        "opt_type": kind,
                        "bid_price_0": np.round(mid - 0.5, 2),
                        "ask_price_0": np.round(mid + 0.5, 2),
                    }))  # fmt: skip
    spot = pl.DataFrame(spots).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    chain = pl.concat(options).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    return spot, chain


@pytest.fixture
def nse_lake(tmp_path: Path) -> tuple[LakeSession, pl.DataFrame, pl.DataFrame]:
    lake = ticklake.init_lake(tmp_path / "lake")
    spot, chain = nse_frames()
    lake.write("banknifty_spot", spot, schema="prices", timezone="Asia/Kolkata")
    lake.write("banknifty_options", chain, schema="option_snapshots", timezone="Asia/Kolkata")
    lake.bars("banknifty_spot", "1m", out="banknifty_spot_1m")
    result = CliRunner().invoke(app, ["sql", "init", "--examples", "nse", "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    return lake, spot, chain


def oracle_atm(spot: pl.DataFrame, chain: pl.DataFrame) -> pl.DataFrame:
    nearest = chain.group_by("ts").agg(pl.col("expiry").min())
    strikes = chain.join(nearest, on=["ts", "expiry"]).select("ts", "expiry", "strike").unique()
    with_spot = strikes.sort("ts").join_asof(
        spot.select("ts", pl.col("price").alias("spot")).sort("ts"), on="ts", strategy="backward"
    )
    atm = (
        with_spot.with_columns((pl.col("strike") - pl.col("spot")).abs().alias("distance"))
        .sort("ts", "distance", "strike")
        .group_by("ts", maintain_order=True)
        .first()
    )
    quotes = chain.select("ts", "expiry", "strike", "opt_type", "bid_price_0", "ask_price_0")
    for kind in ("ce", "pe"):
        side = (
            quotes.filter(pl.col("opt_type") == kind.upper())
            .drop("opt_type")
            .rename({"bid_price_0": f"{kind}_bid", "ask_price_0": f"{kind}_ask"})
        )
        atm = atm.join(side, on=["ts", "expiry", "strike"], how="left")
    return atm.select(
        "ts", "spot", "expiry", pl.col("strike").alias("atm_strike"),
        "ce_bid", "ce_ask", "pe_bid", "pe_ask",
    ).sort("ts")  # fmt: skip


def test_the_atm_map_matches_polars(
    nse_lake: tuple[LakeSession, pl.DataFrame, pl.DataFrame],
) -> None:
    lake, spot, chain = nse_lake
    results = {r.name: r for r in lake.sql_build(["atm_map"])}
    assert results["atm_map"].days_built == 2
    got = lake.read("gold.atm_map").sort("ts")
    expected = oracle_atm(spot, chain)
    assert got.height == 2 * 600
    assert_frame_equal(got, expected, check_column_order=False, check_dtypes=False)
    tie = got.filter(pl.col("spot") == 47150.0)
    assert tie.height == 4 and set(tie["atm_strike"]) == {47100.0}  # lower strike on a tie


def test_the_opening_window_matches_polars(
    nse_lake: tuple[LakeSession, pl.DataFrame, pl.DataFrame],
) -> None:
    lake, _, _ = nse_lake
    lake.sql_build(["opening_window"])
    got = lake.read("gold.opening_window").sort("ts")
    bars = lake.read("silver.banknifty_spot_1m")
    local = bars.with_columns(
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.time().alias("start"),
        pl.col("ts_end").dt.convert_time_zone("Asia/Kolkata").dt.time().alias("end"),
        pl.col("ts").dt.convert_time_zone("Asia/Kolkata").dt.date().alias("day"),
    ).filter(
        (pl.col("start") >= datetime(2000, 1, 1, 9, 15).time())
        & (pl.col("end") <= datetime(2000, 1, 1, 9, 20).time())
    )
    expected = (
        local.sort("ts").group_by("instrument", "day", maintain_order=True)
        .agg(
            pl.col("ts_end").max().alias("ts"),
            pl.col("open").first(), pl.col("close").last(),
            pl.col("high").max(), pl.col("low").min(),
            # SQL's sum of nothing but nulls is null (prices have no volume), not 0
            pl.when(pl.col("volume").is_not_null().any()).then(pl.col("volume").sum()),
            pl.len().alias("bars"),
        )
        .with_columns((pl.col("close") / pl.col("open") - 1).alias("window_return"))
        .drop("day")
    )  # fmt: skip
    assert expected["bars"].to_list() == [5, 5]
    assert_frame_equal(got, expected, check_column_order=False, check_dtypes=False)


def test_the_crypto_examples_parse_and_plan_against_the_collector_datasets(
    tmp_path: Path,
) -> None:
    lake = ticklake.init_lake(tmp_path / "lake")
    start = datetime(2024, 3, 4, tzinfo=UTC)
    trades = pl.DataFrame({
        "ts": [start + timedelta(seconds=s) for s in (1, 5, 70, 3600)],
        "instrument": "BTCUSDT", "trade_id": ["1", "2", "3", "4"],
        "price": [100.0, 102.0, 101.0, 99.0], "size": [1.0, 3.0, 2.0, 4.0],
    }).with_columns(pl.col("ts").dt.cast_time_unit("ns"))  # fmt: skip
    lake.write("binance_trades", trades, schema="trades")
    quotes = pl.DataFrame({
        "ts": [start + timedelta(seconds=s) for s in (1, 2)], "instrument": "BTCUSDT",
        "seq": [1, 2], "bid_price": [100.0, 100.5], "ask_price": [100.1, 100.5],
    }).with_columns(pl.col("ts").dt.cast_time_unit("ns"))  # fmt: skip
    lake.write("binance_quotes", quotes, schema="quotes")
    lake.bars("binance_trades", "1m", out="bars_1m")
    lake.write("binance_klines_1m", lake.read("silver.bars_1m").head(1), schema="bars")
    for name, schema in (
        ("binance_funding", "funding"),
        ("binance_open_interest", "open_interest"),
    ):
        lake.create_dataset(name, schema)
    # macro bars (ticklake backfill http): the one opening at 01:01 closes after the 01:00
    # crypto bar does, so macro_minute must not show it there
    macro_open = [start + timedelta(minutes=m) for m in (1, 30, 61)]
    macro = pl.DataFrame({
        "ts": macro_open, "ts_end": [t + timedelta(minutes=1) for t in macro_open],
        "instrument": "SPY", "close": [500.0, 501.0, 502.0],
    }).with_columns(pl.col("ts", "ts_end").dt.cast_time_unit("ns"))  # fmt: skip
    lake.write("macro_1m", macro, schema="bars")
    result = CliRunner().invoke(
        app, ["sql", "init", "--examples", "crypto", "--lake", str(lake.root)]
    )
    assert result.exit_code == 0, result.output
    lake.sql_build()
    summary = lake.read("gold.daily_trades_summary")
    assert summary.select("trades", "volume", "open", "high", "low", "close").row(0) == (
        4, 10.0, 100.0, 102.0, 99.0, 99.0,
    )  # fmt: skip
    assert summary["vwap"][0] == pytest.approx((100 + 306 + 202 + 396) / 10)
    spread = lake.read("gold.daily_quotes_summary")
    assert spread["crossed_or_locked"][0] == 1
    assert spread["max_spread_bps"][0] == pytest.approx(0.1 / 100.05 * 1e4)
    with Warehouse(lake).connect() as con:
        rows = con.execute(
            "SELECT missing_kline, differs FROM compare_our_vs_kline_1m ORDER BY ts"
        ).fetchall()
        assert con.execute("SELECT count(*) FROM funding_oi_hourly").fetchone() == (0,)
        macro_rows = con.execute(
            "SELECT strftime(ts, '%H:%M'), macro_instrument, macro_close, macro_age_minutes "
            "FROM macro_minute ORDER BY ts"
        ).fetchall()
    # crypto bars open 00:00, 00:01, 01:00: before SPY's first close, then the 00:01 bar
    # (closing with it at 00:02), then the 00:30 bar (30 min old), never the later 01:01
    assert macro_rows == [
        ("00:00", "SPY", None, None), ("00:01", "SPY", 500.0, 0), ("01:00", "SPY", 501.0, 30),
    ]  # fmt: skip
    minutes = lake.read("silver.bars_1m").height
    assert len(rows) == minutes and rows[0] == (False, False)  # the one kline matches
    assert all(missing for missing, _ in rows[1:])  # every other minute has no kline: shown
