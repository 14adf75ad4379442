"""``ticklake backtest run | resume | report | publish | compare | runs | schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ticklake.cli import backtest_estimate_cmd
from ticklake.cli._common import LakeOption, console, get_lake, handle_errors, progress_bars

backtest_app = typer.Typer(help="Run and inspect options backtests.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(backtest_app, name="backtest")
    backtest_estimate_cmd.register(backtest_app)


def _run_with_progress(call: Any, total: int, eta: Any = None) -> Any:
    """Run ``call(progress)`` under the day bar; ``eta`` (a RunEta) gives the bar its ETA.

    Build ``eta`` just before: its clock starts when it is made.
    """
    with progress_bars() as bars:
        bar = bars.add("backtest", total, note="days · 0 fills · P&L ₹0.00")
        if eta is not None:
            bar.update(eta_seconds=eta.fields()["eta_seconds"])

        def on_progress(state: dict[str, Any]) -> None:
            pnl = state["net_pnl_paise"] / 100
            fields = eta.observe(state) if eta is not None else {}
            bar.update(
                completed=state["days_done"],
                note=f"days · {state['fills']} fills · P&L ₹{pnl:,.2f}",
                eta_seconds=fields.get("eta_seconds"),
            )

        return call(on_progress)


def fills_phrase(totals: dict[str, Any]) -> str:
    """Say how many fills, and how many closes were at a mark with no fill, if any."""
    phrase = f"{totals['fills']} fills"
    marked = int(totals.get("marked_closes", 0) or 0)
    if marked:
        phrase += f", {marked} marked close{'s' if marked != 1 else ''} (no fill)"
    return phrase


def _finish(result: Any) -> None:
    totals = result.ledger["totals"]
    if result.ledger.get("kind") == "sweep":
        _finish_sweep(result)
        return
    samples = result.ledger.get("samples", {})
    console.print(
        f"run [bold]{result.run_id}[/] {result.status}: {totals['days']} day(s) "
        f"({totals['traded_days']} traded, {totals['skipped_days']} skipped), "
        f"{fills_phrase(totals)}, net P&L ₹{totals['net_pnl_paise'] / 100:,.2f} "
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
    pnl_per_second: Annotated[
        bool,
        typer.Option(
            "--pnl-per-second",
            help="Also write the P&L path second by second (pnl.parquet; not for sweeps).",
        ),
    ] = False,
    rank_by: Annotated[
        str, typer.Option(help="Sweeps: statistic ranking the variants.")
    ] = "total_net_pnl_paise",
    lake_path: LakeOption = None,
) -> None:
    """Run a strategy over its date range, one task per trading day.

    A file with a ``sweep:`` section runs every variant of its grid (the grid size is
    printed first); each day task loads the day once for all variants.
    """
    from ticklake.backtest.eta import run_eta
    from ticklake.backtest.runner import plan_days
    from ticklake.backtest.spec import load_spec
    from ticklake.backtest.sweep import load_sweep
    from ticklake.errors import ConfigError

    overrides = {k: v for k, v in (("time.start", start), ("time.end", end)) if v}
    sweep = load_sweep(strategy)
    if sweep is not None:
        if pnl_per_second:
            raise ConfigError(
                "--pnl-per-second applies to single strategies, not sweeps (run the chosen "
                "variant on its own to get its P&L path)"
            )
        _run_sweep(sweep, overrides, executor, workers, not no_cache, rank_by, lake_path, report)
        return
    spec = load_spec(strategy, overrides=overrides)
    lake = get_lake(lake_path)
    days = [d.isoformat() for d in plan_days(spec)]
    eta = run_eta(lake, [spec], days, executor=executor, workers=workers, use_cache=not no_cache)
    result = _run_with_progress(
        lambda progress: lake.backtest(
            spec,
            executor=executor,
            workers=workers,
            use_cache=not no_cache,
            progress=progress,
            pnl_per_second=pnl_per_second,
        ),
        len(days),
        eta,
    )
    _finish(result)
    if report:
        _write_report(result.run_dir)


def _run_sweep(
    sweep: Any,
    overrides: dict[str, str],
    executor: str | None,
    workers: int | None,
    use_cache: bool,
    rank_by: str,
    lake_path: Any,
    report: bool,
) -> None:
    from ticklake.backtest.eta import run_eta
    from ticklake.backtest.runner import plan_days
    from ticklake.backtest.sweep import expand, sweep_from_data

    data = dict(sweep.template)
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        data[section] = {**data.get(section, {}), key: value}
    sweep = sweep_from_data(
        {**data, "sweep": sweep.axes, "constraints": list(sweep.constraints)}, source=sweep.source
    )
    variants = expand(sweep)
    axes = " × ".join(f"{name} ({len(values)})" for name, values in sweep.axes.items())
    console.print(
        f"sweep grid: {axes} = {sweep.grid_size} combinations; {len(variants)} variants after "
        f"{len(sweep.constraints)} constraint(s)",
        highlight=False,
    )
    lake = get_lake(lake_path)
    specs = [v.spec for v in variants]
    days = sorted({d.isoformat() for spec in specs for d in plan_days(spec)})  # as run_sweep
    eta = run_eta(
        lake, specs, days, executor=executor, workers=workers, use_cache=use_cache, kind="sweep"
    )
    result = _run_with_progress(
        lambda progress: lake.sweep(
            sweep,
            executor=executor,
            workers=workers,
            use_cache=use_cache,
            rank_by=rank_by,
            progress=progress,
        ),
        len(days),
        eta,
    )
    _finish(result)
    if report:
        _write_report(result.run_dir)


def _finish_sweep(result: Any) -> None:
    import polars as pl

    variants = pl.read_parquet(result.run_dir / "variants.parquet")
    table = Table(*variants.columns[:10], title=f"sweep {result.run_id}: top variants")
    for row in variants.head(10).iter_rows():
        table.add_row(*(f"{v:,.4g}" if isinstance(v, float) else str(v) for v in row[:10]))
    console.print(table)
    console.print(f"results: {result.run_dir}", highlight=False)


def _write_report(run_dir: Path) -> None:
    from ticklake.backtest.report import print_summary, write_report, write_sweep_report

    if (run_dir / "sweep.json").is_file():
        console.print(f"report: {write_sweep_report(run_dir)}", highlight=False)
        return

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
    from ticklake.backtest.eta import resume_eta
    from ticklake.backtest.runner import load_ledger, resolve_run

    lake = get_lake(lake_path)
    run_dir = resolve_run(lake, run)
    ledger = load_ledger(run_dir)
    eta = resume_eta(lake, run_dir, executor=executor, workers=workers)
    result = _run_with_progress(
        lambda progress: lake.resume(run, executor=executor, workers=workers, progress=progress),
        len(ledger["days"]),
        eta,
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


@backtest_app.command("publish")
@handle_errors
def publish_cmd(
    run: Annotated[str, typer.Argument(help="Run id or directory (a complete backtest run).")],
    as_name: Annotated[
        str | None,
        typer.Option(
            "--as", help="Dataset prefix: gold.NAME_fills, NAME_pnl, ... (default: backtest)."
        ),
    ] = None,
    lake_path: LakeOption = None,
) -> None:
    """Write the run's fills, positions and daily P&L into gold datasets, for SQL.

    Rows carry the run id; publishing the same run again replaces its rows (no
    duplicates), other runs' rows stay. Exit 2: no such run, a sweep, or not complete.
    """
    lake = get_lake(lake_path)
    result = lake.publish_run(run, as_name=as_name)
    table = Table("dataset", "rows of this run", "partitions", "changed", title=result.run_id)
    for item in result.datasets:
        table.add_row(
            item.dataset, str(item.rows), str(item.partitions), str(item.partitions_changed)
        )
    console.print(table)
    console.print(f"spec hash {result.spec_hash}; try:", highlight=False)
    console.print(result.example_sql, highlight=False, markup=False)


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
    """List the lake's backtest and sweep runs, newest last (analytics runs share runs/)."""
    from ticklake.backtest.runner import RUNS_DIR

    lake = get_lake(lake_path)
    table = Table("run", "kind", "status", "days", "fills", "net P&L (₹)", "created (UTC)")
    for run_json in sorted((lake.root / RUNS_DIR).glob("*/run.json")):
        try:
            ledger = json.loads(run_json.read_text())
        except (OSError, ValueError) as exc:
            table.add_row(run_json.parent.name, "?", f"[red]unreadable run.json: {exc}[/]")
            continue
        kind = ledger.get("kind", "backtest")
        if kind not in ("backtest", "sweep"):
            continue
        totals = ledger.get("totals") or {}
        net = totals.get("net_pnl_paise", totals.get("best_net_pnl_paise"))
        table.add_row(
            str(ledger.get("run_id", run_json.parent.name)),
            kind,
            str(ledger.get("status", "?")),
            str(len(ledger.get("days", {}))),
            str(totals.get("fills", "-")),
            f"{net / 100:,.2f}" if isinstance(net, int | float) else "-",
            str(ledger.get("created_at") or "-").replace("T", " ")[:19],
        )
    console.print(table)


