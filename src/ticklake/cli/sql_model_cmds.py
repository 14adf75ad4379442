"""``ticklake sql plan`` and ``ticklake sql build``: the project's models as a DAG."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors, progress_bar
from ticklake.errors import ConfigError

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", help="SQL project folder (default: warehouse.project_dir, sql/)."),
]
StartOption = Annotated[str | None, typer.Option(help="First day (dataset models), YYYY-MM-DD.")]
EndOption = Annotated[str | None, typer.Option(help="Last day (dataset models), YYYY-MM-DD.")]


def register(app: typer.Typer) -> None:
    app.command("init")(init_cmd)
    app.command("plan")(plan_cmd)
    app.command("build")(build_cmd)


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a date; use YYYY-MM-DD") from None


@handle_errors
def init_cmd(
    examples: Annotated[
        str | None, typer.Option(help="Copy an example set of models: nse | crypto.")
    ] = None,
    project: ProjectOption = None,
    lake_path: LakeOption = None,
) -> None:
    """Create the SQL project folder (views/, models/, migrations/), with examples."""
    from ticklake.warehouse.build import default_project_dir

    lake = get_lake(lake_path)
    copied = lake.sql_init(examples, project)
    console.print(f"SQL project: {project or default_project_dir(lake)}")
    for path in copied:
        console.print(f"  {path}")
    if examples:
        console.print("next: `ticklake sql plan`, then `ticklake sql build`")


@handle_errors
def plan_cmd(
    project: ProjectOption = None,
    start: StartOption = None,
    end: EndOption = None,
    lake_path: LakeOption = None,
) -> None:
    """Print the models' DAG (from their SQL) and what is stale, and why."""
    lake = get_lake(lake_path)
    sql_project = lake.sql_project(project)
    plans = sql_project.plan(start=_day(start, "--start"), end=_day(end, "--end"))
    if not plans:
        folder = sql_project.directory / "models"
        console.print(f"no models in {folder} (add one SELECT per .sql file)")
        return
    by_name = {p.spec.name: p for p in plans}
    tree = Tree("[bold]models[/] (inputs first)")
    for plan in plans:
        mark = "[yellow]stale[/]" if plan.is_stale else "[green]fresh[/]"
        node = tree.add(
            f"{plan.spec.name}  [dim]{plan.spec.materialized} → {plan.spec.output}[/]  {mark}"
        )
        for dep in plan.depends_on:
            node.add(f"model {dep} ({by_name[dep].spec.materialized})")
        for name in plan.inputs:
            node.add(f"[dim]{name}[/]")
    console.print(tree)
    table = Table("model", "materialized", "status", "days", "why")
    for plan in plans:
        status = "stale" if plan.is_stale else "fresh"
        total = sum(1 for d in plan.fingerprints if d is not None)
        days = f"{len(plan.stale)} of {total}" if plan.spec.materialized == "dataset" else ""
        table.add_row(plan.spec.name, plan.spec.materialized, status, days, plan.reason)
    console.print(table)


@handle_errors
def build_cmd(
    models: Annotated[
        list[str] | None, typer.Argument(help="Models to build (default: all).")
    ] = None,
    project: ProjectOption = None,
    start: StartOption = None,
    end: EndOption = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild every day, stale or not.")
    ] = False,
    lake_path: LakeOption = None,
) -> None:
    """Build the stale models (and the models they read) in dependency order."""
    lake = get_lake(lake_path)
    sql_project = lake.sql_project(project)
    first, last = _day(start, "--start"), _day(end, "--end")
    plans = sql_project.plan(start=first, end=last, full_refresh=full_refresh)
    work = sum(max(len(p.stale), 1) for p in plans)
    with progress_bar("models", work) as advance:
        results = sql_project.build(
            models or None, start=first, end=last, full_refresh=full_refresh,
            progress=lambda name, _i, _n: advance(note=name),
        )  # fmt: skip
    table = Table("model", "materialized", "built", "skipped", "rows", "seconds")
    for result in results:
        table.add_row(
            result.name, result.materialized, str(result.days_built), str(result.days_skipped),
            f"{result.rows:,}", f"{result.seconds:.2f}",
        )  # fmt: skip
    console.print(table)
    for result in results:
        for warning in result.warnings:
            console.print(f"[yellow]{result.name}: {warning}[/]", highlight=False)
