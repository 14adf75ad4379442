"""Backtest statistics from a run's ``daily.parquet`` and ``trades.parquet``.

Definitions (money is integer paise; rupee floats are for display only):

- **Return series**: one value per day whose status is ``traded`` or ``no_trade``, in date
  order. A ``no_trade`` day counts as a 0 P&L day (the strategy was willing to trade and
  did not); a ``skipped`` day (no data, holiday, stale chain, ...) is excluded from every
  P&L statistic because the strategy could not have traded it.
- **Averages** are float rupees: ``average_daily_net_pnl_rupees`` over the return series,
  ``average_traded_day_net_pnl_rupees`` over traded days only,
  ``average_round_trip_net_pnl_rupees`` over round trips.
- **Round trip**: the fills sharing ``(date, position_id)``. Its net P&L is the sum of its
  cash flows (positions are flat at day end, so this equals its realised gross P&L) minus
  the sum of its fills' costs.
- **Win rates**: the share of traded days with net P&L > 0, and of round trips with net
  P&L > 0 (break-even counts as not a win). ``None`` when there is nothing to count.
- **Profit factor**: the sum of winning traded days' net P&L divided by the absolute sum
  of losing traded days' net P&L; ``math.inf`` when there are wins and no losses, ``None``
  when there are neither.
- **Sharpe ratio**: ``mean / std × sqrt(252)`` of the return series in paise, with the
  *sample* standard deviation (ddof = 1), no risk-free rate (P&L has no capital base).
  ``None`` with fewer than two days or zero deviation.
- **Sortino ratio**: ``mean / downside deviation × sqrt(252)``, downside deviation being
  ``sqrt(mean(min(x, 0)²))`` over *all* days of the series (Sortino & Price's target
  downside deviation with target 0: a population moment, ddof = 0). ``None`` with fewer
  than two days or no losing day.
- **Max drawdown**: the equity curve is the cumulative net P&L of the return series,
  starting from 0 before the first day; drawdown is the running peak minus equity. The
  trough is the first day where the largest drawdown is reached, the peak is the last day
  at or before the trough where equity equalled that running peak (``None`` when the peak
  is the 0 before the first day), recovery is the first day after the trough where equity
  is back at or above the peak (``None`` when not recovered). All ``None`` when the max
  drawdown is 0.
- **Exposure**: ``sum(exposure_seconds of traded days) / (traded days × session
  seconds)``; session seconds default to 22,500 (09:15–15:30).
- **Marked closes**: closes at the session's last second with no price on the book on
  the side they needed (``reason = marked_end_of_day``, ``filled = false``): the leg is
  valued at its last mark, no order is sent. ``marked_closes`` counts them and
  ``total_marked_pnl_paise`` is the gross P&L of their round trips — the part of the
  total resting on a mark rather than on fills (0 for runs written before the columns).

Examples:
    >>> import datetime as dt
    >>> daily = pl.DataFrame({
    ...     "date": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)],
    ...     "status": ["traded", "no_trade", "traded"],
    ...     "skip_reason": [None, "no entry signal", None],
    ...     "fills": [4, 0, 4], "round_trips": [2, 0, 2],
    ...     "gross_pnl_paise": [10_000, 0, -2_000], "costs_paise": [500, 0, 500],
    ...     "net_pnl_paise": [9_500, 0, -2_500], "exposure_seconds": [3_600, 0, 7_200],
    ... })
    >>> stats = compute_statistics(daily, pl.DataFrame())
    >>> stats.total_net_pnl_paise, stats.win_rate_traded_days, stats.profit_factor
    (7000, 0.5, 3.8)
    >>> stats.max_drawdown_paise, str(stats.max_drawdown_peak_date)
    (2500, '2024-01-02')
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from ticklake.backtest.stats_breakdown import FacetRow, profit_factor, trade_breakdowns
from ticklake.errors import LakeError, SchemaMismatchError

TRADING_DAYS_PER_YEAR = 252
DEFAULT_SESSION_SECONDS = 22_500  # 09:15-15:30, the NSE cash and F&O session
DAY_STATUSES = ("traded", "no_trade", "skipped")

_DAILY_COLUMNS = {
    "date": pl.Date,
    "status": pl.String,
    "skip_reason": pl.String,
    "fills": pl.Int64,
    "round_trips": pl.Int64,
    "gross_pnl_paise": pl.Int64,
    "costs_paise": pl.Int64,
    "net_pnl_paise": pl.Int64,
    "exposure_seconds": pl.Int64,
}
_TRADE_COLUMNS = {
    "date": pl.Date,
    "position_id": pl.Int64,
    "cash_flow_paise": pl.Int64,
    "costs_paise": pl.Int64,
}


@dataclass(frozen=True)
class Statistics:
    """A run's statistics; see the module docstring for each definition."""

    days_planned: int
    days_traded: int
    days_no_trade: int
    days_skipped: int
    skip_reasons: dict[str, int]
    no_trade_reasons: dict[str, int]
    total_gross_pnl_paise: int
    total_costs_paise: int
    total_net_pnl_paise: int
    average_daily_net_pnl_rupees: float | None
    average_traded_day_net_pnl_rupees: float | None
    median_daily_net_pnl_rupees: float | None
    best_day_net_pnl_paise: int | None
    worst_day_net_pnl_paise: int | None
    win_rate_traded_days: float | None
    round_trips: int
    win_rate_round_trips: float | None
    average_round_trip_net_pnl_rupees: float | None
    profit_factor: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    max_drawdown_paise: int
    max_drawdown_peak_date: date | None
    max_drawdown_trough_date: date | None
    max_drawdown_recovery_date: date | None
    exposure_fraction: float | None
    fills: int
    fills_per_traded_day: float | None
    round_trips_per_traded_day: float | None
    session_seconds: int
    marked_closes: int = 0
    total_marked_pnl_paise: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON-safe values: dates as ISO text, an infinite ratio as "inf"."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, float) and math.isinf(value):
                value = "inf" if value > 0 else "-inf"
            elif isinstance(value, dict):
                value = dict(value)
            out[item.name] = value
        return out


