"""``ticklake backtest estimate``: the expected wall time of a run, from sampled days."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors


def register(backtest_app: typer.Typer) -> None:
    backtest_app.command("estimate")(handle_errors(estimate_cmd))


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def estimate_cmd(
    strategy: Annotated[Path, typer.Argument(help="Strategy YAML or JSON file.")],
    sample_days: Annotated[int, typer.Option(help="Days to run and time.")] = 3,
    start: Annotated[str | None, typer.Option(help="Override time.start (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Override time.end (YYYY-MM-DD).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Process workers to predict (default: 2 and the setting).")
    ] = None,
    lake_path: LakeOption = None,
) -> None:
    """Time a few days of the lake and predict the run's wall time per executor.

    Nothing is written: the sampled days are timing runs only. The model (fixed +
    per-row cost per day, worker start-up) is described in ``ticklake.backtest.estimate``.
    """
    from ticklake.backtest.spec import load_spec

    overrides = {k: v for k, v in (("time.start", start), ("time.end", end)) if v}
    spec = load_spec(strategy, overrides=overrides)
    lake = get_lake(lake_path)
    counts = sorted({workers} if workers else {2, lake.settings.execution.workers})
    executors = [("serial", 1), *(("process", n) for n in counts)]
    with console.status(f"timing {sample_days} sample day(s)…"):
        result = lake.estimate(spec, sample_days=sample_days, executors=executors)

    runnable = sum(result.runnable)
    console.print(
        f"[bold]{result.spec_name}[/]: {len(result.days)} planned day(s), "
        f"{result.data_days} with data ({result.total_rows:,} option rows), {runnable} to run, "
        f"{len(result.cached_days)} in the cache",
        highlight=False,
    )
    samples = Table("sampled day", "rows", "wall", "cpu", title="sampled days")
    for s in result.samples:
        samples.add_row(
            s.day.isoformat(), f"{s.rows:,}", f"{s.wall_seconds:.3f} s", f"{s.cpu_seconds:.3f} s"
        )
    console.print(samples)
    console.print(
        f"day cost = {result.fixed_seconds:.3f} s + {result.per_row_seconds * 1e6:.3f} s per "
        f"million rows; worker start-up {result.worker_startup_seconds:.2f} s",
        highlight=False,
    )
    table = Table("executor", "workers", "predicted wall", "of which start-up", title="ETA")
    for p in result.predictions:
        table.add_row(
            p.executor, str(p.workers), _seconds(p.wall_seconds), _seconds(p.startup_seconds)
        )
    console.print(table)
