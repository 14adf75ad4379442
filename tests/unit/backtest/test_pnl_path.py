"""``run_backtest(pnl_per_second=True)``: the P&L path, second by second, per day and run.

Oracles come from the run's own fills, computed here independently of the kernel: at
every second the position is flat, the path must equal the cumulative cash flow of the
fills so far; ``in_position`` must hold exactly from an entry's second up to (not
including) the second its exit leaves the position flat; the last value of a day is
its gross P&L.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from _engine_fixtures import copy_lake, generated_lake_root, sha256  # noqa: F401 - fixture
from test_properties import _spec

from ticklake.backtest.runner import PNL_FILE, RunResult, resume_backtest, run_backtest


@pytest.fixture(scope="module")
def pnl_run(generated_lake_root: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:  # noqa: F811
    lake = copy_lake(generated_lake_root, tmp_path_factory.mktemp("pnl") / "lake")
    plain = run_backtest(lake, _spec(), executor="serial", run_id="plain")
    assert not (plain.run_dir / PNL_FILE).exists()
    # The plain run filled the day cache; the P&L run must not be served from it.
    return run_backtest(lake, _spec(), executor="serial", run_id="with-pnl", pnl_per_second=True)


def test_flat_seconds_equal_the_cumulative_cash_of_the_fills(pnl_run: RunResult) -> None:
    path = pl.read_parquet(pnl_run.run_dir / PNL_FILE)
    trades = pnl_run.trades()
    daily = pnl_run.daily()
    assert trades.height > 10
    traded = daily.filter(pl.col("status") == "traded")["date"].to_list()
    assert traded, "the strategy must trade on the generated days"
    for day in traded:
        day_path = path.filter(pl.col("date") == day).sort("ts")
        fills = trades.filter(pl.col("date") == day).sort("fill_index")
        cash = fills.group_by("ts").agg(pl.col("cash_flow_paise").sum()).sort("ts")
        cumulative = day_path.join_asof(
            cash.with_columns(pl.col("cash_flow_paise").cum_sum().alias("cash")), on="ts"
        ).with_columns(pl.col("cash").fill_null(0))
        flat = cumulative.filter(~pl.col("in_position"))
        assert flat.height > 0
        assert (flat["pnl_paise"] == flat["cash"]).all(), day
        gross = daily.filter(pl.col("date") == day)["gross_pnl_paise"][0]
        assert day_path["pnl_paise"][-1] == gross
        # In a position from the first entry's second to the last exit's second (exclusive).
        entries = fills.filter(pl.col("reason") == "entry")["ts"]
        held = day_path.filter(pl.col("in_position"))["ts"]
        assert held.min() == entries.min()
        assert held.max() < fills["ts"].max()


def test_every_session_second_of_every_day_is_there(pnl_run: RunResult) -> None:
    path = pl.read_parquet(pnl_run.run_dir / PNL_FILE)
    days = pnl_run.daily()
    per_day = path.group_by("date").agg(pl.len(), pl.col("ts").diff().max().alias("step"))
    traded_or_not = days.filter(pl.col("status") != "skipped")["date"].to_list()
    assert sorted(per_day["date"].to_list()) == sorted(traded_or_not)
    assert (per_day["step"].dt.total_seconds() == 1).all()
    assert per_day["len"].n_unique() == 1 and per_day["len"][0] > 20_000


def test_ledger_lists_the_path_and_resume_redoes_a_day_that_lost_it(
    pnl_run: RunResult,
) -> None:
    ledger = pnl_run.ledger
    assert ledger["pnl_per_second"] is True
    assert ledger["outputs"][PNL_FILE] == sha256(pnl_run.run_dir / PNL_FILE)
    day = sorted(ledger["days"])[0]
    day_file = pnl_run.run_dir / "days" / day / PNL_FILE
    assert ledger["days"][day]["outputs"][PNL_FILE] == sha256(day_file)
    before = sha256(day_file)
    day_file.unlink()
    lake_root = Path(ledger["lake"])
    from ticklake.lake import open_lake

    resumed = resume_backtest(open_lake(lake_root), pnl_run.run_id, executor="serial")
    assert resumed.status == "complete"
    assert sha256(day_file) == before
    assert resumed.ledger["days"][day]["cached"] is True  # served from the P&L-keyed cache