@dataclass(frozen=True)
class StatisticField:
    """How to show one statistic: its label and the kind of value it holds."""

    name: str
    label: str
    kind: Literal["paise", "rupees", "ratio", "percent", "count", "date", "number"]


# The order in which reports, summaries and comparisons list the statistics.
STATISTIC_FIELDS: tuple[StatisticField, ...] = (
    StatisticField("total_net_pnl_paise", "Total net P&L", "paise"),
    StatisticField("total_gross_pnl_paise", "Total gross P&L", "paise"),
    StatisticField("total_costs_paise", "Costs paid", "paise"),
    StatisticField("total_marked_pnl_paise", "Gross P&L at marks (no fill)", "paise"),
    StatisticField("average_daily_net_pnl_rupees", "Average daily net P&L", "rupees"),
    StatisticField("average_traded_day_net_pnl_rupees", "Average traded-day net P&L", "rupees"),
    StatisticField("median_daily_net_pnl_rupees", "Median daily net P&L", "rupees"),
    StatisticField("best_day_net_pnl_paise", "Best day", "paise"),
    StatisticField("worst_day_net_pnl_paise", "Worst day", "paise"),
    StatisticField("win_rate_traded_days", "Win rate (traded days)", "percent"),
    StatisticField("win_rate_round_trips", "Win rate (round trips)", "percent"),
    StatisticField("average_round_trip_net_pnl_rupees", "Average round-trip net P&L", "rupees"),
    StatisticField("profit_factor", "Profit factor", "ratio"),
    StatisticField("sharpe_ratio", "Sharpe ratio (annualised)", "ratio"),
    StatisticField("sortino_ratio", "Sortino ratio (annualised)", "ratio"),
    StatisticField("max_drawdown_paise", "Max drawdown", "paise"),
    StatisticField("max_drawdown_peak_date", "Max drawdown peak", "date"),
    StatisticField("max_drawdown_trough_date", "Max drawdown trough", "date"),
    StatisticField("max_drawdown_recovery_date", "Max drawdown recovery", "date"),
    StatisticField("exposure_fraction", "Exposure (share of session in position)", "percent"),
    StatisticField("days_planned", "Days planned", "count"),
    StatisticField("days_traded", "Days traded", "count"),
    StatisticField("days_no_trade", "Days without a trade", "count"),
    StatisticField("days_skipped", "Days skipped", "count"),
    StatisticField("fills", "Fills", "count"),
    StatisticField("marked_closes", "Closes at a mark (no fill)", "count"),
    StatisticField("round_trips", "Round trips", "count"),
    StatisticField("fills_per_traded_day", "Fills per traded day", "number"),
    StatisticField("round_trips_per_traded_day", "Round trips per traded day", "number"),
)

