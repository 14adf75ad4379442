"""``backtest estimate`` accuracy: predicted vs actual wall time of a backtest (issue #16).

Generates (once) a lake of DAYS generated trading days (weekly + monthly expiries, 10
strikes each side, 1-second snapshots), runs ``estimate_run`` for an ATM straddle over
the lake's range, then the backtest itself serially and on 2 process workers, and prints
predicted, actual and the error. Target: within ±30 %.

    .venv/bin/python benchmarks/bench_estimate.py --days 12 --lake /tmp/est/lake
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import date
from pathlib import Path

from ticklake.backtest.estimate import estimate_run
from ticklake.backtest.runner import run_backtest
from ticklake.backtest.spec import parse_spec
from ticklake.generate import generate_options
from ticklake.ingest.pipeline import ingest_files
from ticklake.ingest.readers.base import ReaderOptions
from ticklake.lake import Lake, init_lake, open_lake

SPEC = {
    "name": "estimate_accuracy",
    "universe": {
        "underlying": "BANKNIFTY",
        "options_dataset": "banknifty_options",
        "underlying_dataset": "banknifty_spot",
    },
    "time": {
        "start": "2024-01-01",
        "end": "2024-02-29",
        "entry_windows": ["09:20-09:25"],
        "exit_time": "15:20",
    },
    "legs": [
        {"name": "ce", "opt_type": "CE", "side": "sell"},
        {"name": "pe", "opt_type": "PE", "side": "sell"},
    ],
}


def build_lake(root: Path, days: int) -> Lake:
    if (root / "ticklake.toml").is_file():
        return open_lake(root)
    out = root.parent / "generated"
    shutil.rmtree(out, ignore_errors=True)
    generate_options(
        "BANKNIFTY", start=date(2024, 1, 8), days=days, out=out, seed=5,
        strikes_each_side=10, expiries=("weekly", "monthly"), seconds_step=1,
    )  # fmt: skip
    lake = init_lake(root)
    ingest_files(lake, "nse_options", [out / "options"], "banknifty_options")
    ingest_files(lake, "nse_index", [out / "spot"], "banknifty_spot",
                 options=ReaderOptions(instrument="BANKNIFTY"))  # fmt: skip
    shutil.rmtree(out)
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--lake", type=Path, default=Path("/tmp/est/lake"))
    parser.add_argument("--sample-days", type=int, default=3)
    args = parser.parse_args()
    lake = build_lake(args.lake, args.days)
    spec = parse_spec(SPEC)
    started = time.perf_counter()
    estimate = estimate_run(
        lake, spec, sample_days=args.sample_days, executors=(("serial", 1), ("process", 2))
    )
    print(
        f"{len(estimate.days)} planned days, {estimate.data_days} with data, "
        f"{estimate.total_rows:,} option rows; fit {estimate.fixed_seconds:.3f} s + "
        f"{estimate.per_row_seconds * 1e6:.3f} s per M rows; worker start-up "
        f"{estimate.worker_startup_seconds:.2f} s; the estimate took "
        f"{time.perf_counter() - started:.1f} s"
    )
    for sample in estimate.samples:
        print(f"  sample {sample.day}: {sample.rows:,} rows, {sample.wall_seconds:.3f} s wall")
    print(f"{'executor':<12} {'predicted':>10} {'actual':>10} {'error':>8}")
    for executor, workers in (("serial", 1), ("process", 2)):
        predicted = estimate.prediction(executor, workers).wall_seconds
        started = time.perf_counter()
        run_backtest(lake, spec, executor=executor, workers=workers, use_cache=False)
        actual = time.perf_counter() - started
        error = 100 * (predicted - actual) / actual
        name = f"{executor} x{workers}"
        print(f"{name:<12} {predicted:>9.2f}s {actual:>9.2f}s {error:>+7.1f}%")


if __name__ == "__main__":
    main()
