"""Every shipped strategy template parses, checks, runs on generated data, and does what
its description promises (checked against the raw lake files with numpy, not against
the engine's own numbers)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from ticklake.backtest.spec import load_spec
from ticklake.backtest.sweep import expand, load_sweep
from ticklake.cli import app
from ticklake.market.nse_symbols import parse_symbol
from ticklake.strategies import template_data, template_info, template_names, template_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _strategies_lake import DAYS, EXPIRY  # type: ignore[import-not-found]

IST = ZoneInfo("Asia/Kolkata")
SESSION_SECONDS = 22_500  # 09:15:00-15:29:59
STRIKE_STEP = 100.0  # BANKNIFTY strike interval
FRIDAY, MONDAY, TUESDAY, WEDNESDAY = DAYS

# The ten templates of the issue (the opening-range breakout is a call/put pair) and the
# two older ones. A new template fails the run test until it is given a day here.
TRADING_DAY: dict[str, tuple[date, date]] = {
    "atm_straddle_hourly": (MONDAY, MONDAY),
    "otm_strangle_distance_sweep": (MONDAY, MONDAY),
    "volume_ema_momentum": (MONDAY, MONDAY),
    "opening_range_breakout_call": (MONDAY, TUESDAY),
    "opening_range_breakout_put": (MONDAY, TUESDAY),
    "spread_contraction_scalp": (WEDNESDAY, WEDNESDAY),
    "monday_gap_fade": (FRIDAY, MONDAY),
    "expiry_day_decay_seller": (FRIDAY, WEDNESDAY),
    "iron_fly_wing_sweep": (MONDAY, MONDAY),
    "hourly_rolling_straddle": (WEDNESDAY, WEDNESDAY),
    "volatility_filtered_strangle": (MONDAY, TUESDAY),
    "otm_strangle_stop_loss": (MONDAY, MONDAY),
    "iron_fly": (MONDAY, MONDAY),
}
#: Two values of each sweep axis keep the sweep runs fast.
SWEEP_SUBSET = {"otm_strangle_distance_sweep": [1, 2], "iron_fly_wing_sweep": [2, 3]}


# ----------------------------------------------------------------------- oracles
def _session_start(day: date) -> datetime:
    return datetime.combine(day, time(9, 15), tzinfo=IST).astimezone(UTC)


def _second(ts: datetime, day: date) -> int:
    return int((ts - _session_start(day)).total_seconds())


def _raw(root: Path, dataset: str, day: date) -> pl.DataFrame:
    return pl.read_parquet(root / "bronze" / dataset / f"date={day}" / "data.parquet")


def spot_grid(root: Path, day: date, tolerance_seconds: int = 5) -> np.ndarray:
    """The index on the 1 s grid from the raw file: last row at or before, ≤ 5 s old."""
    rows = _raw(root, "banknifty_spot", day).sort("ts")
    row_seconds = (rows["ts"].dt.epoch("ns").to_numpy() - _ns(_session_start(day))) / 1e9
    grid = np.arange(SESSION_SECONDS)
    index = np.searchsorted(row_seconds, grid, side="right") - 1
    prices = rows["price"].to_numpy()[np.clip(index, 0, None)]
    stale = (index < 0) | (grid - row_seconds[np.clip(index, 0, None)] > tolerance_seconds)
    return np.where(stale, np.nan, prices)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


def realized_volatility_5m(prices: np.ndarray) -> np.ndarray:
    """Annualised 5-minute realised volatility per grid second (cumulative sums)."""
    squared = np.concatenate([[0.0], np.log(prices[1:] / prices[:-1]) ** 2])
    counted = np.concatenate([[0.0], np.ones(prices.size - 1)])
    squared_sum, seconds = np.cumsum(squared), np.cumsum(counted)
    out = np.full(prices.size, np.nan)
    for t in range(1, prices.size):
        low = t - 300
        window_squared = squared_sum[t] - (squared_sum[low] if low >= 0 else 0.0)
        window_seconds = seconds[t] - (seconds[low] if low >= 0 else 0.0)
        out[t] = np.sqrt(window_squared / window_seconds * 252 * 22_500)
    return out


def _volume_at(rows: pl.DataFrame, moment: datetime) -> int:
    """A contract's cumulative day volume as of ``moment`` (its last row at or before)."""
    return int(rows.filter(pl.col("ts") <= moment)["volume"][-1])


