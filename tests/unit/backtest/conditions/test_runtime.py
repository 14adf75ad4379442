"""Conditions in backtests, checked against hand-computed answers and a pandas oracle.

Hand chains (15-minute sessions, quotes set by hand) pin the semantics: entry
conditions read the contract the selector picks at ``t``; exit conditions read the
*held* contract and the position's P&L; a day filter is evaluated one second before the
first entry window. The generated lake runs the issue's example conditions end to end
and compares the first entry with an independent pandas computation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from _engine_fixtures import (  # type: ignore[import-not-found]
    GENERATED_DAYS,
    HAND_DAY,
    OPTIONS,
    SPOT,
    HandChain,
    copy_lake,
    generated_lake_root,  # noqa: F401 - fixture
    hand_spec,
    ist,
    merge,
)

from ticklake.backtest.engine import run_day
from ticklake.backtest.spec import parse_spec
from ticklake.lake import init_lake

LOT = 15


def _hand_lake(
    root: Path, chain: HandChain, last_prices: dict[tuple[int, str], list[tuple[str, float]]]
) -> Any:
    """Write the chain with ``last_price`` (piecewise from HH:MM:SS) and a cumulative volume."""
    frame = chain.option_frame()
    local = frame["ts"].dt.convert_time_zone("Asia/Kolkata").dt.strftime("%H:%M:%S")
    last = pl.Series("last_price", [None] * frame.height, dtype=pl.Float64)
    values = []
    for key, clock, strike, opt_type in zip(
        range(frame.height), local, frame["strike"], frame["opt_type"], strict=True
    ):
        del key
        steps = last_prices.get((int(strike), opt_type), [])
        value = None
        for start, price in steps:
            if clock >= start:
                value = price
        values.append(value)
    last = pl.Series("last_price", values, dtype=pl.Float64)
    frame = frame.with_columns(
        last, pl.int_range(pl.len()).over("symbol").cast(pl.Int64).alias("volume")
    )
    lake = init_lake(root)
    lake.write(OPTIONS, frame, schema="option_snapshots", timezone="Asia/Kolkata")
    lake.write(SPOT, chain.spot_frame(), schema="prices", timezone="Asia/Kolkata")
    return lake


def _straddle_chain() -> HandChain:
    chain = HandChain()
    chain.set_spot("09:15:00", 48000.0)
    for strike in (47900, 48000, 48100):
        chain.contract(strike, "CE", 100, 101)
        chain.contract(strike, "PE", 90, 91)
    return chain


def test_exit_on_position_pnl_closes_everything_at_the_first_second_it_holds(
    tmp_path: Path,
) -> None:
    chain = _straddle_chain()
    chain.set_quote(48000, "CE", "09:18:00", 130, 131)
    lake = _hand_lake(tmp_path / "lake", chain, {})
    # Sold at the bids (100 + 90); marks are the asks (101, 91): P&L = -2 x 15 = -30 ₹.
    # From 09:18:00 the CE ask is 131: P&L = (100 - 131 + 90 - 91) x 15 = -480 ₹.
    fired = run_day(lake, hand_spec(exits={"when": "position.pnl < -400"}), HAND_DAY)
    closes = fired.trades.filter(pl.col("side") == "buy")
    assert closes["reason"].to_list() == ["exit_condition", "exit_condition"]
    assert closes["ts"].to_list() == [ist("09:18:00")] * 2
    assert sorted(closes["price_paise"].to_list()) == [9100, 13100]
    assert fired.summary["gross_pnl_paise"] == -48_000
    held = run_day(lake, hand_spec(exits={"when": "position.pnl < -500"}), HAND_DAY)
    assert held.trades.filter(pl.col("side") == "buy")["reason"].unique().to_list() == ["exit_time"]
    drawdown = run_day(lake, hand_spec(exits={"when": "position.drawdown >= 450"}), HAND_DAY)
    # The peak is 0 (the running peak starts at zero): the drawdown is 480 ₹ at 09:18:00.
    assert drawdown.trades.filter(pl.col("side") == "buy")["ts"].to_list() == [ist("09:18:00")] * 2


def test_time_in_trade_exits_the_second_it_is_reached_and_counts_each_entry(
    tmp_path: Path,
) -> None:
    lake = _hand_lake(tmp_path / "lake", _straddle_chain(), {})
    # Entry at 09:16:00 (the window's first second, quotes everywhere): 7 minutes = 420 s
    # later is 09:23:00; at 09:22:59 only 6.98 minutes have passed.
    spec = hand_spec(exits={"when": "position.minutes_in_trade >= 7"})
    result = run_day(lake, spec, HAND_DAY)
    entries = result.trades.filter(pl.col("side") == "sell")
    closes = result.trades.filter(pl.col("side") == "buy")
    assert entries["ts"].to_list() == [ist("09:16:00")] * 2
    assert closes["reason"].to_list() == ["exit_condition"] * 2
    assert closes["ts"].to_list() == [ist("09:23:00")] * 2
    # In seconds, and per entry: a second entry (max 2 a day, window to 09:20) starts its
    # own clock at 09:16:31 (the second after the first exit at 09:16:30).
    again = hand_spec(exits={"when": "position.seconds_in_trade > 29"}, max_entries_per_day=2)
    twice = run_day(lake, again, HAND_DAY).trades
    assert twice.filter(pl.col("side") == "sell")["ts"].unique().sort().to_list() == [
        ist("09:16:00"),
        ist("09:16:31"),
    ]
    assert twice.filter(pl.col("side") == "buy")["ts"].unique().sort().to_list() == [
        ist("09:16:30"),
        ist("09:17:01"),
    ]
    # Crossing needs the previous second of the same entry: 29 -> 30 s crosses 29.5.
    crossing = hand_spec(exits={"when": "position.seconds_in_trade crosses_above 29.5"})
    closes = run_day(lake, crossing, HAND_DAY).trades.filter(pl.col("side") == "buy")
    assert closes["ts"].to_list() == [ist("09:16:30")] * 2


def test_exit_conditions_read_the_held_contract_and_entries_the_selected_one(
    tmp_path: Path,
) -> None:
    chain = _straddle_chain()
    chain.set_spot("09:17:00", 48100.0)  # ATM moves to 48100 after the 09:16:00 entry
    last = {
        (48000, "CE"): [("09:15:00", 100.0), ("09:19:00", 125.0)],  # held: crosses at 09:19
        (48100, "CE"): [("09:15:00", 110.0), ("09:18:00", 130.0)],  # selected: at 09:18
    }
    lake = _hand_lake(tmp_path / "lake", chain, last)
    outcome = run_day(lake, hand_spec(exits={"when": "ce.ltp crosses_above 120"}), HAND_DAY)
    entries = outcome.trades.filter(pl.col("reason") == "entry")
    assert entries["ts"].to_list() == [ist("09:16:00")] * 2
    assert entries.filter(pl.col("leg") == "ce")["strike"].item() == 48000.0
    closes = outcome.trades.filter(pl.col("side") == "buy")
    assert closes["reason"].to_list() == ["exit_condition"] * 2
    assert closes["ts"].to_list() == [ist("09:19:00")] * 2

    # Entry condition: ATM at t. 48000 CE trades at 100 (< 120) until the spot moves at
    # 09:17:00; then the ATM call is 48100 with 110 until 09:18:00, 130 after.
    entry = run_day(lake, hand_spec(entry={"when": "ce.ltp > 120"}), HAND_DAY)
    first = entry.trades.filter(pl.col("reason") == "entry")
    assert first["ts"].to_list() == [ist("09:18:00")] * 2
    assert first.filter(pl.col("leg") == "ce")["strike"].item() == 48100.0
    never = run_day(lake, hand_spec(entry={"when": "ce.ltp > 130"}), HAND_DAY)
    assert never.summary["status"] == "no_trade"
    assert never.summary["skip_reason"] == "no entry: entry.when never held in the entry windows"


def test_crossings_need_the_relation_to_change_between_two_seconds(tmp_path: Path) -> None:
    chain = _straddle_chain()
    last = {(48000, "CE"): [("09:15:00", 130.0), ("09:16:30", 110.0), ("09:17:10", 125.0)]}
    lake = _hand_lake(tmp_path / "lake", chain, last)
    # Above 120 from the start: no crossing until it falls below and comes back at 09:17:10.
    outcome = run_day(lake, hand_spec(entry={"when": "ce.ltp crosses_above 120"}), HAND_DAY)
    assert (
        outcome.trades.filter(pl.col("reason") == "entry")["ts"].to_list() == [ist("09:17:10")] * 2
    )
    below = run_day(lake, hand_spec(entry={"when": "ce.ltp crosses_below 120"}), HAND_DAY)
    assert below.trades.filter(pl.col("reason") == "entry")["ts"].to_list() == [ist("09:16:30")] * 2


def test_day_filter_is_evaluated_one_second_before_the_first_entry_window(tmp_path: Path) -> None:
    chain = _straddle_chain()
    chain.set_spot("09:16:00", 47900.0)  # after the filter's second 09:15:59
    lake = _hand_lake(tmp_path / "lake", chain, {})
    previous = HandChain(day=date(2024, 1, 5))
    previous.set_spot("09:15:00", 47500.0)
    previous.set_spot("09:29:00", 47950.0)  # the previous close
    lake.write(SPOT, previous.spot_frame(), schema="prices", timezone="Asia/Kolkata")
    # At 09:15:59 the spot is 48000 > 47950: trade (the 47900 at 09:16:00 is not seen).
    traded = run_day(lake, hand_spec(day_filter="ltp > previous_close"), HAND_DAY)
    assert traded.summary["status"] == "traded"
    skipped = run_day(lake, hand_spec(day_filter="ltp > previous_close + 100"), HAND_DAY)
    assert (skipped.summary["status"], skipped.summary["skip_reason"]) == (
        "skipped",
        "day_filter false",
    )
    moved = merge({"time": {"entry_windows": ["09:17-09:20"]}}, {})
    late = run_day(lake, hand_spec(day_filter="ltp > previous_close", **moved), HAND_DAY)
    assert late.summary["skip_reason"] == "day_filter false"  # 09:16:59 sees 47900 < 47950


def test_day_filter_without_history_is_unknown_and_skips(tmp_path: Path) -> None:
    lake = _hand_lake(tmp_path / "lake", _straddle_chain(), {})
    outcome = run_day(lake, hand_spec(day_filter="open_of_day > previous_close"), HAND_DAY)
    assert outcome.summary["skip_reason"] == "day_filter unknown (missing data)"


# ---------------------------------------------------------------------- generated lake
ISSUE_ATM = "ce.volume_1m > ce.volume_2m / 2 and ema(1) > ema(5) and ce.ltp > ce.open_of_day"


def _generated_spec(**overrides: Any) -> Any:
    base = {
        "name": "gen",
        "universe": {
            "underlying": "BANKNIFTY",
            "options_dataset": OPTIONS,
            "underlying_dataset": SPOT,
        },
        "time": {
            "start": "2024-01-08",
            "end": "2024-01-10",
            "entry_windows": ["09:20-15:00"],
            "exit_time": "15:20",
        },
        "legs": [
            {"name": "ce", "opt_type": "CE", "side": "sell"},
            {"name": "pe", "opt_type": "PE", "side": "sell"},
        ],
    }
    return parse_spec(merge(base, overrides))


def _grid(day: date) -> pd.DatetimeIndex:
    start = datetime(day.year, day.month, day.day, 3, 45, tzinfo=UTC)  # 09:15 IST
    return pd.date_range(start, periods=22_500, freq="1s")


def _asof(rows: pd.DataFrame, grid: pd.DatetimeIndex, column: str) -> np.ndarray:
    right = rows[["ts", column]].sort_values("ts")
    right = right.assign(ts=right["ts"].astype("datetime64[ns, UTC]"))
    merged = pd.merge_asof(
        pd.DataFrame({"g": grid.astype("datetime64[ns, UTC]")}),
        right,
        left_on="g",
        right_on="ts",
        direction="backward",
        tolerance=pd.Timedelta(seconds=5),
    )
    return merged[column].to_numpy(dtype=float)


def _oracle_first_entry(root: Path, day: date) -> datetime | None:
    """The issue's condition in plain pandas: first second of 09:20-15:00 where it holds."""
    grid = _grid(day)
    spot_rows = pd.read_parquet(next((root / "bronze" / SPOT).glob(f"date={day}/data.parquet")))
    spot = _asof(spot_rows, grid, "price")
    ema1 = pd.Series(spot).ewm(span=60, adjust=False).mean().to_numpy()
    ema5 = pd.Series(spot).ewm(span=300, adjust=False).mean().to_numpy()
    options = pd.read_parquet(next((root / "bronze" / OPTIONS).glob(f"date={day}/data.parquet")))
    expiry = min(e for e in options["expiry"].unique() if pd.Timestamp(e).date() >= day)
    calls = options[(options["opt_type"] == "CE") & (options["expiry"] == expiry)]
    spot_paise = np.rint(spot * 100).astype(np.int64)
    atm = (spot_paise + 5_000) // 10_000 * 100  # strike step 100, half rounds up
    start, end = 5 * 60, 5 * 60 + int(timedelta(hours=5, minutes=40).total_seconds())
    by_strike: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for strike, rows in calls.groupby("strike"):
        last = _asof(rows, grid, "last_price")
        cumulative = _asof(rows, grid, "volume")
        per_second = np.clip(
            cumulative - np.concatenate([[0.0], np.nan_to_num(cumulative[:-1])]), 0, None
        )
        by_strike[float(strike)] = (last, per_second)
    for t in range(start, end):
        found = by_strike.get(float(atm[t]))
        if found is None:
            continue
        last, per_second = found
        opened = last[~np.isnan(last)]
        if not opened.size:
            continue
        open_of_day = opened[0]
        volume_1m = np.nansum(per_second[max(t - 59, 0) : t + 1])
        volume_2m = np.nansum(per_second[max(t - 119, 0) : t + 1])
        if (
            volume_1m > volume_2m / 2
            and ema1[t] > ema5[t]
            and not np.isnan(last[t])
            and last[t] > open_of_day
        ):
            return grid[t].to_pydatetime()
    return None