# The short list the CLI prints after a run.
SUMMARY_FIELDS = (
    "total_net_pnl_paise",
    "total_costs_paise",
    "average_daily_net_pnl_rupees",
    "win_rate_traded_days",
    "win_rate_round_trips",
    "profit_factor",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown_paise",
    "exposure_fraction",
    "days_traded",
    "days_no_trade",
    "days_skipped",
)


def format_statistic(kind: str, value: Any) -> str:
    """Format a statistic for display: paise as ₹ with two decimals, rates as percent.

    Examples:
        >>> format_statistic("paise", -123456), format_statistic("percent", 0.5)
        ('-₹1,234.56', '50.00%')
        >>> format_statistic("ratio", math.inf), format_statistic("ratio", None)
        ('∞', '—')
    """
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if kind in ("paise", "rupees"):
        rupees = value / 100 if kind == "paise" else value
        return f"{'-' if rupees < 0 else ''}₹{abs(rupees):,.2f}"
    if kind == "percent":
        return f"{value * 100:.2f}%"
    if kind == "ratio":
        return f"{value:.3f}"
    if kind == "count":
        return f"{value:,}"
    if kind == "number":
        return f"{value:,.2f}"
    return str(value)


def compute_statistics(
    daily: pl.DataFrame,
    trades: pl.DataFrame,
    *,
    session_seconds: int = DEFAULT_SESSION_SECONDS,
) -> Statistics:
    """Compute a run's statistics from its daily rows and its fills."""
    if session_seconds <= 0:
        raise ValueError(f"session_seconds must be positive, got {session_seconds}")
    marked = {
        name: int(daily.filter(pl.col("status") == "traded")[name].sum())
        if name in daily.columns and "status" in daily.columns
        else 0
        for name in ("marked_closes", "marked_pnl_paise")
    }
    daily = _conform(daily, _DAILY_COLUMNS, "daily.parquet").sort("date")
    trades = _conform(trades, _TRADE_COLUMNS, "trades.parquet")
    _check_statuses(daily)

    traded = daily.filter(pl.col("status") == "traded")
    no_trade = daily.filter(pl.col("status") == "no_trade")
    skipped = daily.filter(pl.col("status") == "skipped")
    series_frame = daily.filter(pl.col("status") != "skipped")
    series = [
        int(net) if status == "traded" else 0
        for status, net in zip(
            series_frame["status"], series_frame["net_pnl_paise"].fill_null(0), strict=True
        )
    ]
    series_dates: list[date] = series_frame["date"].to_list()
    traded_nets = [int(v) for v in traded["net_pnl_paise"]]
    days_traded = traded.height

    wins = sum(v for v in traded_nets if v > 0)
    losses = -sum(v for v in traded_nets if v < 0)

    round_trip_nets = _round_trip_nets(trades)
    drawdown = _max_drawdown(series, series_dates)
    fills = int(traded["fills"].sum())
    round_trips = int(traded["round_trips"].sum())

    return Statistics(
        days_planned=daily.height,
        days_traded=days_traded,
        days_no_trade=no_trade.height,
        days_skipped=skipped.height,
        skip_reasons=_reason_counts(skipped),
        no_trade_reasons=_reason_counts(no_trade),
        total_gross_pnl_paise=int(traded["gross_pnl_paise"].sum()),
        total_costs_paise=int(traded["costs_paise"].sum()),
        total_net_pnl_paise=sum(traded_nets),
        average_daily_net_pnl_rupees=_mean_rupees(series),
        average_traded_day_net_pnl_rupees=_mean_rupees(traded_nets),
        median_daily_net_pnl_rupees=(float(np.median(series)) / 100 if series else None),
        best_day_net_pnl_paise=max(traded_nets) if traded_nets else None,
        worst_day_net_pnl_paise=min(traded_nets) if traded_nets else None,
        win_rate_traded_days=(
            sum(v > 0 for v in traded_nets) / days_traded if days_traded else None
        ),
        round_trips=len(round_trip_nets),
        win_rate_round_trips=(
            sum(v > 0 for v in round_trip_nets) / len(round_trip_nets) if round_trip_nets else None
        ),
        average_round_trip_net_pnl_rupees=_mean_rupees(round_trip_nets),
        profit_factor=profit_factor(wins, losses),
        sharpe_ratio=sharpe_ratio(series),
        sortino_ratio=sortino_ratio(series),
        max_drawdown_paise=drawdown[0],
        max_drawdown_peak_date=drawdown[1],
        max_drawdown_trough_date=drawdown[2],
        max_drawdown_recovery_date=drawdown[3],
        exposure_fraction=(
            int(traded["exposure_seconds"].sum()) / (days_traded * session_seconds)
            if days_traded
            else None
        ),
        fills=fills,
        fills_per_traded_day=fills / days_traded if days_traded else None,
        round_trips_per_traded_day=round_trips / days_traded if days_traded else None,
        session_seconds=session_seconds,
        marked_closes=marked["marked_closes"],
        total_marked_pnl_paise=marked["marked_pnl_paise"],
    )