def _trades(run: Any) -> pl.DataFrame:
    return pl.read_parquet(run.run_dir / "trades.parquet")


def _daily(run: Any) -> dict[date, dict[str, Any]]:
    return {row["date"]: row for row in pl.read_parquet(run.run_dir / "daily.parquet").to_dicts()}


# ----------------------------------------------------------------------- every template
def test_the_issue_templates_are_all_shipped() -> None:
    assert sorted(TRADING_DAY) == template_names()


@pytest.mark.parametrize("name", template_names())
def test_template_parses_with_a_one_paragraph_description(name: str) -> None:
    path = template_path(name)
    data = template_data(name)
    assert data["name"] == name, "the template's name: must equal its file name"
    description = data["description"]
    assert len(description.split()) >= 20 and "\n\n" not in description.strip()
    assert data["universe"]["options_dataset"] == "banknifty_options"
    assert data["universe"]["underlying_dataset"] == "banknifty_spot"
    sweep = load_sweep(path)
    if sweep is None:
        spec = load_spec(path)
    else:
        assert sweep.axes == template_info(name).sweep_axes
        variants = expand(sweep)
        assert len(variants) == sweep.grid_size
        spec = variants[0].spec
    assert spec.name == name


@pytest.mark.parametrize("name", template_names())
def test_backtest_check_accepts_template(name: str) -> None:
    result = CliRunner().invoke(app, ["backtest", "check", str(template_path(name))])
    assert result.exit_code == 0, result.output
    data = template_data(name)
    conditions = [data.get("day_filter"), data.get("entry", {}).get("when")]
    conditions.append(data.get("exits", {}).get("when"))
    if any(conditions):
        assert "condition:" in result.output  # the compiled plans are printed
    else:
        assert "no conditions" in result.output


@pytest.mark.parametrize("name", template_names())
def test_template_runs_to_a_complete_run(name: str, run_template: Callable[..., Any]) -> None:
    start, end = TRADING_DAY[name]
    subset = SWEEP_SUBSET.get(name)
    axes = {next(iter(template_info(name).sweep_axes)): subset} if subset else None
    run = run_template(name, start, end, axes=axes)
    assert run.status == "complete"
    ledger = json.loads((run.run_dir / "run.json").read_text())
    expected_days = {d.isoformat() for d in DAYS if start <= d <= end}
    assert set(ledger["days"]) == expected_days
    assert all(entry["status"] in ("done", "skipped") for entry in ledger["days"].values())
    daily = pl.read_parquet(run.run_dir / "daily.parquet")
    variants = len(subset) if subset else 1
    assert daily.height == len(expected_days) * variants
    # On its chosen days every template (every variant) trades on the generated data.
    traded = daily.filter(pl.col("status") == "traded")
    assert traded.height >= variants
    trades = _trades(run)
    assert trades.height > 0
    # Every position opened is closed the same day.
    per_position = trades.group_by("date", "position_id", *(["variant"] if subset else []))
    assert (per_position.len()["len"] == 2).all()


# ----------------------------------------------------------------------- behaviour
def test_otm_strangle_sweep_places_legs_distance_strikes_apart(
    run_template: Callable[..., Any],
) -> None:
    run = run_template("otm_strangle_distance_sweep", MONDAY, MONDAY, axes={"distance": [1, 2]})
    entries = _trades(run).filter(pl.col("reason") == "entry")
    for variant, distance in enumerate((1, 2)):
        rows = entries.filter(pl.col("variant") == variant)
        call = rows.filter(pl.col("opt_type") == "CE")["strike"].item()
        put = rows.filter(pl.col("opt_type") == "PE")["strike"].item()
        spot = rows["spot_paise"][0] / 100
        atm = round(spot / STRIKE_STEP) * STRIKE_STEP
        assert (call, put) == (atm + distance * STRIKE_STEP, atm - distance * STRIKE_STEP)


def test_iron_fly_sweep_buys_wings_wing_strikes_out(run_template: Callable[..., Any]) -> None:
    run = run_template("iron_fly_wing_sweep", MONDAY, MONDAY, axes={"wing": [2, 3]})
    entries = _trades(run).filter(pl.col("reason") == "entry")
    for variant, wing in enumerate((2, 3)):
        strikes = dict(
            entries.filter(pl.col("variant") == variant).select("leg", "strike").iter_rows()
        )
        assert strikes["short_ce"] == strikes["short_pe"]
        assert strikes["long_ce"] - strikes["short_ce"] == wing * STRIKE_STEP
        assert strikes["short_pe"] - strikes["long_pe"] == wing * STRIKE_STEP


