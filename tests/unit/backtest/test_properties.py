"""Properties of the backtest engine and runner on a generated lake.

- No look-ahead: changing any quote or spot value strictly after a time t changes no
  fill, attempt or P&L mark at or before t.
- The serial and process executors write byte-identical outputs.
- Days are independent: a subset of days, or the days run in another order, give the
  same per-day files.
- Re-running an unchanged spec on unchanged data is served from the day cache and gives
  the same outputs.
- Random hand-built chains keep the bookkeeping invariants (every position closes once,
  realized P&L sums to gross, fills only on tradeable quotes, cross fills at bid/ask).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from _engine_fixtures import (
    GENERATED_DAYS,
    HAND_DAY,
    IST,
    OPTIONS,
    SESSION_SECONDS,
    SPOT,
    HandChain,
    copy_lake,
    generated_lake_root,
    hand_spec,
    merge,
    sha256,
    write_hand_lake,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticklake.backtest.engine import DayOutcome, run_day
from ticklake.backtest.runner import DayJob, RunResult, day_task, load_ledger, run_backtest
from ticklake.backtest.spec import StrategySpec, parse_spec
from ticklake.lake import Lake, init_lake, open_lake

__all__ = ["generated_lake_root"]

BASE: dict[str, Any] = {
    "name": "props",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": OPTIONS, "underlying_dataset": SPOT},
    "time": {
        "start": GENERATED_DAYS[0].isoformat(),
        "end": GENERATED_DAYS[-1].isoformat(),
        "entry_windows": ["09:20-09:25", "12:00-12:05"],
        "exit_time": "15:20",
    },
    # A short iron fly, re-targeted every 10 minutes: many fills all day long.
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {"name": "pe", "opt_type": "PE", "side": "sell"},
        {
            "name": "ce_wing",
            "opt_type": "CE",
            "side": "buy",
            "selector": {"kind": "otm", "steps": 2},
        },
        {
            "name": "pe_wing",
            "opt_type": "PE",
            "side": "buy",
            "selector": {"kind": "otm", "steps": 2},
        },
    ],
    "rebalance": {"kind": "every", "minutes": 10},
    "exits": {"stop_loss": {"money": 2500}, "leg_stop_loss": {"pct": 80}},
    "fills": {
        "mode": "mid_slippage",
        "base_ticks": 1,
        "spread_alpha": 0.5,
        "volatility_beta": 0.2,
        "max_quote_age_seconds": 2,
    },
    "max_entries_per_day": 2,
}


def _spec(**overrides: Any) -> StrategySpec:
    return parse_spec(merge(BASE, overrides))


# ------------------------------------------------------------------ no look-ahead
_BASELINE: dict[date, DayOutcome] = {}


def _baseline(lake_root: Path, day: date) -> DayOutcome:
    if day not in _BASELINE:
        _BASELINE[day] = run_day(open_lake(lake_root), _spec(), day, keep_pnl_path=True)
    return _BASELINE[day]


def _perturbed_lake(source: Path, target: Path, day: date, cut: datetime, seed: int) -> Lake:
    """A one-day lake equal to ``source`` up to ``cut`` and randomly different after it."""
    rng = np.random.default_rng(seed)
    part = f"date={day.isoformat()}/data.parquet"
    options = pl.read_parquet(source / "bronze" / OPTIONS / part)
    spot = pl.read_parquet(source / "bronze" / SPOT / part)
    after = options["ts"] > cut
    n = options.height
    factor = rng.uniform(0.3, 2.0, n)
    bid = options["bid_price_0"].to_numpy()
    spread = rng.integers(1, 40, n) * 0.05
    new_bid = np.round(bid * factor * 20) / 20
    new_bid[rng.random(n) < 0.05] = 0.0  # some quotes lose their bid: untradeable
    options = options.with_columns(
        pl.Series("bid_price_0", np.where(after, new_bid, bid)),
        pl.Series(
            "ask_price_0",
            np.where(after, np.round((new_bid + spread) * 20) / 20, options["ask_price_0"]),
        ),
    )
    spot_after = spot["ts"] > cut
    jump = np.round(rng.normal(0, 250, spot.height) * 20) / 20
    spot = spot.with_columns(
        pl.Series("price", np.where(spot_after, spot["price"].to_numpy() + jump, spot["price"]))
    )
    lake = init_lake(target)
    lake.write(OPTIONS, options, schema="option_snapshots", timezone="Asia/Kolkata")
    lake.write(SPOT, spot, schema="prices", timezone="Asia/Kolkata")
    return lake


def _until(frame: pl.DataFrame, cut: datetime) -> pl.DataFrame:
    return frame.filter(pl.col("ts") <= cut)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    day=st.sampled_from(GENERATED_DAYS),
    # From 09:19 to 15:21 IST: before the entry, during the day and after the exit.
    cut_second=st.integers(4 * 60, 6 * 3600 + 6 * 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_no_look_ahead_changes_after_t_leave_everything_before_t(
    generated_lake_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
    day: date,
    cut_second: int,
    seed: int,
) -> None:
    session_start = datetime.combine(day, datetime.min.time()) + timedelta(hours=9, minutes=15)
    cut = (session_start - IST).replace(tzinfo=UTC) + timedelta(seconds=cut_second)
    lake = _perturbed_lake(
        generated_lake_root, tmp_path_factory.mktemp("perturbed"), day, cut, seed
    )
    base = _baseline(generated_lake_root, day)
    changed = run_day(lake, _spec(), day, keep_pnl_path=True)

    assert base.trades.height > 8  # the strategy trades all day: the check has teeth
    before = _until(base.trades, cut)
    assert _until(changed.trades, cut).equals(before)
    assert _until(changed.attempts, cut).equals(_until(base.attempts, cut))
    assert base.pnl_path is not None and changed.pnl_path is not None
    assert np.array_equal(base.pnl_path[: cut_second + 1], changed.pnl_path[: cut_second + 1])


# ------------------------------------------------------------------ runner properties
@pytest.fixture(scope="module")
def serial_run(generated_lake_root: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    lake = copy_lake(generated_lake_root, tmp_path_factory.mktemp("serial") / "lake")
    return run_backtest(lake, _spec(), executor="serial", run_id="serial", use_cache=False)


def _day_hashes(run_dir: Path) -> dict[str, dict[str, str]]:
    return {
        d.name: {f.name: sha256(f) for f in sorted(d.iterdir()) if not f.name.startswith(".")}
        for d in sorted((run_dir / "days").iterdir())
    }


def test_serial_and_process_executors_give_identical_bytes(
    serial_run: RunResult, generated_lake_root: Path, tmp_path: Path
) -> None:
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    process = run_backtest(
        lake, _spec(), executor="process", workers=2, run_id="process", use_cache=False
    )
    assert process.status == serial_run.status == "complete"
    for name in ("trades.parquet", "daily.parquet", "attempts.parquet"):
        assert sha256(process.run_dir / name) == sha256(serial_run.run_dir / name), name
    assert _day_hashes(process.run_dir) == _day_hashes(serial_run.run_dir)
    assert serial_run.trades().height > 20


def test_ledger_records_the_spec_its_hash_and_the_partitions_read(serial_run: RunResult) -> None:
    ledger = load_ledger(serial_run.run_dir)
    assert parse_spec(ledger["spec"]) == _spec()
    body = json.dumps(ledger["spec"], sort_keys=True, separators=(",", ":"))
    assert ledger["spec_hash"] == hashlib.sha256(body.encode()).hexdigest()[:16]
    lake_root = Path(ledger["lake"])
    for day, entry in ledger["days"].items():
        for dataset in (OPTIONS, SPOT):
            data = lake_root / "bronze" / dataset / f"date={day}" / "data.parquet"
            assert entry["inputs"][f"{dataset}/{day}"] == sha256(data)


def test_days_are_independent_of_order_and_subset(
    serial_run: RunResult, generated_lake_root: Path, tmp_path: Path
) -> None:
    full = _day_hashes(serial_run.run_dir)
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    middle = GENERATED_DAYS[1].isoformat()
    subset = run_backtest(
        lake,
        _spec(time={"start": middle, "end": middle}),
        executor="serial",
        run_id="subset",
        use_cache=False,
    )
    assert _day_hashes(subset.run_dir) == {middle: full[middle]}

    # Every day as its own task, last day first, into a new run directory.
    run_dir = lake.root / "runs" / "reversed"
    spec_json = json.dumps(_spec().model_dump(mode="json"), sort_keys=True)
    for day in reversed(GENERATED_DAYS):
        day_task(DayJob(str(lake.root), str(run_dir), spec_json, day.isoformat(), False))
    assert _day_hashes(run_dir) == full


def test_rerun_of_unchanged_spec_uses_the_cache_and_matches(
    generated_lake_root: Path, serial_run: RunResult, tmp_path: Path
) -> None:
    lake = copy_lake(generated_lake_root, tmp_path / "lake")
    first = run_backtest(lake, _spec(), executor="serial", run_id="first")
    second = run_backtest(lake, _spec(), executor="serial", run_id="second")
    first_days, second_days = (
        load_ledger(first.run_dir)["days"],
        load_ledger(second.run_dir)["days"],
    )
    assert [e["cached"] for e in first_days.values()] == [False] * len(GENERATED_DAYS)
    assert [e["cached"] for e in second_days.values()] == [True] * len(GENERATED_DAYS)
    for day, entry in second_days.items():
        assert entry["cache_key"] == first_days[day]["cache_key"]
        assert entry["outputs"] == first_days[day]["outputs"]
    for name in ("trades.parquet", "daily.parquet"):
        assert sha256(second.run_dir / name) == sha256(first.run_dir / name)
        assert sha256(first.run_dir / name) == sha256(serial_run.run_dir / name)
    # A changed spec misses the cache.
    third = run_backtest(lake, _spec(name="props2"), executor="serial", run_id="third")
    assert not any(e["cached"] for e in load_ledger(third.run_dir)["days"].values())


# ------------------------------------------------------------------ bookkeeping
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    gap_fraction=st.sampled_from([0.0, 0.05, 0.3]),
    rebalance=st.sampled_from([None, 1, 3]),
    stop_points=st.sampled_from([None, 15.0, 40.0]),
)
def test_random_chains_keep_the_books_straight(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    gap_fraction: float,
    rebalance: int | None,
    stop_points: float | None,
) -> None:
    rng = np.random.default_rng(seed)
    chain = HandChain()
    spot = 48_000 + np.cumsum(rng.normal(0, 8, SESSION_SECONDS))
    chain.spot[:] = np.round(spot * 20) / 20
    for strike in range(47_600, 48_500, 100):
        for opt_type, sign in (("CE", 1), ("PE", -1)):
            value = np.maximum(sign * (spot - strike), 0) + 150 + rng.normal(0, 5, SESSION_SECONDS)
            bid = np.maximum(np.round(value * 20) / 20, 0.05)
            ask = bid + rng.integers(1, 10, SESSION_SECONDS) * 0.05
            gaps = rng.random(SESSION_SECONDS) < gap_fraction
            bid[gaps] = np.nan
            ask[gaps] = np.nan
            chain.quotes[(strike, opt_type)] = (bid, ask)
    overrides: dict[str, Any] = {"fills": {"max_quote_age_seconds": 1}}
    if rebalance:
        overrides["rebalance"] = {"kind": "every", "minutes": rebalance}
    if stop_points:
        overrides["exits"] = {"leg_stop_loss": {"points": stop_points}}
    lake = write_hand_lake(tmp_path_factory.mktemp("random") / "lake", chain)
    outcome = run_day(lake, hand_spec(**overrides), HAND_DAY)
    trades = outcome.trades
    summary = outcome.summary
    assert summary["gross_pnl_paise"] == trades["cash_flow_paise"].sum()
    assert summary["gross_pnl_paise"] == trades["realized_pnl_paise"].sum()
    assert summary["net_pnl_paise"] == summary["gross_pnl_paise"] - summary["costs_paise"]
    # Each position opens once and closes once, in that order, with opposite sides.
    for _, fills in trades.group_by("position_id", maintain_order=True):
        assert fills.height == 2
        assert fills["side"].to_list() in (["sell", "buy"], ["buy", "sell"])
        assert fills["reason"][0] in ("entry", "rebalance_open")
    # Cross fills trade at the quote's bid or ask, on tradeable quotes only.
    traded = trades.filter(pl.col("reason") != "forced_end_of_day")
    assert (traded["quote_age_seconds"].is_between(0, 1)).all()
    expected = np.where(traded["side"] == "buy", traded["ask_paise"], traded["bid_paise"])
    assert np.array_equal(traded["price_paise"].to_numpy(), expected)
    assert trades["ts"].is_sorted()
