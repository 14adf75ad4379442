"""Round trips and their statistics by facet: all, weekday, entry window, month.

A **round trip** is one position of a day (``date``, ``position_id`` in the fills): its
entry is its first fill, its exit its last, its hold time the seconds between them and
its net P&L the sum of its cash flows minus its costs, in integer paise (the same
definition ``stats.compute_statistics`` counts round trips with).

Per facet value the columns a quant reads first:

- ``round_trips``, ``win_rate`` (share with net > 0);
- ``expectancy_rupees``: the mean net P&L per round trip; ``median_rupees``;
- ``profit_factor``: gross wins ÷ gross losses (inf with wins and no loss, None with
  neither);
- ``hold_p50_seconds``: the median hold time; ``total_net_paise``.

Facets: ``weekday`` of the trading day; ``entry_window``, the spec's entry window that
holds the entry's local time (``HH:MM-HH:MM``; ``other`` for an entry outside all, e.g. a
re-target), else the local hour of the entry; ``month`` (``YYYY-MM``). Computed once
here and served to the HTML report and the dashboard alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import time
from typing import Any

import numpy as np
import polars as pl

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
FACETS = ("all", "weekday", "entry_window", "month")


@dataclass(frozen=True)
class FacetRow:
    facet: str
    key: str
    round_trips: int
    win_rate: float | None
    expectancy_rupees: float | None
    median_rupees: float | None
    profit_factor: float | None
    hold_p50_seconds: float | None
    total_net_paise: int

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["profit_factor"] is not None and math.isinf(out["profit_factor"]):
            out["profit_factor"] = "inf"  # JSON has no infinity
        return out


def round_trip_table(trades: pl.DataFrame) -> pl.DataFrame:
    """One row per round trip: date, position_id, entry_ts, exit_ts, hold_seconds, net_paise."""
    if trades.height == 0:
        return pl.DataFrame(
            schema={
                "date": pl.Date,
                "position_id": pl.Int64,
                "entry_ts": pl.Datetime("ns", "UTC"),
                "exit_ts": pl.Datetime("ns", "UTC"),
                "hold_seconds": pl.Float64,
                "net_paise": pl.Int64,
            }
        )
    table = (
        trades.group_by("date", "position_id")
        .agg(
            pl.col("ts").min().alias("entry_ts"),
            pl.col("ts").max().alias("exit_ts"),
            (pl.col("cash_flow_paise").sum() - pl.col("costs_paise").sum())
            .cast(pl.Int64)
            .alias("net_paise"),
        )
        .sort("date", "position_id")
    )
    held_ns = (table["exit_ts"] - table["entry_ts"]).dt.total_nanoseconds().to_numpy()
    # NumPy's true division: whole seconds stay whole (Polars' divide drifts by an ulp).
    hold = pl.Series("hold_seconds", held_ns.astype(np.float64) / 1e9)
    return table.with_columns(hold).select(
        "date", "position_id", "entry_ts", "exit_ts", "hold_seconds", "net_paise"
    )


def _window_of(entry: time, windows: list[tuple[time, time, str]]) -> str:
    for first, last, label in windows:
        if first <= entry < last:
            return label
    return "other"


def _parse_windows(entry_windows: list[str] | None) -> list[tuple[time, time, str]]:
    out = []
    for text in entry_windows or ():
        first, last = (time.fromisoformat(p.strip()) for p in text.split("-"))
        out.append((first, last, text))
    return out


def profit_factor(wins: int, losses: int) -> float | None:
    """Gross wins ÷ gross losses (paise, losses as a positive amount): inf with wins and
    no loss, None with neither."""
    if losses > 0:
        return wins / losses
    return math.inf if wins > 0 else None


def _row(facet: str, key: str, nets: np.ndarray, holds: np.ndarray) -> FacetRow:
    n = int(nets.size)
    wins, losses = int(nets[nets > 0].sum()), -int(nets[nets < 0].sum())
    return FacetRow(
        facet=facet,
        key=key,
        round_trips=n,
        win_rate=float((nets > 0).sum() / n) if n else None,
        # Sums in integer paise, one division: exact means.
        expectancy_rupees=int(nets.sum()) / n / 100 if n else None,
        median_rupees=float(np.median(nets)) / 100 if n else None,
        profit_factor=profit_factor(wins, losses),
        hold_p50_seconds=float(np.median(holds)) if n else None,
        total_net_paise=int(nets.sum()),
    )


def trade_breakdowns(
    trades: pl.DataFrame, *, timezone: str, entry_windows: list[str] | None = None
) -> dict[str, list[FacetRow]]:
    """The facet tables of a run's fills (see the module docstring)."""
    table = round_trip_table(trades)
    windows = _parse_windows(entry_windows)
    local = table["entry_ts"].dt.convert_time_zone(timezone)
    keys: dict[str, list[str]] = {
        "all": ["all"] * table.height,
        "weekday": [WEEKDAYS[d.weekday()] for d in table["date"]],
        "month": [f"{d.year:04d}-{d.month:02d}" for d in table["date"]],
        "entry_window": [
            _window_of(t.time(), windows) if windows else f"{t.hour:02d}:00"
            for t in local.to_list()
        ],
    }
    nets = table["net_paise"].to_numpy()
    holds = table["hold_seconds"].to_numpy()
    out: dict[str, list[FacetRow]] = {}
    for facet in FACETS:
        labels = np.array(keys[facet], dtype=object)
        order = (
            sorted(set(keys[facet]), key=WEEKDAYS.index)
            if facet == "weekday"
            else sorted(set(keys[facet]))
        )
        out[facet] = [_row(facet, key, nets[labels == key], holds[labels == key]) for key in order]
    if not table.height:
        out["all"] = [_row("all", "all", np.zeros(0, np.int64), np.zeros(0))]
    return out


__all__ = ["FACETS", "FacetRow", "profit_factor", "round_trip_table", "trade_breakdowns"]
