"""The session's 1-second grid and the backward as-of join of time series onto it.

The value at grid second ``g`` is the latest row with ``ts <= g`` (a snapshot stamped
``g`` is known at ``g``), no older than the tolerance; its age ``g - ts`` is carried.
Prices become integer paise (0 = no price).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numba
import numpy as np
import polars as pl

from ticklake.backtest.spec import StrategySpec, parse_hhmm

NS = 1_000_000_000
MISSING = np.int64(-1)


def session_grid(day: date, spec: StrategySpec) -> np.ndarray:
    """UTC ns of every second of the session, [session_start, session_end)."""
    tz = ZoneInfo(spec.time.timezone)
    start = datetime.combine(day, parse_hhmm(spec.time.session_start), tzinfo=tz)
    end = datetime.combine(day, parse_hhmm(spec.time.session_end), tzinfo=tz)
    first = int(start.timestamp()) * NS
    count = int((end - start).total_seconds())
    return first + np.arange(count, dtype=np.int64) * NS


def grid_index_of(day: date, spec: StrategySpec, clock: time) -> int:
    """Grid position of a wall-clock time (clamped to the session)."""
    tz = ZoneInfo(spec.time.timezone)
    start = datetime.combine(day, parse_hhmm(spec.time.session_start), tzinfo=tz)
    at = datetime.combine(day, clock, tzinfo=tz)
    return int((at - start).total_seconds())


def entry_mask(spec: StrategySpec, day: date, seconds: int) -> np.ndarray:
    """True at grid seconds inside an entry window (window ends are exclusive)."""
    mask = np.zeros(seconds, dtype=np.bool_)
    for start, end in spec.time.windows():
        lo = max(grid_index_of(day, spec, start), 0)
        hi = min(grid_index_of(day, spec, end), seconds)
        if hi > lo:
            mask[lo:hi] = True
    return mask


def _asof_indices(
    row_ts: np.ndarray, grid: np.ndarray, tolerance_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Backward as-of: index of the last row with ts <= g, and its age in seconds."""
    idx = np.searchsorted(row_ts, grid, side="right") - 1
    valid = idx >= 0
    age_ns = np.where(valid, grid - row_ts[np.clip(idx, 0, None)], -1)
    valid &= age_ns <= tolerance_ns
    age = np.where(valid, age_ns // NS, MISSING)
    return np.where(valid, idx, -1), age


def _to_paise(values: np.ndarray) -> np.ndarray:
    out = np.rint(np.nan_to_num(values, nan=0.0) * 100.0).astype(np.int64)
    return np.where(out > 0, out, 0)


# From here on a price × 100 does not fit an int64: like NaN or ±inf, no price.
_PAISE_LIMIT = float(2**63)


@numba.njit(cache=True)
def _price_paise(value: float) -> int:
    """One price in rupees as integer paise, 0 for a missing or non-positive price."""
    if not math.isfinite(value):
        return 0
    paise = np.rint(value * 100.0)
    if paise <= 0.0 or paise >= _PAISE_LIMIT:
        return 0
    return int(paise)


def _paise_on_grid(frame: pl.DataFrame, column: str, idx: np.ndarray) -> np.ndarray:
    """A price column as-of on the grid (``idx`` from ``_asof_indices``), paise, 0 = none."""
    if column not in frame.columns or frame.height == 0:
        return np.zeros(idx.size, np.int64)
    values = _to_paise(frame[column].cast(pl.Float64).to_numpy())
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], 0)


def _volume_per_second(frame: pl.DataFrame, ts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The sum of ``volume`` over the rows in ``(g - 1 s, g]`` per grid second ``g`` (NaN
    everywhere when the frame has no volume)."""
    if "volume" not in frame.columns or frame["volume"].null_count() == frame.height:
        return np.full(grid.size, np.nan)
    volumes = frame["volume"].cast(pl.Float64).fill_null(0.0).to_numpy()
    cumulative = np.concatenate([[0.0], np.cumsum(volumes)])
    upper = np.searchsorted(ts, grid, side="right")
    lower = np.searchsorted(ts, grid - NS, side="right")
    return cumulative[upper] - cumulative[lower]
