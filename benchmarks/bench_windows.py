"""Window statistics over five years of 1-second underlying data.

Generates (not timed) ``--sessions`` NSE sessions of 22,500 one-second prices
(09:15:00-15:29:59 IST, GBM with a U-shaped intraday volatility and overnight gaps,
cumulative volume) and writes them with ``Lake.write`` as one ``prices`` partition per
trading day. Then times ``window_statistics`` on the users' Monday question (windows
09:15-09:20 and 15:20-15:30, measures return and volume_change_per_second, all
regimes and outliers) and on every weekday, and prints a table. Target: five years
(about 1,250 sessions) in 10 s or less on 2 cores.

    python benchmarks/bench_windows.py                      # 1,250 sessions
    python benchmarks/bench_windows.py --sessions 250 --keep /tmp/bench-lake
    python benchmarks/bench_windows.py --lake /tmp/bench-lake   # reuse a generated lake
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from ticklake.generate.underlying import (
    SESSION_OPEN_SECOND,
    SESSION_SECONDS,
    PathConfig,
    overnight_open,
    simulate_session,
)
from ticklake.lake import Lake, init_lake, open_lake
from ticklake.market.calendar import trading_days
from ticklake.stats import window_statistics

DATASET = "nifty_synthetic"
DAYS_PER_WRITE = 25


def generate(lake: Lake, sessions: int, first_day: date, seed: int = 11) -> int:
    """Write ``sessions`` trading days of 1 s prices and cumulative volume; return rows."""
    days = trading_days(first_day, date(first_day.year + 7, 12, 31))[:sessions]
    config = PathConfig(annual_volatility=0.14)
    seconds = np.arange(SESSION_SECONDS, dtype=np.int64)
    close, rows, batch = 18_000.0, 0, []
    for index, day in enumerate(days):
        rng = np.random.default_rng([seed, day.toordinal()])
        open_price = close if index == 0 else overnight_open(rng, close, config)
        prices = np.round(simulate_session(rng, open_price, config, seconds) / 0.05) * 0.05
        volume = np.cumsum(rng.poisson(40, SESSION_SECONDS)).astype(np.float64)
        midnight_utc = np.datetime64(day.isoformat(), "ns") - np.timedelta64(330, "m")
        ts = midnight_utc + (SESSION_OPEN_SECOND + seconds) * np.timedelta64(1_000_000_000, "ns")
        batch.append(
            pl.DataFrame(
                {
                    "ts": pl.Series(ts).dt.replace_time_zone("UTC"),
                    "instrument": "NIFTY 50",
                    "price": prices,
                    "volume": volume,
                }
            )
        )
        close = float(prices[-1])
        rows += SESSION_SECONDS
        if len(batch) == DAYS_PER_WRITE or index == len(days) - 1:
            lake.write(
                DATASET,
                pl.concat(batch),
                schema="prices",
                timezone="Asia/Kolkata",
                input_is_unique=True,
            )
            batch = []
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1_250)
    parser.add_argument("--lake", type=Path, help="use this lake (generate only if empty)")
    parser.add_argument("--keep", type=Path, help="generate into this directory and keep it")
    parser.add_argument("--repeat", type=int, default=2, help="best of N timed runs")
    args = parser.parse_args()

    workdir = None
    if args.lake is not None and (args.lake / "ticklake.toml").exists():
        lake = open_lake(args.lake)
    else:
        root = args.lake or args.keep
        if root is None:
            workdir = Path(tempfile.mkdtemp(prefix="bench-windows-"))
            root = workdir / "lake"
        lake = init_lake(root)
    try:
        if DATASET not in lake.dataset_names():
            began = time.perf_counter()
            rows = generate(lake, args.sessions, date(2019, 1, 1))
            print(f"generated {rows:,} rows in {time.perf_counter() - began:.1f} s (not timed)")
        partitions = lake.partitions(DATASET)
        rows = sum(p.rows for p in partitions)
        measures = ["return", "volume_change_per_second"]
        cases = [
            ("Mondays", ["mon"], measures),
            ("all weekdays", ["mon", "tue", "wed", "thu", "fri"], measures),
        ]
        print(
            f"\n{len(partitions):,} sessions, {rows:,} rows, "
            f"{partitions[0].date} .. {partitions[-1].date}, cores: {os.cpu_count()}"
        )
        print(f"{'case':<14} {'days used':>9} {'seconds':>8} {'rows/s (dataset)':>17}  target")
        for name, weekdays, measures in cases:
            best = float("inf")
            for _ in range(args.repeat):
                began = time.perf_counter()
                stats = window_statistics(
                    lake,
                    DATASET,
                    windows=["09:15-09:20", "15:20-15:30"],
                    weekdays=weekdays,
                    measures=measures,
                )
                best = min(best, time.perf_counter() - began)
            used = stats.days_used("09:15-09:20")
            verdict = "ok (<= 10 s)" if best <= 10 else "MISSED (> 10 s)"
            print(f"{name:<14} {used:>9,} {best:>8.2f} {rows / best:>17,.0f}  {verdict}")
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