@backtest_app.command("day-cache")
@handle_errors
def day_cache_cmd(
    clear: Annotated[bool, typer.Option("--clear", help="delete every entry first")] = False,
    lake_path: LakeOption = None,
) -> None:
    """Show the hot day cache (``backtest.day_cache``): entries, size, bound; --clear empties it."""
    lake = get_lake(lake_path)
    status = lake.day_cache(clear=clear)
    state = "on" if lake.settings.backtest.day_cache else "off (backtest.day_cache = false)"
    console.print(
        f"hot day cache {status.root}: {state}; {status.entries} entries, "
        f"{status.bytes / 2**20:,.1f} MiB of {status.max_bytes / 2**30:,.1f} GiB"
        + (" (cleared)" if clear else ""),
        highlight=False,
    )


@backtest_app.command("schema")
@handle_errors
def schema_cmd() -> None:
    """Print the strategy file's JSON Schema."""
    from ticklake.backtest.spec import json_schema

    console.print_json(json.dumps(json_schema()))


@backtest_app.command("check")
@handle_errors
def check_cmd(
    strategy: Annotated[Path, typer.Argument(help="Strategy YAML or JSON file.")],
) -> None:
    """Validate a strategy and print its compiled condition plans (and sweep grid)."""
    from ticklake.backtest.conditions import compile_spec_conditions
    from ticklake.backtest.spec import load_spec
    from ticklake.backtest.sweep import expand, load_sweep

    sweep = load_sweep(strategy)
    if sweep is not None:
        variants = expand(sweep)
        console.print(
            f"sweep grid: {sweep.grid_size} combinations, {len(variants)} variants after "
            f"constraints; plans of variant 0 {variants[0].values}:",
            highlight=False,
        )
        spec = variants[0].spec
    else:
        spec = load_spec(strategy)
    console.print(compile_spec_conditions(spec).describe(), highlight=False, markup=False)


