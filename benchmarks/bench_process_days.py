"""A whole backtest run on the process executor: a fresh worker per day against
workers that serve many days (``execution.day_tasks_per_worker``), with the serial run
as the baseline, on generated BANKNIFTY days.

A day task is ~0.1 s of work on a full-scale day, while a new spawned worker pays
its interpreter start, the imports (Polars, NumPy, Numba) and loading the cached
kernels (~1-5 s): with a fresh process per day a 5-year run is dominated by process
starts. Prints wall time, seconds per day, the ratio to the serial run and the
5-year (1,250 days) run time this implies on the same 2 workers.

    python benchmarks/bench_process_days.py              # 20 full-scale days (reuses the lake
                                                         # that bench_backtest.py builds)
    python benchmarks/bench_process_days.py --quick      # 6 small days
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

YEARS_5_DAYS = 1_250


def main(argv: list[str] | None = None) -> None:
    from bench_backtest import FIRST_DAY, build_lake, lake_days, straddle_spec
    from rich.console import Console
    from rich.table import Table

    from ticklake.backtest.runner import run_backtest
    from ticklake.lake import open_lake

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 small days")
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    args = parser.parse_args(argv)
    days_n = args.days or (6 if args.quick else 20)
    strikes = 2 if args.quick else 22
    lake_root = build_lake(args.out, days_n, strikes)
    lake = open_lake(lake_root)
    days = lake_days(lake)
    spec = straddle_spec(days[0], days[-1] if days else FIRST_DAY + timedelta(days=1))
    # Warm the Numba cache on disk once, so no variant pays the compile.
    run_backtest(
        lake, spec, executor="serial", run_id=f"bench-warm-{time.time_ns()}", use_cache=False
    )

    variants = [
        ("serial", "serial", None),
        ("process, fresh worker per day", "process", 1),
        ("process, workers reused (default 100 days)", "process", 100),
    ]
    half = days[: max(1, len(days) // 2)]
    rows = []
    for label, executor, per_worker in variants:
        walls = []
        for chosen in (half, days):
            walls.append(_run(lake, spec, chosen, executor, per_worker, args.workers))
        rows.append((label, walls[0], walls[1]))

    # Two runs (half the days, all days) separate the fixed cost (starting workers) from
    # the cost per day: per_day = (T_all - T_half) / (days - half), fixed = T_all - n × it.
    serial_all = rows[0][2]
    table = Table(
        title=f"one backtest run over {len(days)} days ({args.workers} workers, strikes ±{strikes})"
    )
    for name in (
        "executor",
        f"wall s, {len(half)} days",
        f"wall s, {len(days)} days",
        "s / extra day",
        "fixed s",
        "vs serial",
        "5 years (1,250 days)",
    ):
        table.add_column(name, justify="left" if name == "executor" else "right")
    extra_days = max(1, len(days) - len(half))
    for label, wall_half, wall_all in rows:
        per_day = max(0.0, (wall_all - wall_half) / extra_days)
        fixed = max(0.0, wall_all - per_day * len(days))
        table.add_row(
            label,
            f"{wall_half:.1f}",
            f"{wall_all:.1f}",
            f"{per_day:.3f}",
            f"{fixed:.1f}",
            f"{serial_all / wall_all:.2f}×",
            f"{(fixed + per_day * YEARS_5_DAYS) / 60:.1f} min",
        )
    Console(width=140).print(table)


def _run(
    lake: Any, spec: Any, days: list[Any], executor: str, per_worker: int | None, workers: int
) -> float:
    """Wall seconds of one uncached run over ``days`` (the lake's settings restored)."""
    from ticklake.backtest.runner import run_backtest

    settings = lake.settings
    if per_worker is not None:
        execution = settings.execution.model_copy(update={"day_tasks_per_worker": per_worker})
        lake.settings = settings.model_copy(update={"execution": execution})
    narrowed = spec.model_copy(
        update={"time": spec.time.model_copy(update={"start": days[0], "end": days[-1]})}
    )
    began = time.perf_counter()
    try:
        result = run_backtest(
            lake,
            narrowed,
            executor=executor,
            workers=workers,
            run_id=f"bench-{executor}-{per_worker}-{len(days)}-{time.time_ns()}",
            use_cache=False,
        )
    finally:
        lake.settings = settings
    if result.status != "complete":
        raise SystemExit(f"{executor} ({per_worker} days per worker): run ended {result.status}")
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
