from __future__ import annotations

import datetime as dt
import json
import math
import statistics as pystats
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from ticklake.backtest.stats import (
    Statistics,
    compute_statistics,
    equity_curve_paise,
    format_statistic,
    read_run_results,
    session_seconds_from_spec,
)
from ticklake.errors import LakeError, SchemaMismatchError


def _day(
    day: int,
    status: str,
    net: int = 0,
    *,
    gross: int | None = None,
    costs: int = 0,
    fills: int = 0,
    round_trips: int = 0,
    exposure: int = 0,
    reason: str | None = None,
) -> dict[str, object]:
    return {
        "date": dt.date(2024, 1, day),
        "status": status,
        "skip_reason": reason,
        "fills": fills,
        "round_trips": round_trips,
        "gross_pnl_paise": net + costs if gross is None else gross,
        "costs_paise": costs,
        "net_pnl_paise": net,
        "exposure_seconds": exposure,
    }


@pytest.fixture
def hand_daily() -> pl.DataFrame:
    # Rows deliberately out of date order: statistics must sort by date.
    rows = [
        _day(7, "traded", 20_000, costs=1_000, fills=2, round_trips=1, exposure=7_200),
        _day(1, "traded", 10_000, costs=1_000, fills=4, round_trips=2, exposure=3_600),
        _day(2, "traded", -4_000, costs=1_000, fills=2, round_trips=1, exposure=1_800),
        _day(3, "no_trade", reason="no entry signal"),
        _day(4, "skipped", reason="no option data"),
        _day(5, "traded", 3_000, costs=500, fills=2, round_trips=1, exposure=900),
        _day(6, "traded", -12_000, costs=1_000, fills=2, round_trips=1, exposure=5_400),
        _day(8, "skipped", reason="no option data"),
        _day(9, "skipped", reason="stale chain"),
    ]
    return pl.DataFrame(rows)


@pytest.fixture
def hand_trades() -> pl.DataFrame:
    # (day, position, cash flows, costs): round-trip nets 5500, 4500, -4000, 3000, -12000, 20000.
    trips = [
        (1, 0, (8_000, -2_000), (250, 250)),
        (1, 1, (7_000, -2_000), (250, 250)),
        (2, 0, (6_000, -9_000), (500, 500)),
        (5, 0, (4_000, -500), (250, 250)),
        (6, 0, (5_000, -16_000), (500, 500)),
        (7, 0, (25_000, -4_000), (500, 500)),
    ]
    rows = [
        {
            "date": dt.date(2024, 1, day),
            "position_id": position,
            "cash_flow_paise": cash,
            "costs_paise": cost,
        }
        for day, position, cashes, costs in trips
        for cash, cost in zip(cashes, costs, strict=True)
    ]
    return pl.DataFrame(rows)


def test_hand_computed_case(hand_daily: pl.DataFrame, hand_trades: pl.DataFrame) -> None:
    stats = compute_statistics(hand_daily, hand_trades)
    # Return series (skipped excluded, no-trade = 0): 10000, -4000, 0, 3000, -12000, 20000.
    assert stats.days_planned == 9
    assert (stats.days_traded, stats.days_no_trade, stats.days_skipped) == (5, 1, 3)
    assert stats.skip_reasons == {"no option data": 2, "stale chain": 1}
    assert stats.no_trade_reasons == {"no entry signal": 1}
    assert stats.total_net_pnl_paise == 17_000
    assert isinstance(stats.total_net_pnl_paise, int)
    assert stats.total_gross_pnl_paise == 21_500
    assert stats.total_costs_paise == 4_500
    assert stats.average_daily_net_pnl_rupees == pytest.approx(170.0 / 6)
    assert stats.average_traded_day_net_pnl_rupees == pytest.approx(34.0)
    assert stats.median_daily_net_pnl_rupees == pytest.approx(15.0)  # (0 + 3000) / 2 paise
    assert (stats.best_day_net_pnl_paise, stats.worst_day_net_pnl_paise) == (20_000, -12_000)
    assert stats.win_rate_traded_days == pytest.approx(3 / 5)
    assert stats.profit_factor == pytest.approx(33_000 / 16_000)
    assert stats.round_trips == 6
    assert stats.win_rate_round_trips == pytest.approx(4 / 6)
    assert stats.average_round_trip_net_pnl_rupees == pytest.approx(170.0 / 6)
    # Equity 10000, 6000, 6000, 9000, -3000, 17000: peak day 1, trough day 6, back on day 7.
    assert stats.max_drawdown_paise == 13_000
    assert stats.max_drawdown_peak_date == dt.date(2024, 1, 1)
    assert stats.max_drawdown_trough_date == dt.date(2024, 1, 6)
    assert stats.max_drawdown_recovery_date == dt.date(2024, 1, 7)
    assert stats.exposure_fraction == pytest.approx(18_900 / (5 * 22_500))
    assert stats.fills == 12
    assert stats.fills_per_traded_day == pytest.approx(2.4)
    assert stats.round_trips_per_traded_day == pytest.approx(1.2)
    series = [10_000, -4_000, 0, 3_000, -12_000, 20_000]
    mean = 17_000 / 6
    sample_std = math.sqrt(sum((v - mean) ** 2 for v in series) / 5)
    assert stats.sharpe_ratio == pytest.approx(mean / sample_std * math.sqrt(252))
    assert stats.sharpe_ratio == pytest.approx(
        pystats.mean(series) / pystats.stdev(series) * math.sqrt(252)
    )
    downside = math.sqrt((4_000**2 + 12_000**2) / 6)
    assert stats.sortino_ratio == pytest.approx(mean / downside * math.sqrt(252))
    assert stats.sortino_ratio == pytest.approx(8.70991, rel=1e-5)