@pytest.mark.parametrize(
    ("name", "direction"), [("opening_range_breakout_call", 1), ("opening_range_breakout_put", -1)]
)
def test_breakout_enters_only_at_the_first_cross_after_the_opening_range(
    name: str, direction: int, run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    run = run_template(name, MONDAY, TUESDAY)
    trades = _trades(run)
    window_end = 17_100  # 14:00:00
    traded_days = 0
    for day in (MONDAY, TUESDAY):
        prices = spot_grid(strategies_lake.root, day)
        high, low = np.nanmax(prices[:900]), np.nanmin(prices[:900])  # 09:15:00-09:29:59
        level = high if direction > 0 else low
        beyond = direction * prices > direction * level
        # The range is known from 09:30:00, so the first possible cross is 09:30:01.
        crosses = [t for t in range(901, window_end) if beyond[t] and not beyond[t - 1]]
        day_trades = trades.filter(pl.col("date") == day).sort("ts")
        if not crosses:
            assert day_trades.is_empty()
            continue
        traded_days += 1
        entry, exit_ = day_trades.row(0, named=True), day_trades.row(1, named=True)
        assert entry["reason"] == "entry"
        assert _second(entry["ts"], day) == crosses[0]
        assert entry["opt_type"] == ("CE" if direction > 0 else "PE")
        assert entry["strike"] == round(prices[crosses[0]] / STRIKE_STEP) * STRIKE_STEP
        # A failed breakout (back across the middle of the range) closes the trade.
        middle = (high + low) / 2
        back = direction * prices < direction * middle
        entered, exited = _second(entry["ts"], day), _second(exit_["ts"], day)
        assert not back[entered + 1 : exited].any()
        if exit_["reason"] == "exit_condition":
            assert back[exited]
        else:
            assert exit_["reason"] in ("leg_stop", "leg_target", "exit_time")
    assert traded_days == 1  # each direction breaks out on exactly one of the two days


def test_breakout_waits_for_a_new_cross_when_the_window_opens_above_the_range(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    prices = spot_grid(strategies_lake.root, TUESDAY)
    above = prices > np.nanmax(prices[:900])
    # A whole minute at which the index is already above the range high (and was the
    # second before): an entry window opening there must not enter at its first second.
    opening = next(t for t in range(960, 17_000, 60) if above[t] and above[t - 1])
    clock = (datetime(2024, 1, 1, 9, 15) + timedelta(seconds=opening)).strftime("%H:%M")
    run = run_template(
        "opening_range_breakout_call",
        TUESDAY,
        TUESDAY,
        {"time.entry_windows": [f"{clock}-14:00"]},
    )
    entries = _trades(run).filter(pl.col("reason") == "entry")
    crosses = [t for t in range(opening, 17_100) if above[t] and not above[t - 1]]
    assert [_second(ts, TUESDAY) for ts in entries["ts"]] == crosses[:1]
    assert crosses[:1] != [opening]


def test_monday_gap_fade_trades_only_gapped_mondays(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    friday_close = spot_grid(strategies_lake.root, FRIDAY)[-1]
    monday_open = spot_grid(strategies_lake.root, MONDAY)[0]
    gap = monday_open / friday_close - 1
    assert abs(gap) > 0.003  # this generated weekend gaps by about -0.7 %
    daily = _daily(run_template("monday_gap_fade", FRIDAY, MONDAY))
    assert daily[FRIDAY]["skip_reason"] == "weekday fri not selected"
    assert daily[MONDAY]["status"] == "traded"
    trades = _trades(run_template("monday_gap_fade", FRIDAY, MONDAY))
    assert {d.weekday() for d in trades["date"]} == {0}
    # A filter asking for a larger gap than the day's skips the Monday.
    threshold = round(abs(gap) + 0.001, 4)
    stricter = (
        f"open_of_day > previous_close * {1 + threshold} or "
        f"open_of_day < previous_close * {1 - threshold}"
    )
    daily = _daily(run_template("monday_gap_fade", MONDAY, MONDAY, {"day_filter": stricter}))
    assert daily[MONDAY]["status"] == "skipped"
    assert daily[MONDAY]["skip_reason"] == "day_filter false"


def _nearest_expiry_by_symbol(root: Path, day: date) -> date:
    """The nearest expiry among the day's raw contracts, read from their NSE symbols."""
    symbols = _raw(root, "banknifty_options", day)["symbol"].unique().to_list()
    return min(parse_symbol(symbol).expiry for symbol in symbols)


def test_expiry_day_seller_trades_only_on_the_expiry_day(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    expiries = {day: _nearest_expiry_by_symbol(strategies_lake.root, day) for day in DAYS}
    assert expiries == dict.fromkeys(DAYS, EXPIRY)
    run = run_template("expiry_day_decay_seller", FRIDAY, WEDNESDAY)
    daily = _daily(run)
    for day in DAYS:
        if day == expiries[day]:
            assert daily[day]["status"] == "traded", day
        else:
            assert daily[day]["status"] == "skipped", day
            assert daily[day]["skip_reason"] == "day_filter false", day
    trades = _trades(run)
    assert set(trades["date"]) == {EXPIRY} and set(trades["expiry"]) == {EXPIRY}
    entry_seconds = {_second(ts, EXPIRY) for ts in trades.filter(pl.col("reason") == "entry")["ts"]}
    assert entry_seconds == {900}  # 09:30:00, the window's first second


def test_trading_days_to_expiry_skips_the_weekend(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    # Friday 2024-01-05 -> Wednesday 2024-01-10: 5 calendar days, but only the sessions
    # of Mon 8, Tue 9 and Wed 10 (no holiday that week): 3 trading days; Monday has 2.
    assert _nearest_expiry_by_symbol(strategies_lake.root, FRIDAY) == EXPIRY
    three_sessions = {"day_filter": "ce.trading_days_to_expiry == 3 and ce.days_to_expiry == 5"}
    daily = _daily(run_template("expiry_day_decay_seller", FRIDAY, MONDAY, three_sessions))
    assert daily[FRIDAY]["status"] == "traded"
    assert daily[MONDAY]["status"] == "skipped"
    assert daily[MONDAY]["skip_reason"] == "day_filter false"


def test_volatility_filter_enters_at_the_first_second_above_the_threshold(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    run = run_template("volatility_filtered_strangle", MONDAY, TUESDAY)
    trades = _trades(run)
    window = range(2_700, 13_500)  # 10:00:00-12:59:59
    for day in (MONDAY, TUESDAY):
        volatility = realized_volatility_5m(spot_grid(strategies_lake.root, day))
        above = [t for t in window if volatility[t] > 0.18]
        entries = trades.filter((pl.col("date") == day) & (pl.col("reason") == "entry"))
        if above:
            assert {_second(ts, day) for ts in entries["ts"]} == {above[0]}
        else:
            assert entries.is_empty()
    assert set(trades["date"]) == {MONDAY}  # Tuesday stays below 18 % in the window


def test_volatility_filter_blocks_entries_above_the_days_realised_volatility(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    volatility = realized_volatility_5m(spot_grid(strategies_lake.root, MONDAY))
    ceiling = float(np.nanmax(volatility[2_700:13_500]))
    threshold = round(ceiling + 0.001, 4)
    run = run_template(
        "volatility_filtered_strangle",
        MONDAY,
        MONDAY,
        {"entry.when": f"realized_volatility(5) > {threshold}"},
    )
    daily = _daily(run)
    assert daily[MONDAY]["status"] == "no_trade"
    assert daily[MONDAY]["skip_reason"] == "no entry: entry.when never held in the entry windows"
    assert _trades(run).is_empty()


def test_scalp_enters_on_tight_spreads_with_volume_and_exits_on_points(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    run = run_template("spread_contraction_scalp", WEDNESDAY, WEDNESDAY)
    trades = _trades(run).sort("ts", "fill_index")
    raw = _raw(strategies_lake.root, "banknifty_options", WEDNESDAY).sort("ts")
    entries = trades.filter(pl.col("reason") == "entry")
    assert 1 <= entries.height <= 10  # max_entries_per_day
    for entry in entries.iter_rows(named=True):
        rows = raw.filter((pl.col("symbol") == entry["symbol"]) & (pl.col("ts") <= entry["ts"]))
        quote = rows.row(-1, named=True)
        assert quote["ask_price_0"] - quote["bid_price_0"] <= 0.10 + 1e-9
        minute_ago = rows.filter(pl.col("ts") <= entry["ts"] - timedelta(seconds=60))
        before = minute_ago["volume"][-1] if minute_ago.height else 0
        assert quote["volume"] - before >= 500
        assert entry["price_paise"] == round(quote["ask_price_0"] * 100)  # crossed the spread
    for position in trades.partition_by("position_id"):
        opened, closed = position.row(0, named=True), position.row(1, named=True)
        move = closed["price_paise"] - opened["price_paise"]
        if closed["reason"] == "leg_target":
            assert move >= 600
        elif closed["reason"] == "leg_stop":
            assert move <= -400
        else:
            assert closed["reason"] == "exit_time"
            assert -400 < move < 600


def test_hourly_rolling_straddle_opens_only_in_hourly_windows(
    run_template: Callable[..., Any],
) -> None:
    trades = _trades(run_template("hourly_rolling_straddle", WEDNESDAY, WEDNESDAY))
    entries = trades.filter(pl.col("reason") == "entry")
    seconds = sorted({_second(ts, WEDNESDAY) for ts in entries["ts"]})
    assert len(seconds) > 1  # more than one straddle on the expiry day
    # Windows HH:20-HH:25 for HH = 09..14: 300 s starting 300 s + k hours after 09:15.
    assert all((s - 300) % 3600 < 300 and s < 5 * 3600 + 600 for s in seconds)
    for straddle in entries.partition_by("ts"):
        assert sorted(straddle["opt_type"]) == ["CE", "PE"]
        assert straddle["strike"].n_unique() == 1
    closes = trades.filter(pl.col("side") == "buy")
    assert set(closes["reason"]) <= {"target", "stop_loss", "exit_time"}
    # A straddle is closed as a whole before the next one opens.
    ordered = trades.sort("ts", "fill_index")
    open_legs = 0
    for row in ordered.iter_rows(named=True):
        if row["reason"] == "entry":
            assert open_legs in (0, 1)
            open_legs += 1
        else:
            open_legs -= 1
    assert open_legs == 0


def test_volume_momentum_enters_on_the_calls_accelerating_volume(
    run_template: Callable[..., Any], strategies_lake: Any
) -> None:
    # The index has no volume, so the template reads the ATM call's: the last minute's
    # volume above the minute before's, and the call above its own first price of the day.
    assert "ce.volume_1m > ce.volume_2m / 2" in str(template_data("volume_ema_momentum")["entry"])
    run = run_template("volume_ema_momentum", MONDAY, MONDAY)
    raw = _raw(strategies_lake.root, "banknifty_options", MONDAY).sort("ts")
    entries = _trades(run).filter(pl.col("reason") == "entry")
    assert 1 <= entries.height <= 3  # max_entries_per_day
    for entry in entries.iter_rows(named=True):
        rows = raw.filter(pl.col("symbol") == entry["symbol"])
        now, minute = entry["ts"], timedelta(seconds=60)
        last_minute = _volume_at(rows, now) - _volume_at(rows, now - minute)
        minute_before = _volume_at(rows, now - minute) - _volume_at(rows, now - 2 * minute)
        assert last_minute > minute_before
        last_price = rows.filter(pl.col("ts") <= entry["ts"])["last_price"][-1]
        assert last_price > rows["last_price"].drop_nulls()[0]


def test_minutes_in_trade_exits_45_minutes_after_a_0930_entry(
    run_template: Callable[..., Any],
) -> None:
    # Entry at 09:30:00; 45 minutes = 2,700 s later is 10:15:00 (at 10:14:59 only
    # 44.98 minutes have passed). The 40 % stop is removed so only the clock exits.
    overrides = {"exits": {"when": "position.minutes_in_trade >= 45"}}
    trades = _trades(run_template("expiry_day_decay_seller", WEDNESDAY, WEDNESDAY, overrides))
    entries = trades.filter(pl.col("reason") == "entry")
    closes = trades.filter(pl.col("reason") != "entry")
    assert {_second(ts, EXPIRY) for ts in entries["ts"]} == {900}  # 09:30:00
    assert closes["reason"].to_list() == ["exit_condition"] * 2
    assert {_second(ts, EXPIRY) for ts in closes["ts"]} == {900 + 45 * 60}  # 10:15:00
