"""``ticklake backtest run | resume | report | compare | runs | schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors

backtest_app = typer.Typer(help="Run and inspect options backtests.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(backtest_app, name="backtest")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days · {task.fields[fills]} fills · P&L ₹{task.fields[pnl]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _run_with_progress(call: Any, total: int) -> Any:
    with _progress() as prog:
        task = prog.add_task("backtest", total=total, fills=0, pnl="0.00")

        def on_progress(state: dict[str, Any]) -> None:
            prog.update(
                task,
                completed=state["days_done"],
                fills=state["fills"],
                pnl=f"{state['net_pnl_paise'] / 100:,.2f}",
            )

        return call(on_progress)


def _finish(result: Any) -> None:
    totals = result.ledger["totals"]
    samples = result.ledger.get("samples", {})
    console.print(
        f"run [bold]{result.run_id}[/] {result.status}: {totals['days']} day(s) "
        f"({totals['traded_days']} traded, {totals['skipped_days']} skipped), "
        f"{totals['fills']} fills, net P&L ₹{totals['net_pnl_paise'] / 100:,.2f} "
        f"(costs ₹{totals['costs_paise'] / 100:,.2f}); samples: first {samples.get('kept', 0)} "
        f"of {samples.get('of', 0)} fills",
        highlight=False,
    )
    console.print(f"results: {result.run_dir}", highlight=False)


@backtest_app.command("run")
@handle_errors
def run_cmd(
    strategy: Annotated[Path, typer.Argument(help="Strategy YAML or JSON file.")],
    start: Annotated[str | None, typer.Option(help="Override time.start (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Override time.end (YYYY-MM-DD).")] = None,
    executor: Annotated[str | None, typer.Option(help="serial | process | ray")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel day tasks.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every day.")] = False,
    report: Annotated[bool, typer.Option(help="Write report.html at the end.")] = True,
    lake_path: LakeOption = None,
) -> None:
    """Run a strategy over its date range, one task per trading day."""
    from ticklake.backtest.runner import plan_days, run_backtest
    from ticklake.backtest.spec import load_spec

    overrides = {k: v for k, v in (("time.start", start), ("time.end", end)) if v}
    spec = load_spec(strategy, overrides=overrides)
    lake = get_lake(lake_path)
    total = len(plan_days(spec))
    result = _run_with_progress(
        lambda progress: run_backtest(
            lake, spec, executor=executor, workers=workers, use_cache=not no_cache,
            progress=progress,
        ),
        total,
    )
    _finish(result)
    if report:
        _write_report(result.run_dir)


def _write_report(run_dir: Path) -> None:
    from ticklake.backtest.report import print_summary, write_report

    path = write_report(run_dir)
    print_summary(run_dir, console)
    console.print(f"report: {path}", highlight=False)


@backtest_app.command("resume")
@handle_errors
def resume_cmd(
    run: Annotated[str, typer.Argument(help="Run id or directory.")],
    executor: Annotated[str | None, typer.Option(help="serial | process | ray")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel day tasks.")] = None,
    lake_path: LakeOption = None,
) -> None:
    """Finish an interrupted run without redoing completed days."""
    from ticklake.backtest.runner import load_ledger, resolve_run, resume_backtest

    lake = get_lake(lake_path)
    ledger = load_ledger(resolve_run(lake, run))
    result = _run_with_progress(
        lambda progress: resume_backtest(
            lake, run, executor=executor, workers=workers, progress=progress
        ),
        len(ledger["days"]),
    )
    _finish(result)
    _write_report(result.run_dir)


@backtest_app.command("report")
@handle_errors
def report_cmd(
    run: Annotated[str, typer.Argument(help="Run id or directory.")],
    lake_path: LakeOption = None,
) -> None:
    """Write the run's HTML tearsheet and print its summary."""
    from ticklake.backtest.runner import resolve_run

    _write_report(resolve_run(get_lake(lake_path), run))


@backtest_app.command("compare")
@handle_errors
def compare_cmd(
    run_a: Annotated[str, typer.Argument(help="First run id or directory.")],
    run_b: Annotated[str, typer.Argument(help="Second run id or directory.")],
    lake_path: LakeOption = None,
) -> None:
    """Statistics side by side and what differs in the specs."""
    from ticklake.backtest.compare import compare_runs, print_comparison
    from ticklake.backtest.runner import resolve_run

    lake = get_lake(lake_path)
    print_comparison(compare_runs(resolve_run(lake, run_a), resolve_run(lake, run_b)), console)


@backtest_app.command("runs")
@handle_errors
def runs_cmd(lake_path: LakeOption = None) -> None:
    """List the lake's runs, newest last."""
    from ticklake.backtest.runner import RUNS_DIR

    lake = get_lake(lake_path)
    table = Table("run", "status", "days", "fills", "net P&L (₹)", "created (UTC)")
    for run_json in sorted((lake.root / RUNS_DIR).glob("*/run.json")):
        ledger = json.loads(run_json.read_text())
        totals = ledger.get("totals") or {}
        table.add_row(
            ledger["run_id"],
            ledger["status"],
            str(len(ledger.get("days", {}))),
            str(totals.get("fills", "-")),
            f"{totals['net_pnl_paise'] / 100:,.2f}" if totals else "-",
            ledger["created_at"].replace("T", " ")[:19],
        )
    console.print(table)


@backtest_app.command("schema")
@handle_errors
def schema_cmd() -> None:
    """Print the strategy file's JSON Schema."""
    from ticklake.backtest.spec import json_schema

    console.print_json(json.dumps(json_schema()))