@backtest_app.command("oos")
@handle_errors
def oos_cmd(
    run: Annotated[str, typer.Argument(help="Sweep run id or directory.")],
    train_end: Annotated[
        str | None, typer.Option(help="Last training day (YYYY-MM-DD); later days test.")
    ] = None,
    walk_forward: Annotated[
        str | None, typer.Option(help="Walk-forward windows TRAIN_DAYS,TEST_DAYS, e.g. 60,20.")
    ] = None,
    rank_by: Annotated[str, typer.Option(help="Statistic choosing the variant.")] = (
        "total_net_pnl_paise"
    ),
    lake_path: LakeOption = None,
) -> None:
    """Out-of-sample check of a sweep: choose on a training period, report a later one."""
    from datetime import date

    from ticklake.backtest.runner import resolve_run
    from ticklake.backtest.spec import parse_spec
    from ticklake.backtest.sweep import out_of_sample, read_sweep
    from ticklake.backtest.sweep import walk_forward as walk
    from ticklake.errors import ConfigError

    run_dir = resolve_run(get_lake(lake_path), run)
    info, _, daily, trades = read_sweep(run_dir)
    spec = parse_spec(info["specs"][0])
    if walk_forward:
        train_days, test_days = (int(x) for x in walk_forward.split(","))
        frame = walk(
            daily,
            trades,
            info["variants"],
            spec,
            train_days=train_days,
            test_days=test_days,
            rank_by=rank_by,
        )
        table = Table(*frame.columns, title="walk-forward")
        for row in frame.iter_rows():
            table.add_row(*(str(v) for v in row))
        console.print(table)
        return
    if not train_end:
        raise ConfigError("give --train-end YYYY-MM-DD or --walk-forward TRAIN,TEST")
    result = out_of_sample(
        daily,
        trades,
        info["variants"],
        spec,
        train_end=date.fromisoformat(train_end),
        rank_by=rank_by,
    )
    console.print_json(json.dumps(result, default=str))