def sharpe_ratio(daily_pnl: list[int] | np.ndarray) -> float | None:
    """Annualised Sharpe ratio of daily P&L: mean / sample std (ddof=1) × sqrt(252)."""
    values = np.asarray(daily_pnl, dtype=np.float64)
    if values.size < 2:
        return None
    deviation = float(values.std(ddof=1))
    if deviation == 0.0:
        return None
    return float(values.mean()) / deviation * math.sqrt(TRADING_DAYS_PER_YEAR)


def sortino_ratio(daily_pnl: list[int] | np.ndarray) -> float | None:
    """Annualised Sortino ratio: mean / sqrt(mean(min(x, 0)²)) over all days × sqrt(252)."""
    values = np.asarray(daily_pnl, dtype=np.float64)
    if values.size < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(values, 0.0) ** 2)))
    if downside == 0.0:
        return None
    return float(values.mean()) / downside * math.sqrt(TRADING_DAYS_PER_YEAR)


def equity_curve_paise(daily: pl.DataFrame) -> pl.DataFrame:
    """Return ``date, net_pnl_paise, equity_paise, drawdown_paise`` over the return series.

    ``drawdown_paise`` is the running peak (starting from 0) minus equity, so it is ≥ 0.
    """
    daily = _conform(daily, _DAILY_COLUMNS, "daily.parquet").sort("date")
    _check_statuses(daily)
    frame = daily.filter(pl.col("status") != "skipped").select(
        "date",
        pl.when(pl.col("status") == "traded")
        .then(pl.col("net_pnl_paise").fill_null(0))
        .otherwise(0)
        .cast(pl.Int64)
        .alias("net_pnl_paise"),
    )
    frame = frame.with_columns(pl.col("net_pnl_paise").cum_sum().alias("equity_paise"))
    return frame.with_columns(
        (pl.max_horizontal(pl.col("equity_paise").cum_max(), pl.lit(0)) - pl.col("equity_paise"))
        .cast(pl.Int64)
        .alias("drawdown_paise")
    )


def session_seconds_from_spec(spec: dict[str, Any]) -> int:
    """Seconds between ``time.session_start`` and ``time.session_end`` of a spec dict."""
    timing = spec.get("time") or {}
    start = _seconds_of_day(str(timing.get("session_start", "09:15")))
    end = _seconds_of_day(str(timing.get("session_end", "15:30")))
    if end <= start:
        raise ValueError(f"session_end {timing.get('session_end')} is not after session_start")
    return end - start


@dataclass(frozen=True)
class RunResults:
    """The files of one finished run, read into memory."""

    run_dir: Path
    run: dict[str, Any]
    spec: dict[str, Any]
    daily: pl.DataFrame
    trades: pl.DataFrame
    samples: pl.DataFrame | None

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or self.run_dir.name)

    @property
    def timezone(self) -> str:
        return str((self.spec.get("time") or {}).get("timezone") or "Asia/Kolkata")

    def statistics(self) -> Statistics:
        return compute_statistics(
            self.daily, self.trades, session_seconds=session_seconds_from_spec(self.spec)
        )

    def breakdowns(self) -> dict[str, list[FacetRow]]:
        """Round trips by facet (``stats_breakdown``): all, weekday, entry window, month."""
        windows = (self.spec.get("time") or {}).get("entry_windows")
        return trade_breakdowns(self.trades, timezone=self.timezone, entry_windows=windows)