@pytest.mark.parametrize("day", GENERATED_DAYS[1:])
def test_issue_condition_on_the_atm_leg_matches_a_pandas_oracle(
    generated_lake_root: Path,  # noqa: F811
    tmp_path: Path,
    day: date,
) -> None:
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    outcome = run_day(lake, _generated_spec(entry={"when": ISSUE_ATM}), day)
    expected = _oracle_first_entry(generated_lake_root, day)
    assert expected is not None, "the generated day should contain an entry"
    entries = outcome.trades.filter(pl.col("reason") == "entry")
    assert entries["ts"].to_list() == [expected] * 2


def test_the_three_issue_examples_run_end_to_end(
    generated_lake_root: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    json_tree = {
        "left": {"metric": "ema", "args": {"n": 5, "field": "price"}, "of": "leg:ce"},
        "op": ">",
        "right": {"metric": "ltp", "of": "leg:ce"},
    }
    text = "volume_1m > volume_2m and ema(1) > ema(5) and ltp > open_of_day"
    day = GENERATED_DAYS[1]
    with_json = run_day(lake, _generated_spec(entry={"when": json_tree}), day)
    assert with_json.summary["status"] == "traded"
    # The index has no volume: volume_1m = volume_2m = 0 and '>' never holds (and for
    # any volume a 1-minute sum cannot exceed the 2-minute sum that contains it).
    underlying = run_day(lake, _generated_spec(entry={"when": text}), day)
    assert underlying.summary["status"] == "no_trade"
    gap = run_day(
        lake,
        _generated_spec(
            day_filter="open_of_day > previous_close", exits={"when": "position.pnl < -1500"}
        ),
        day,
    )
    days = sorted((generated_lake_root / "bronze" / SPOT).glob("date=*/data.parquet"))
    previous_close = pl.read_parquet(days[0]).sort("ts")["price"][-1]
    today_open = pl.read_parquet(days[1]).sort("ts")["price"][0]
    assert (gap.summary["status"] != "skipped") == (today_open > previous_close)
