"""Benchmark: a 100-variant sweep vs one variant on the same days (target ≤ 5×).

Generates (once) a few BANKNIFTY days, then times ``run_day_variants`` — the sweep's
day task without the ledger — for 1 variant and for 100 variants (ema_fast 1..10 ×
ema_slow 11..20, entry and exit conditions on the underlying and a leg), each on the
same days, in one process. Prints a table.

    .venv/bin/python benchmarks/bench_sweep.py [--days 3] [--strikes 10] [--step 1]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from ticklake.backtest.conditions.compile import _CACHE
from ticklake.backtest.runner import plan_days
from ticklake.backtest.sweep import expand, run_day_variants, sweep_from_data


def build_lake(root: Path, days: int, strikes: int, step: int) -> Path:
    from ticklake.generate import generate_options
    from ticklake.ingest.pipeline import ingest_files
    from ticklake.ingest.readers.base import ReaderOptions
    from ticklake.lake import init_lake

    out = root / "out"
    generate_options(
        "BANKNIFTY",
        start=date(2024, 1, 8),
        days=days,
        out=out,
        seed=5,
        strikes_each_side=strikes,
        expiries=("weekly",),
        seconds_step=step,
    )
    lake = init_lake(root / "lake")
    ingest_files(lake, "nse_options", [out / "options"], "options")
    ingest_files(
        lake, "nse_index", [out / "spot"], "spot", options=ReaderOptions(instrument="BANKNIFTY")
    )
    shutil.rmtree(out)
    return root / "lake"


def template(end: date) -> dict:
    return {
        "name": "bench",
        "universe": {
            "underlying": "BANKNIFTY",
            "options_dataset": "options",
            "underlying_dataset": "spot",
        },
        "time": {
            "start": "2024-01-08",
            "end": end.isoformat(),
            "entry_windows": ["09:20-15:00"],
            "exit_time": "15:20",
        },
        "legs": [
            {"name": "ce", "opt_type": "CE", "side": "sell"},
            {"name": "pe", "opt_type": "PE", "side": "sell"},
        ],
        "entry": {"when": "ema(${ema_fast}) > ema(${ema_slow}) and ce.ltp > ce.open_of_day * 0.5"},
        "exits": {
            "when": "position.pnl < -3000 or ema(${ema_fast}) crosses_below ema(${ema_slow})"
        },
        "max_entries_per_day": 5,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--strikes", type=int, default=10)
    parser.add_argument("--step", type=int, default=1, help="snapshot step in seconds")
    args = parser.parse_args()
    from ticklake.lake import open_lake

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        lake = open_lake(build_lake(Path(tmp), args.days, args.strikes, args.step))
        one = expand(
            sweep_from_data(
                {**template(date(2024, 1, 31)), "sweep": {"ema_fast": [1], "ema_slow": [11]}}
            )
        )
        many = expand(
            sweep_from_data(
                {
                    **template(date(2024, 1, 31)),
                    "sweep": {"ema_fast": list(range(1, 11)), "ema_slow": list(range(11, 21))},
                }
            )
        )
        days = [
            d
            for d in plan_days(one[0].spec)
            if lake.partitions("options") and any(p.date == d for p in lake.partitions("options"))
        ][: args.days]
        run_day_variants(lake, [one[0].spec], days[0])  # warm: Numba loads its cache
        rows = []
        for label, variants in (("1 variant", one), (f"{len(many)} variants", many)):
            _CACHE.clear()
            specs = [v.spec for v in variants]
            started = time.perf_counter()
            fills = 0
            for day in days:
                fills += sum(o.summary["fills"] for o in run_day_variants(lake, specs, day))
            rows.append((label, time.perf_counter() - started, fills))
        base = rows[0][1]
        print(f"{'run':<14} {'days':>4} {'seconds':>8} {'per day':>8} {'fills':>7} {'× one':>6}")
        for label, seconds, fills in rows:
            print(
                f"{label:<14} {len(days):>4} {seconds:>8.2f} {seconds / len(days):>8.2f} "
                f"{fills:>7} {seconds / base:>6.2f}"
            )
        print(f"target: 100 variants ≤ 5.00 × one variant; measured {rows[1][1] / base:.2f} ×")


if __name__ == "__main__":
    main()
