"""``backtest estimate`` accuracy: predicted vs actual wall time of a backtest (issue #16).

Generates (once) a lake of DAYS generated trading days (weekly + monthly expiries,
STRIKES strikes each side, 1-second snapshots), runs ``estimate_run`` for an ATM straddle
over the lake's days, then the backtest itself serially and on WORKERS process workers,
and prints predicted, actual and the error (target: within ±30 %). During each run the
online ETA of the progress bar and the dashboard (``ticklake.backtest.eta``) is recorded
and compared, at a quarter, half and three quarters of the days, with the time that was
actually left and with a naive ``elapsed / done × left``. Last, the 5-year extrapolation:
YEARS_DAYS days (1,250 = 5 years) priced from the process run's measured per-day costs
(the ledger's ``seconds``, fitted ``fixed + per_row × rows``) with this lake's row
distribution and, linearly, with the full-scale lake's mean rows per day (22 strikes each
side: 3.6 M), plus the worker start-ups (target: ≤ 120 s on 2 cores).

    .venv/bin/python benchmarks/bench_estimate.py --days 12 --lake /tmp/est/lake
    .venv/bin/python benchmarks/bench_estimate.py --days 22 --strikes 6 --lake /tmp/eta22/lake
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from ticklake.backtest.estimate import day_cost, estimate_run, fit_day_cost, predict_wall
from ticklake.backtest.eta import run_eta
from ticklake.backtest.run_ledger import _save_ledger
from ticklake.backtest.runner import RunResult, plan_days, run_backtest
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


def build_lake(root: Path, days: int, strikes: int = 10) -> Lake:
    if (root / "ticklake.toml").is_file():
        return open_lake(root)
    out = root.parent / "generated"
    shutil.rmtree(out, ignore_errors=True)
    began = time.perf_counter()
    generate_options(
        "BANKNIFTY", start=date(2024, 1, 8), days=days, out=out, seed=5,
        strikes_each_side=strikes, expiries=("weekly", "monthly"), seconds_step=1,
    )  # fmt: skip
    print(f"generated {days} days in {time.perf_counter() - began:.0f} s", flush=True)
    began = time.perf_counter()
    lake = init_lake(root)
    ingest_files(lake, "nse_options", [out / "options"], "banknifty_options")
    ingest_files(lake, "nse_index", [out / "spot"], "banknifty_spot",
                 options=ReaderOptions(instrument="BANKNIFTY"))  # fmt: skip
    shutil.rmtree(out)
    print(f"ingested in {time.perf_counter() - began:.0f} s", flush=True)
    return lake


#: Mean option rows per day of the full-scale generated lake (22 strikes each side, 20
#: days: 71.5 M rows; docs/benchmarks.md, "Backtest day task").
FULL_SCALE_ROWS_PER_DAY = 3_575_000


def _timed_run(lake: Lake, spec: Any, executor: str, workers: int) -> tuple[RunResult, float, list]:
    """Run once with the online ETA recording ``(elapsed, days_done, eta_seconds)``."""
    days = [d.isoformat() for d in plan_days(spec)]
    trace: list[tuple[float, int, float, dict[str, Any]]] = []
    eta = run_eta(lake, [spec], days, executor=executor, workers=workers, use_cache=False)
    record = eta.wrap(
        lambda s: trace.append(
            (s["elapsed_seconds"], s["days_done"], s["eta_seconds"], s["eta_model"])
        )
    )
    started = time.perf_counter()
    result = run_backtest(
        lake, spec, executor=executor, workers=workers, use_cache=False, progress=record
    )
    return result, time.perf_counter() - started, trace


def _eta_checkpoints(trace: list, actual: float, total_days: int, fit: dict) -> list[str]:
    lines = [
        f"    online fit at the end: {fit['fixed_seconds']:.3f} s + "
        f"{fit['per_row_seconds'] * 1e6:.3f} s per M rows, start-up "
        f"{fit['startup_seconds']:.2f} s; after the last day the run took "
        f"{actual - trace[-1][0]:.2f} s more (exit, final files: TAIL_SECONDS)"
    ]
    for fraction in (0.25, 0.5, 0.75):
        elapsed, done, eta, _ = next(t for t in trace if t[1] >= fraction * total_days)
        left = actual - elapsed
        naive = elapsed / done * (total_days - done)
        lines.append(
            f"    after {done:>3}/{total_days} days: ETA {eta:6.2f} s, naive {naive:6.2f} s, "
            f"actually left {left:6.2f} s (ETA error {100 * (eta - left) / left:+.0f} %, "
            f"naive {100 * (naive - left) / left:+.0f} %)"
        )
    return lines


def _ledger_rewrites(result: RunResult, days: int) -> float:
    """Seconds the parent spends rewriting a ``days``-day ledger after every day."""
    ledger = json.loads((result.run_dir / "run.json").read_text())
    entry = next(iter(ledger["days"].values()))
    big = {**ledger, "days": {f"{i:05d}": entry for i in range(days)}}
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        for _ in range(5):
            _save_ledger(Path(tmp), big)  # what the runner calls after every day
        one = (time.perf_counter() - began) / 5
    return days * one / 2  # the ledger grows linearly: on average half its final size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=12, help="generated trading days")
    parser.add_argument("--strikes", type=int, default=10, help="strikes each side of ATM")
    parser.add_argument("--lake", type=Path, default=Path("/tmp/est/lake"))
    parser.add_argument("--sample-days", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="process workers")
    parser.add_argument("--years-days", type=int, default=1250, help="days to extrapolate to")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    lake = build_lake(args.lake, args.days, args.strikes)
    data_days = [p.date for p in lake.partitions(SPEC["universe"]["options_dataset"])]
    time_range = {"start": data_days[0].isoformat(), "end": data_days[-1].isoformat()}
    spec = parse_spec({**SPEC, "time": {**SPEC["time"], **time_range}})
    executors = (("serial", 1), ("process", args.workers))
    started = time.perf_counter()
    estimate = estimate_run(lake, spec, sample_days=args.sample_days, executors=executors)
    print(
        f"{len(estimate.days)} planned days, {estimate.data_days} with data, "
        f"{estimate.total_rows:,} option rows ({min(r for r in estimate.rows if r):,}–"
        f"{max(estimate.rows):,} a day); fit {estimate.fixed_seconds:.3f} s + "
        f"{estimate.per_row_seconds * 1e6:.3f} s per M rows; worker start-up "
        f"{estimate.worker_startup_seconds:.2f} s; the estimate took "
        f"{time.perf_counter() - started:.1f} s"
    )
    for sample in estimate.samples:
        print(f"  sample {sample.day}: {sample.rows:,} rows, {sample.wall_seconds:.3f} s wall")
    runs = {}
    print(f"{'executor':<12} {'predicted':>10} {'actual':>10} {'error':>8}")
    for executor, workers in executors:
        predicted = estimate.prediction(executor, workers).wall_seconds
        result, actual, trace = _timed_run(lake, spec, executor, workers)
        runs[executor] = result
        error = 100 * (predicted - actual) / actual
        print(f"{f'{executor} x{workers}':<12} {predicted:>9.2f}s {actual:>9.2f}s {error:>+7.1f}%")
        fit = trace[-1][3]
        print("\n".join(_eta_checkpoints(trace, actual, len(estimate.days), fit)))
    _extrapolate(lake, runs["process"], estimate, args)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _extrapolate(lake: Lake, run: RunResult, estimate: Any, args: argparse.Namespace) -> None:
    rows = dict(zip((d.isoformat() for d in estimate.days), estimate.rows, strict=True))
    timed = sorted((d, e["seconds"]) for d, e in run.ledger["days"].items() if rows.get(d))
    steady = [(rows[d], s) for d, s in timed[args.workers :]]  # each worker's first day warms
    fixed, per_row = fit_day_cost(steady)
    lake_rows = [r for r in estimate.rows if r]
    tasks = lake.settings.execution.day_tasks_per_worker
    startup = estimate.worker_startup_seconds
    print(
        f"measured per-day cost (process run's ledger, {len(steady)} days): {fixed:.3f} s + "
        f"{per_row * 1e6:.3f} s per M rows; worker start-up {startup:.2f} s"
    )
    ledger = _ledger_rewrites(run, args.years_days)
    for label, day_rows in (
        ("this lake's days", [lake_rows[i % len(lake_rows)] for i in range(args.years_days)]),
        ("full-scale days (3.6 M rows)", [FULL_SCALE_ROWS_PER_DAY] * args.years_days),
    ):
        costs = [day_cost(fixed, per_row, r) for r in day_rows]
        for executor, workers in (("serial", 1), ("process", args.workers)):
            wall = predict_wall(costs, executor, workers, startup=startup, tasks_per_worker=tasks)
            verdict = (
                ""
                if executor == "serial"
                else (
                    "  (target ≤ 120 s: " + ("met" if wall.wall_seconds <= 120 else "MISSED") + ")"
                )
            )
            print(
                f"{args.years_days} days, {label}, {executor} x{workers}: "
                f"{wall.wall_seconds:.1f} s (start-ups {wall.startup_seconds:.1f} s){verdict}"
            )
    print(f"not in the model: the parent's ledger rewrites after every day, ≈ {ledger:.1f} s")


if __name__ == "__main__":
    main()