def read_run_results(run_dir: Path) -> RunResults:
    """Read ``run.json``, ``spec.json``, ``daily.parquet``, ``trades.parquet``, samples."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LakeError(f"{run_dir}: no such run directory", path=str(run_dir))
    daily_path = run_dir / "daily.parquet"
    if not daily_path.exists():
        raise LakeError(
            f"{daily_path} is missing: daily.parquet is written when a run finishes; "
            "finish or resume the run first.",
            path=str(daily_path),
        )
    trades_path = run_dir / "trades.parquet"
    samples_path = run_dir / "samples.parquet"
    return RunResults(
        run_dir=run_dir,
        run=_read_json(run_dir / "run.json"),
        spec=_read_json(run_dir / "spec.json"),
        daily=pl.read_parquet(daily_path),
        # A run without a single fill may have no trades.parquet at all.
        trades=pl.read_parquet(trades_path) if trades_path.exists() else pl.DataFrame(),
        samples=pl.read_parquet(samples_path) if samples_path.exists() else None,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LakeError(f"{path} is missing from the run directory", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise LakeError(f"{path} is not valid JSON ({exc})", path=str(path)) from exc
    if not isinstance(data, dict):
        raise LakeError(f"{path} must hold a JSON object", path=str(path))
    return data


def _seconds_of_day(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)


def _conform(frame: pl.DataFrame, columns: dict[str, Any], name: str) -> pl.DataFrame:
    # An empty frame with no columns (no fills at all) is a valid, empty input.
    if frame.width == 0:
        return pl.DataFrame(schema=columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaMismatchError(
            f"{name}: missing column(s) {', '.join(missing)}; see docs/backtest-results.md "
            "for the columns a run writes.",
            missing=missing,
        )
    try:
        return frame.select([pl.col(c).cast(t, strict=True) for c, t in columns.items()])
    except pl.exceptions.PolarsError as exc:
        raise SchemaMismatchError(
            f"{name}: a column does not have the type docs/backtest-results.md gives ({exc})"
        ) from exc


def _check_statuses(daily: pl.DataFrame) -> None:
    unknown = sorted(set(daily["status"].drop_nulls().to_list()) - set(DAY_STATUSES))
    if unknown or daily["status"].null_count():
        raise SchemaMismatchError(
            f"daily.parquet: column status holds {unknown or ['null']}; "
            f"allowed: {', '.join(DAY_STATUSES)}",
            column="status",
        )
    bad = daily.filter(
        (pl.col("status") == "no_trade") & (pl.col("net_pnl_paise").fill_null(0) != 0)
    )
    if bad.height:
        raise SchemaMismatchError(
            f"daily.parquet: no_trade day {bad['date'][0]} has net_pnl_paise "
            f"{bad['net_pnl_paise'][0]}; a day without a trade must have 0 P&L.",
            column="net_pnl_paise",
        )


def _reason_counts(frame: pl.DataFrame) -> dict[str, int]:
    counts = (
        frame.select(pl.col("skip_reason").fill_null("(no reason given)"))
        .group_by("skip_reason")
        .len()
        .sort(["len", "skip_reason"], descending=[True, False])
    )
    return {str(r): int(n) for r, n in counts.iter_rows()}


def _round_trip_nets(trades: pl.DataFrame) -> list[int]:
    if trades.height == 0:
        return []
    grouped = (
        trades.group_by("date", "position_id")
        .agg((pl.col("cash_flow_paise").sum() - pl.col("costs_paise").sum()).alias("net"))
        .sort("date", "position_id")
    )
    return [int(v) for v in grouped["net"]]


def _mean_rupees(values: list[int]) -> float | None:
    # Sum exactly in integer paise, divide once.
    return sum(values) / len(values) / 100 if values else None


def _max_drawdown(
    series: list[int], dates: list[date]
) -> tuple[int, date | None, date | None, date | None]:
    equity = 0
    peak_equity = 0
    peak_date: date | None = None
    worst = 0
    worst_peak: tuple[int, date | None] = (0, None)
    trough: date | None = None
    for value, day in zip(series, dates, strict=True):
        equity += value
        if equity >= peak_equity:
            peak_equity, peak_date = equity, day
        elif peak_equity - equity > worst:
            worst = peak_equity - equity
            worst_peak = (peak_equity, peak_date)
            trough = day
    if worst == 0:
        return 0, None, None, None
    recovery: date | None = None
    equity = 0
    for value, day in zip(series, dates, strict=True):
        equity += value
        if trough is not None and day > trough and equity >= worst_peak[0]:
            recovery = day
            break
    return worst, worst_peak[1], trough, recovery
