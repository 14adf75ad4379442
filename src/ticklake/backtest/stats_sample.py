"""Is the sample big enough to mean anything? The small-sample rule and bootstrap intervals.

Computed here once, beside :mod:`ticklake.backtest.stats` (which would pass 600 lines),
and shown by both the HTML report and the dashboard (``GET /api/v1/runs/{id}`` carries
``sample``; ``/runs/compare`` carries one per run).

- **Small-sample rule**: a statistic estimated over days is flagged when it rests on fewer
  than :data:`MIN_DAYS` (20) days — the return series (traded + no-trade days) for the
  Sharpe and Sortino ratios and the average/median daily P&L, the traded days for the
  win rate of days, the average traded-day P&L and the profit factor. A statistic over
  round trips (win rate, average round-trip P&L) is flagged with fewer than
  :data:`MIN_ROUND_TRIPS` (30) round trips. Exactly 20 days or 30 round trips is enough.
- **Bootstrap intervals**: :data:`BOOTSTRAP_RESAMPLES` (1,000) resamples of the return
  series with replacement, each the length of the series, drawn at once as
  ``numpy.random.default_rng(BOOTSTRAP_SEED).integers(0, n, size=(1000, n))`` — so the same
  run always gives the same interval. The interval is the 2.5th and 97.5th percentiles
  (``numpy.quantile``, linear) of the resampled annualised Sharpe ratios (resamples with
  zero deviation left out) and of the resampled mean daily net P&L (in rupees). ``None``
  with fewer than two days, or a Sharpe interval when fewer than half the resamples have
  a deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from ticklake.backtest.stats import TRADING_DAYS_PER_YEAR, equity_curve_paise

MIN_DAYS = 20
MIN_ROUND_TRIPS = 30
BOOTSTRAP_RESAMPLES = 1_000
BOOTSTRAP_SEED = 19
CONFIDENCE = 0.95

# statistic -> which count it rests on: "days" (return series), "traded_days", "round_trips"
SAMPLE_BASIS: dict[str, str] = {
    "sharpe_ratio": "days",
    "sortino_ratio": "days",
    "average_daily_net_pnl_rupees": "days",
    "median_daily_net_pnl_rupees": "days",
    "win_rate_traded_days": "traded_days",
    "average_traded_day_net_pnl_rupees": "traded_days",
    "profit_factor": "traded_days",
    "win_rate_round_trips": "round_trips",
    "average_round_trip_net_pnl_rupees": "round_trips",
}
_WORDS = {"days": "days", "traded_days": "traded days", "round_trips": "round trips"}


@dataclass(frozen=True)
class SampleCheck:
    """The counts a run's statistics rest on, what they flag, and the bootstrap intervals."""

    days: int
    traded_days: int
    round_trips: int
    sharpe_interval: tuple[float, float] | None
    mean_daily_interval_rupees: tuple[float, float] | None
    small: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "traded_days": self.traded_days,
            "round_trips": self.round_trips,
            "min_days": MIN_DAYS,
            "min_round_trips": MIN_ROUND_TRIPS,
            "small_sample": dict(self.small),
            "bootstrap": {
                "resamples": BOOTSTRAP_RESAMPLES,
                "seed": BOOTSTRAP_SEED,
                "confidence": CONFIDENCE,
                "sharpe_ratio": _listed(self.sharpe_interval),
                "average_daily_net_pnl_rupees": _listed(self.mean_daily_interval_rupees),
            },
        }


def small_sample_warnings(days: int, traded_days: int, round_trips: int) -> dict[str, str]:
    """``{statistic: why}`` for each statistic whose sample is below its threshold.

    Examples:
        >>> small_sample_warnings(19, 19, 30)["sharpe_ratio"]
        'only 19 days (fewer than 20): too few for this to mean anything'
        >>> small_sample_warnings(20, 20, 30)
        {}
    """
    counts = {"days": days, "traded_days": traded_days, "round_trips": round_trips}
    minimum = {"days": MIN_DAYS, "traded_days": MIN_DAYS, "round_trips": MIN_ROUND_TRIPS}
    out = {}
    for name, basis in SAMPLE_BASIS.items():
        if counts[basis] < minimum[basis]:
            out[name] = (
                f"only {counts[basis]:,} {_WORDS[basis]} (fewer than {minimum[basis]}): "
                "too few for this to mean anything"
            )
    return out


def bootstrap_intervals(
    daily_pnl_paise: list[int] | np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    """(Sharpe interval, mean daily net P&L interval in rupees) of a return series."""
    values = np.asarray(daily_pnl_paise, dtype=np.float64)
    n = values.size
    if n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, n, size=(resamples, n))]
    means = draws.mean(axis=1)
    deviations = draws.std(axis=1, ddof=1)
    tails = [(1 - confidence) / 2, 1 - (1 - confidence) / 2]
    low, high = (float(v) / 100 for v in np.quantile(means, tails))
    mean_interval = (low, high)
    usable = deviations > 0
    if usable.sum() * 2 < resamples:
        return None, mean_interval
    sharpes = means[usable] / deviations[usable] * math.sqrt(TRADING_DAYS_PER_YEAR)
    s_low, s_high = (float(v) for v in np.quantile(sharpes, tails))
    return (s_low, s_high), mean_interval


def sample_check(daily: pl.DataFrame, *, days_traded: int, round_trips: int) -> SampleCheck:
    """The sample check of a run from its daily rows and the counts of its statistics
    (:attr:`Statistics.days_traded`, :attr:`Statistics.round_trips`)."""
    series = equity_curve_paise(daily)["net_pnl_paise"].to_numpy()
    sharpe, mean = bootstrap_intervals(series)
    days = int(series.size)
    return SampleCheck(
        days=days,
        traded_days=days_traded,
        round_trips=round_trips,
        sharpe_interval=sharpe,
        mean_daily_interval_rupees=mean,
        small=small_sample_warnings(days, days_traded, round_trips),
    )


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]
