"""Round trips by facet (all, weekday, entry window, month) against a hand case and a
plain pandas computation on a seeded fake run's trades.parquet."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ticklake.backtest.stats_breakdown import round_trip_table, trade_breakdowns

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def _fill(day: int, position: int, clock: str, cash: int, cost: int) -> dict[str, object]:
    local = dt.datetime.combine(dt.date(2024, 1, day), dt.time.fromisoformat(clock), IST)
    return {
        "date": dt.date(2024, 1, day),
        "position_id": position,
        "ts": local.astimezone(dt.UTC),
        "cash_flow_paise": cash,
        "costs_paise": cost,
    }


def _hand() -> pl.DataFrame:
    rows = [
        # Mon 2024-01-01: two round trips, +5,500 (held 1 h) and -1,000 (held 30 s).
        _fill(1, 0, "09:20:00", 8_000, 250), _fill(1, 0, "10:20:00", -2_000, 250),
        _fill(1, 1, "11:00:00", 1_000, 250), _fill(1, 1, "11:00:30", -1_500, 250),
        # Tue 2024-01-02: +3,000, held 2 h, entered in the 09:20-09:25 window.
        _fill(2, 0, "09:21:00", 4_000, 250), _fill(2, 0, "11:21:00", -500, 250),
    ]  # fmt: skip
    return pl.DataFrame(rows).with_columns(pl.col("ts").dt.cast_time_unit("ns"))


def test_a_hand_case_by_facet() -> None:
    table = round_trip_table(_hand())
    assert table["net_paise"].to_list() == [5_500, -1_000, 3_000]
    assert table["hold_seconds"].to_list() == [3_600.0, 30.0, 7_200.0]
    out = trade_breakdowns(_hand(), timezone="Asia/Kolkata", entry_windows=["09:20-09:25"])
    (everything,) = out["all"]
    assert everything.round_trips == 3 and everything.total_net_paise == 7_500
    assert everything.win_rate == pytest.approx(2 / 3)
    assert everything.expectancy_rupees == pytest.approx(25.0)  # 7,500 paise / 3 / 100
    assert everything.median_rupees == pytest.approx(30.0)
    assert everything.profit_factor == pytest.approx(8_500 / 1_000)
    assert everything.hold_p50_seconds == 3_600.0
    assert [(r.key, r.round_trips, r.total_net_paise) for r in out["weekday"]] == [
        ("Mon", 2, 4_500),
        ("Tue", 1, 3_000),
    ]
    # 09:20:00 is inside [09:20, 09:25) (the window's start is in it); 11:00 is not.
    windows = {r.key: r.round_trips for r in out["entry_window"]}
    assert windows == {"09:20-09:25": 2, "other": 1}
    tue = out["weekday"][1]
    assert tue.profit_factor == math.inf and tue.as_dict()["profit_factor"] == "inf"
    # Without windows, the local hour of the entry.
    hours = trade_breakdowns(_hand(), timezone="Asia/Kolkata")["entry_window"]
    assert [r.key for r in hours] == ["09:00", "11:00"]


def test_no_trades_gives_an_empty_all_row() -> None:
    empty = _hand().head(0)
    out = trade_breakdowns(empty, timezone="Asia/Kolkata")
    (row,) = out["all"]
    assert row.round_trips == 0 and row.win_rate is None and row.profit_factor is None
    assert out["weekday"] == [] and out["month"] == []


def test_against_pandas_on_a_fake_run(fake_run_dir: Path) -> None:
    trades = pl.read_parquet(fake_run_dir / "trades.parquet")
    out = trade_breakdowns(trades, timezone="Asia/Kolkata")
    # Independent: pandas groupby on the same file.
    frame = pd.read_parquet(fake_run_dir / "trades.parquet")
    frame["net"] = frame.cash_flow_paise - frame.costs_paise
    trips = frame.groupby(["date", "position_id"]).agg(
        net=("net", "sum"), first=("ts", "min"), last=("ts", "max")
    )
    trips["hold"] = (trips["last"] - trips["first"]).dt.total_seconds()
    trips["weekday"] = [pd.Timestamp(d).day_name()[:3] for d, _ in trips.index]
    trips["month"] = [pd.Timestamp(d).strftime("%Y-%m") for d, _ in trips.index]
    for facet in ("weekday", "month"):
        want = trips.groupby(facet)
        got = {r.key: r for r in out[facet]}
        assert set(got) == set(want.groups)
        for key, group in want:
            row = got[str(key)]
            nets = group["net"].to_numpy()
            assert row.round_trips == len(group)
            assert row.total_net_paise == int(nets.sum())
            assert row.win_rate == pytest.approx((nets > 0).mean())
            assert row.expectancy_rupees == pytest.approx(nets.mean() / 100)
            assert row.median_rupees == pytest.approx(np.median(nets) / 100)
            assert row.hold_p50_seconds == pytest.approx(group["hold"].median())
            losses = -nets[nets < 0].sum()
            if losses:
                assert row.profit_factor == pytest.approx(nets[nets > 0].sum() / losses)
    assert out["all"][0].round_trips == len(trips)


def test_served_in_the_report_and_the_api(
    fake_run_factory: Callable[..., Path],
) -> None:
    from ticklake.backtest.report import render_report
    from ticklake.backtest.stats import read_run_results

    run_dir = fake_run_factory("20240301-atm_straddle-0009", seed=9)
    results = read_run_results(run_dir)
    page = render_report(results)
    out = results.breakdowns()
    assert "Round trips by weekday" in page
    for row in out["weekday"]:
        assert f"<td>{row.key}</td><td>{row.round_trips}</td>" in page