def test_session_seconds_scales_exposure(hand_daily: pl.DataFrame) -> None:
    stats = compute_statistics(hand_daily, pl.DataFrame(), session_seconds=3_600)
    assert stats.exposure_fraction == pytest.approx(18_900 / (5 * 3_600))
    assert stats.round_trips == 0 and stats.win_rate_round_trips is None
    with pytest.raises(ValueError, match="session_seconds must be positive"):
        compute_statistics(hand_daily, pl.DataFrame(), session_seconds=0)


def test_drawdown_from_start_and_never_recovered() -> None:
    daily = pl.DataFrame([_day(1, "traded", -500), _day(2, "traded", 200), _day(3, "traded", -900)])
    stats = compute_statistics(daily, pl.DataFrame())
    # Equity -500, -300, -1200 from a start of 0: the peak is the start itself.
    assert stats.max_drawdown_paise == 1_200
    assert stats.max_drawdown_peak_date is None
    assert stats.max_drawdown_trough_date == dt.date(2024, 1, 3)
    assert stats.max_drawdown_recovery_date is None
    assert stats.profit_factor == pytest.approx(200 / 1_400)


def test_drawdown_peak_is_last_day_at_the_peak() -> None:
    # Equity 100, 100 (no trade), 100 (a flat traded day), 40, 150.
    daily = pl.DataFrame(
        [
            _day(1, "traded", 100),
            _day(2, "no_trade"),
            _day(3, "traded", 0),
            _day(4, "traded", -60),
            _day(5, "traded", 110),
        ]
    )
    stats = compute_statistics(daily, pl.DataFrame())
    assert stats.max_drawdown_paise == 60
    assert stats.max_drawdown_peak_date == dt.date(2024, 1, 3)
    assert stats.max_drawdown_recovery_date == dt.date(2024, 1, 5)
    # A 0 P&L traded day is neither a win nor a loss.
    assert stats.win_rate_traded_days == pytest.approx(2 / 4)


def test_profit_factor_edges_and_json_safe_dict() -> None:
    only_wins = compute_statistics(
        pl.DataFrame([_day(1, "traded", 300), _day(2, "traded", 100)]), pl.DataFrame()
    )
    assert only_wins.profit_factor == math.inf
    assert only_wins.max_drawdown_paise == 0
    assert only_wins.max_drawdown_trough_date is None
    assert only_wins.sortino_ratio is None  # no losing day: zero downside deviation
    as_dict = only_wins.to_dict()
    assert as_dict["profit_factor"] == "inf"
    json.dumps(as_dict, allow_nan=False)  # strict JSON: no Infinity / NaN tokens

    only_losses = compute_statistics(pl.DataFrame([_day(1, "traded", -300)]), pl.DataFrame())
    assert only_losses.profit_factor == 0.0
    assert only_losses.sharpe_ratio is None  # one day: no sample deviation

    flat = compute_statistics(
        pl.DataFrame([_day(1, "traded", 0), _day(2, "no_trade")]), pl.DataFrame()
    )
    assert flat.profit_factor is None
    assert flat.sharpe_ratio is None


def test_no_traded_day_gives_none_not_errors() -> None:
    daily = pl.DataFrame(
        [_day(1, "skipped", reason="holiday"), _day(2, "no_trade", reason="no signal")]
    )
    stats = compute_statistics(daily, pl.DataFrame())
    assert stats.total_net_pnl_paise == 0
    assert stats.average_daily_net_pnl_rupees == 0.0  # one no-trade day of ₹0
    assert stats.average_traded_day_net_pnl_rupees is None
    assert stats.win_rate_traded_days is None
    assert stats.exposure_fraction is None
    assert stats.fills_per_traded_day is None
    assert stats.profit_factor is None
    assert stats.best_day_net_pnl_paise is None
    dates_as_text = stats.to_dict()
    assert dates_as_text["max_drawdown_peak_date"] is None
    json.dumps(dates_as_text, allow_nan=False)


