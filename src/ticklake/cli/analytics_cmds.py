"""``ticklake analytics list | explain`` (and ``run``, with the pipelines)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from ticklake.cli._common import console, handle_errors

analytics_app = typer.Typer(
    help="The metric catalogue and analytics pipelines.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(analytics_app, name="analytics")


@analytics_app.command("list")
@handle_errors
def list_cmd(
    family: Annotated[str | None, typer.Option(help="Only this family (trade, l2, ...).")] = None,
) -> None:
    """Print the metric catalogue."""
    from ticklake.analytics.registry import BROKEN_PLUGINS, all_metrics

    metrics = all_metrics(family)
    table = Table("metric", "family", "kind", "unit", "output", "title", title="ticklake metrics")
    for m in metrics:
        table.add_row(m.name, m.family, m.kind, m.unit, m.output, m.title)
    console.print(table)
    console.print(f"{len(metrics)} metric(s); `ticklake analytics explain NAME` for details")
    for name, error in sorted(BROKEN_PLUGINS.items()):
        console.print(f"[red]broken metric plugin {name}:[/] {error}", highlight=False)


@analytics_app.command("explain")
@handle_errors
def explain_cmd(name: Annotated[str, typer.Argument(help="Metric name.")]) -> None:
    """Print a metric's definition, formula, parameters (JSON Schema), inputs and example."""
    from ticklake.analytics.registry import get_metric

    m = get_metric(name)
    body = [
        f"[bold]{m.title}[/]  ({m.family}, {m.kind} metric, unit: {m.unit})",
        "",
        m.description,
        "",
        f"[bold]inputs:[/] {', '.join(m.inputs)}",
        f"[bold]output column:[/] {m.output}",
    ]
    if m.aliases:
        body.append(f"[bold]aliases:[/] {', '.join(m.aliases)}")
    if m.formula:
        body += ["", "[bold]formula:[/]", m.formula]
    body += ["", "[bold]parameters (JSON Schema):[/]", json.dumps(m.parameters_schema(), indent=1)]
    if m.example:
        body += ["", "[bold]example:[/]", m.example]
    console.print(Panel("\n".join(body), title=m.name, expand=False), highlight=False)
