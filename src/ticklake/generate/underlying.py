"""The underlying's 1-second path over an NSE session: simulated, or a real series rescaled.

Simulated days are GBM with a U-shaped intraday volatility (busy open and close, quiet
lunch), a few Poisson jumps a day and an overnight gap. A real series (the NIFTY 50
1-second files) is cut to 09:15:00–15:29:59 IST, forward-filled onto the grid (the
first in-session value fills any seconds before it, so a partial file ends flat) and
rescaled so its first value continues from the previous day's close.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from ticklake.errors import ConfigError

#: Seconds in the continuous session 09:15:00 .. 15:29:59.
SESSION_SECONDS = 22_500
#: Offset of 09:15:00 from midnight.
SESSION_OPEN_SECOND = 9 * 3600 + 15 * 60
#: Index values are published to the paisa; the files look like multiples of 0.05.
SPOT_TICK = 0.05

_TRADING_SECONDS_PER_YEAR = 252 * SESSION_SECONDS


@dataclass(frozen=True)
class PathConfig:
    """Parameters of the simulated underlying."""

    annual_volatility: float
    jumps_per_day: float = 2.0
    jump_size: float = 0.0015
    overnight_gap: float = 0.005


def intraday_volatility_shape(second_of_session: np.ndarray) -> np.ndarray:
    """U-shaped multiplier with mean square 1 over the session."""
    t = second_of_session.astype(np.float64)
    shape = 1.0 + 1.2 * np.exp(-t / 1200.0) + 0.6 * np.exp(-(SESSION_SECONDS - t) / 1200.0)
    full = np.arange(SESSION_SECONDS, dtype=np.float64)
    norm = 1.0 + 1.2 * np.exp(-full / 1200.0) + 0.6 * np.exp(-(SESSION_SECONDS - full) / 1200.0)
    return shape / np.sqrt(np.mean(norm**2))


def simulate_session(
    rng: np.random.Generator, open_price: float, config: PathConfig, seconds: np.ndarray
) -> np.ndarray:
    """Simulate one session on the grid ``seconds`` (seconds after 09:15:00)."""
    steps = np.diff(seconds, prepend=seconds[0]).astype(np.float64)
    per_second = config.annual_volatility / np.sqrt(_TRADING_SECONDS_PER_YEAR)
    scale = per_second * intraday_volatility_shape(seconds) * np.sqrt(steps)
    log_returns = rng.standard_normal(seconds.size) * scale - 0.5 * scale**2
    jump_count = rng.poisson(config.jumps_per_day)
    if jump_count:
        where = rng.integers(1, max(seconds.size, 2), size=jump_count)
        np.add.at(log_returns, where, rng.normal(0.0, config.jump_size, size=jump_count))
    log_returns[0] = 0.0
    path = open_price * np.exp(np.cumsum(log_returns))
    return round_to_tick(path)


def overnight_open(rng: np.random.Generator, previous_close: float, config: PathConfig) -> float:
    """Return the next session's open: the previous close moved by a normal gap."""
    return float(previous_close * np.exp(rng.normal(0.0, config.overnight_gap)))


def round_to_tick(values: np.ndarray) -> np.ndarray:
    """Round to the 0.05 grid and to two decimals, so values print exactly."""
    return np.round(np.round(values / SPOT_TICK) * SPOT_TICK, 2)


def list_spot_files(spot_path: Path) -> list[Path]:
    """Return the real 1-second files under ``spot_path`` (a file or a folder), sorted."""
    spot_path = Path(spot_path)
    if spot_path.is_file():
        return [spot_path]
    files = sorted(p for p in spot_path.glob("*.csv*") if p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise ConfigError(
            f"spot_path {spot_path} holds no .csv or .csv.gz files; point it at the NIFTY 50 "
            "1-second files (e.g. shared/data/nse-nifty50-index-1s) or at one such file.",
            path=str(spot_path),
        )
    return files


def load_real_session(path: Path, seconds: np.ndarray) -> tuple[date, np.ndarray]:
    """Read one ``YYYY-MM-DD HH:MM:SS,value`` file and put it on the session grid."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    session_values = np.full(SESSION_SECONDS, np.nan)
    session_day: date | None = None
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            stamp, value_text = line.split(",", 1)
            hh, mm, ss = (int(x) for x in stamp[11:19].split(":"))
            value = float(value_text)
            if session_day is None:
                session_day = date.fromisoformat(stamp[:10])
        except ValueError:
            raise ConfigError(
                f"{path}, line {line_no}: expected 'YYYY-MM-DD HH:MM:SS,value', got {line!r}",
                path=str(path),
                row=line_no,
            ) from None
        offset = hh * 3600 + mm * 60 + ss - SESSION_OPEN_SECOND
        if 0 <= offset < SESSION_SECONDS:
            session_values[offset] = value
    present = np.flatnonzero(~np.isnan(session_values))
    if session_day is None or present.size == 0:
        raise ConfigError(
            f"{path}: no values between 09:15:00 and 15:29:59; pick a file with a session.",
            path=str(path),
        )
    # Forward-fill: index of the last present value at or before each second.
    last_seen = np.maximum.accumulate(
        np.where(np.isnan(session_values), -1, np.arange(SESSION_SECONDS))
    )
    last_seen[last_seen < 0] = present[0]
    filled = session_values[last_seen]
    return session_day, filled[seconds]