def test_skipped_day_pnl_is_ignored_even_if_null() -> None:
    rows = [_day(1, "traded", 500), _day(2, "skipped", reason="no data"), _day(3, "traded", -100)]
    rows[1]["net_pnl_paise"] = None
    stats = compute_statistics(pl.DataFrame(rows), pl.DataFrame())
    assert stats.total_net_pnl_paise == 400
    assert stats.average_daily_net_pnl_rupees == pytest.approx(2.0)


def test_contract_violations_are_named() -> None:
    good = pl.DataFrame([_day(1, "traded", 500)])
    with pytest.raises(SchemaMismatchError, match=r"daily.parquet: missing column\(s\) fills"):
        compute_statistics(good.drop("fills"), pl.DataFrame())
    with pytest.raises(SchemaMismatchError, match=r"status holds \['halted'\]"):
        compute_statistics(good.with_columns(status=pl.lit("halted")), pl.DataFrame())
    with pytest.raises(SchemaMismatchError, match="no_trade day 2024-01-01 has net_pnl_paise 500"):
        compute_statistics(good.with_columns(status=pl.lit("no_trade")), pl.DataFrame())
    trades = pl.DataFrame({"date": [dt.date(2024, 1, 1)], "position_id": [0]})
    with pytest.raises(SchemaMismatchError, match=r"trades\.parquet: missing column"):
        compute_statistics(good, trades)


def test_random_series_against_pandas() -> None:
    rng = np.random.default_rng(20240301)
    dates = pd.bdate_range("2023-01-02", periods=300).date
    status = rng.choice(["traded", "traded", "traded", "traded", "no_trade", "skipped"], 300)
    net = rng.normal(500, 25_000, 300).round().astype(np.int64)
    net[status != "traded"] = 0
    frame = pd.DataFrame(
        {
            "date": dates,
            "status": status,
            "skip_reason": np.where(status == "traded", None, "reason"),
            "fills": np.where(status == "traded", 4, 0),
            "round_trips": np.where(status == "traded", 2, 0),
            "gross_pnl_paise": net,
            "costs_paise": 0,
            "net_pnl_paise": net,
            "exposure_seconds": np.where(status == "traded", 10_000, 0),
        }
    )
    shuffled = frame.sample(frac=1.0, random_state=3)
    stats = compute_statistics(pl.from_pandas(shuffled), pl.DataFrame())

    series = frame[frame.status != "skipped"].set_index("date")["net_pnl_paise"].astype(float)
    assert stats.sharpe_ratio == pytest.approx(series.mean() / series.std() * np.sqrt(252))
    downside = np.sqrt((series.clip(upper=0) ** 2).mean())
    assert stats.sortino_ratio == pytest.approx(series.mean() / downside * np.sqrt(252))
    assert stats.median_daily_net_pnl_rupees == pytest.approx(series.median() / 100)

    equity = series.cumsum()
    peak = equity.cummax().clip(lower=0)
    drawdown = peak - equity
    trough = drawdown.idxmax()
    assert stats.max_drawdown_paise == int(drawdown.max())
    assert stats.max_drawdown_trough_date == trough
    peak_value = peak[trough]
    at_peak = equity[:trough][equity[:trough] == peak_value]
    assert stats.max_drawdown_peak_date == (at_peak.index[-1] if len(at_peak) else None)
    after = equity[equity.index > trough]
    recovered = after[after >= peak_value]
    assert stats.max_drawdown_recovery_date == (recovered.index[0] if len(recovered) else None)

    curve = equity_curve_paise(pl.from_pandas(shuffled))
    assert curve["date"].to_list() == list(series.index)
    assert curve["equity_paise"].to_list() == equity.astype(np.int64).tolist()
    assert curve["drawdown_paise"].to_list() == drawdown.astype(np.int64).tolist()


def test_fake_run_against_trades_file(fake_run_dir: Path) -> None:
    results = read_run_results(fake_run_dir)
    stats = results.statistics()
    trades = pd.read_parquet(fake_run_dir / "trades.parquet")
    daily = pd.read_parquet(fake_run_dir / "daily.parquet")

    # Round trips from another angle: the closing fill's realised P&L minus both fills' costs.
    closing = trades[trades.side == "buy"].set_index(["date", "position_id"])
    costs = trades.groupby(["date", "position_id"])["costs_paise"].sum()
    round_trip_net = closing["realized_pnl_paise"] - costs
    assert stats.round_trips == len(round_trip_net) == int(daily.round_trips.sum())
    assert stats.win_rate_round_trips == pytest.approx((round_trip_net > 0).mean())
    assert stats.average_round_trip_net_pnl_rupees == pytest.approx(round_trip_net.mean() / 100)

    assert stats.total_net_pnl_paise == int(trades.cash_flow_paise.sum() - trades.costs_paise.sum())
    assert stats.total_costs_paise == int(trades.costs_paise.sum())
    assert stats.fills == len(trades)
    assert stats.skip_reasons == {"exchange holiday": 2, "no option snapshots for the day": 2}
    assert (stats.days_traded, stats.days_no_trade, stats.days_skipped) == (24, 2, 4)
    traded = daily[daily.status == "traded"]
    assert stats.exposure_fraction == pytest.approx(traded.exposure_seconds.sum() / (24 * 22_500))
    assert stats.session_seconds == 22_500  # 09:15-15:30 from the spec's defaults
    assert isinstance(stats, Statistics)


def test_read_run_results_errors(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="no such run directory"):
        read_run_results(tmp_path / "missing")
    (tmp_path / "run").mkdir()
    with pytest.raises(LakeError, match=r"daily\.parquet is written when a run finishes"):
        read_run_results(tmp_path / "run")


def test_session_seconds_from_spec_and_formatting() -> None:
    assert session_seconds_from_spec({}) == 22_500
    assert session_seconds_from_spec(
        {"time": {"session_start": "09:00", "session_end": "17:00"}}
    ) == (8 * 3_600)
    assert format_statistic("paise", 123_456_789) == "₹1,234,567.89"
    assert format_statistic("percent", 0.1234) == "12.34%"
    assert format_statistic("date", dt.date(2024, 1, 2)) == "2024-01-02"
    assert format_statistic("ratio", -math.inf) == "-∞"


# ------------------------------------------------- issue #19: small samples and bootstrap
def _plain_bootstrap(values: list[int], resamples: int, seed: int) -> tuple[Any, Any]:
    """The same seed scheme, computed one resample at a time with plain numpy."""
    data = np.array(values, dtype=float)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(data), size=(resamples, len(data)))
    sharpes, means = [], []
    for row in index:
        sample = data[row]
        mean = sum(sample) / len(sample)
        means.append(mean / 100)
        deviation = math.sqrt(sum((x - mean) ** 2 for x in sample) / (len(sample) - 1))
        if deviation > 0:
            sharpes.append(mean / deviation * math.sqrt(252))
    return (
        (np.percentile(sharpes, 2.5), np.percentile(sharpes, 97.5)),
        (np.percentile(means, 2.5), np.percentile(means, 97.5)),
    )


def test_bootstrap_intervals_match_a_plain_numpy_computation() -> None:
    from ticklake.backtest.stats_sample import BOOTSTRAP_SEED, bootstrap_intervals

    values = [9_500, 0, -2_500, 14_000, -7_000, 3_000, 0, 1_200, -400, 8_800, -6_100, 2_000]
    sharpe, mean = bootstrap_intervals(values)
    expected_sharpe, expected_mean = _plain_bootstrap(values, 1_000, BOOTSTRAP_SEED)
    assert sharpe == pytest.approx(expected_sharpe, rel=1e-9)
    assert mean == pytest.approx(expected_mean, rel=1e-9)
    assert sharpe[0] < (sharpe_ratio_of(values)) < sharpe[1]
    assert bootstrap_intervals(values) == (sharpe, mean)  # deterministic
    assert bootstrap_intervals([500]) == (None, None)
    assert bootstrap_intervals([500, 500, 500])[0] is None  # no deviation in any resample


def sharpe_ratio_of(values: list[int]) -> float:
    series = pd.Series(values, dtype=float)
    return float(series.mean() / series.std(ddof=1) * math.sqrt(252))


@pytest.mark.parametrize(("days", "flagged"), [(19, True), (20, False)])
def test_small_sample_rule_at_the_day_boundary(days: int, flagged: bool) -> None:
    from ticklake.backtest.stats_sample import sample_check

    daily = pl.DataFrame(
        [_day(d, "traded", 1_000 if d % 2 else -500) for d in range(1, days + 1)]
        + [_day(days + 1, "skipped")]
    )
    stats = compute_statistics(daily, pl.DataFrame())
    check = sample_check(daily, days_traded=stats.days_traded, round_trips=stats.round_trips)
    assert check.days == days
    for name in ("sharpe_ratio", "sortino_ratio", "win_rate_traded_days", "profit_factor"):
        assert (name in check.small) is flagged, name
    assert check.to_dict()["min_days"] == 20


@pytest.mark.parametrize(("round_trips", "flagged"), [(29, True), (30, False)])
def test_small_sample_rule_at_the_round_trip_boundary(round_trips: int, flagged: bool) -> None:
    from ticklake.backtest.stats_sample import small_sample_warnings

    small = small_sample_warnings(40, 40, round_trips)
    assert ("win_rate_round_trips" in small) is flagged
    assert ("average_round_trip_net_pnl_rupees" in small) is flagged
    assert "sharpe_ratio" not in small
