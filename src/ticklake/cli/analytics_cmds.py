"""``ticklake analytics list | explain`` (and ``run``, with the pipelines)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors, progress_bars

analytics_app = typer.Typer(
    help="The metric catalogue and analytics pipelines.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(analytics_app, name="analytics")


@analytics_app.command("list")
@handle_errors
def list_cmd(
    family: Annotated[str | None, typer.Option(help="Only this family (trade, l2, ...).")] = None,
    pipeline: Annotated[
        str | None,
        typer.Option(
            "--pipeline", help="A pipeline YAML: list the columns each pass writes instead."
        ),
    ] = None,
) -> None:
    """Print the metric catalogue (or, with --pipeline, the columns a pipeline produces)."""
    from ticklake.analytics.registry import BROKEN_PLUGINS, all_metrics

    if pipeline is not None:
        _list_pipeline_columns(pipeline)
        return
    metrics = all_metrics(family)
    table = Table("metric", "family", "kind", "unit", "output", "title", title="ticklake metrics")
    for m in metrics:
        table.add_row(m.name, m.family, m.kind, m.unit, m.output, m.title)
    console.print(table)
    console.print(f"{len(metrics)} metric(s); `ticklake analytics explain NAME` for details")
    for name, error in sorted(BROKEN_PLUGINS.items()):
        console.print(f"[red]broken metric plugin {name}:[/] {error}", highlight=False)


def _list_pipeline_columns(path: str) -> None:
    from ticklake.analytics.columns import KEY_COLUMNS, pipeline_columns
    from ticklake.analytics.pipeline import load_pipeline

    spec = load_pipeline(path)
    table = Table(
        "pass", "gold dataset", "column", "made by", "kind", title=f"{spec.name}: columns"
    )
    count = 0
    for passed in pipeline_columns(spec):
        for key in KEY_COLUMNS:
            table.add_row(passed.pass_name, passed.dataset, key, "(key)", "")
        for c in passed.columns:
            made = f"{c.metric} (module {c.module})"
            kind = c.kind + (" — declared; the metric may add columns" if c.declared_only else "")
            table.add_row(passed.pass_name, passed.dataset, c.column, made, kind)
            count += 1
        for processor in passed.processors:
            table.add_row(passed.pass_name, passed.dataset, "…", processor, "may add or rename")
    console.print(table)
    console.print(
        f"{count} metric column(s); `ticklake analytics explain COLUMN` says how one is made",
        highlight=False,
    )


@analytics_app.command("explain")
@handle_errors
def explain_cmd(
    name: Annotated[str, typer.Argument(help="A metric name, or an output column's name.")],
) -> None:
    """Print a metric's definition, formula, parameters (JSON Schema), inputs and example.

    NAME may also be a column a pipeline writes (``ema_5_price``): the metric whose output
    template makes it is explained, with the parameters the name spells.
    """
    from ticklake.analytics.columns import metrics_for_column
    from ticklake.analytics.registry import UnknownMetricError, get_metric

    try:
        _explain(get_metric(name))
        return
    except UnknownMetricError:
        matches = metrics_for_column(name)
        if not matches:
            raise
    for match in matches:
        spelled = ", ".join(f"{k}={v}" for k, v in match.parameters.items())
        console.print(
            f"column {name!r} is the output of metric {match.metric.name!r}"
            + (f" with {spelled}" if spelled else ""),
            highlight=False,
        )
        _explain(match.metric)


def _explain(m: Any) -> None:
    # Metric text is printed as-is: docstrings hold brackets (``[date(2024, 1, 5), ...]``,
    # JSON Schema arrays) that Rich would otherwise swallow as markup.
    body = [
        f"[bold]{escape(m.title)}[/]  ({m.family}, {m.kind} metric, unit: {escape(m.unit)})",
        "",
        escape(m.description),
        "",
        f"[bold]inputs:[/] {escape(', '.join(m.inputs))}",
        f"[bold]output column:[/] {escape(m.output)}",
    ]
    if m.aliases:
        body.append(f"[bold]aliases:[/] {escape(', '.join(m.aliases))}")
    if m.formula:
        body += ["", "[bold]formula:[/]", escape(m.formula)]
    schema = json.dumps(m.parameters_schema(), indent=1)
    body += ["", "[bold]parameters (JSON Schema):[/]", escape(schema)]
    if m.example:
        body += ["", "[bold]example:[/]", escape(m.example)]
    console.print(Panel("\n".join(body), title=m.name, expand=False), highlight=False)


@analytics_app.command("run")
@handle_errors
def run_cmd(
    pipeline: Annotated[str, typer.Argument(help="Pipeline: .yml/.yaml/.json, .py or module.")],
    lake: LakeOption = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD (inclusive).")] = None,
    executor: Annotated[
        str | None, typer.Option(help="serial, process or ray (default: pipeline, lake).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    batch_frequency: Annotated[
        str | None,
        typer.Option(
            "--batch-frequency", help="auto or [N]D|W|M|Q|Y, e.g. 2W (N periods a batch)."
        ),
    ] = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="Write a VizTracer trace (opens in Perfetto).")
    ] = False,
) -> None:
    """Run an analytics pipeline: every pass, batch by batch, into gold and its targets."""
    from datetime import date

    from ticklake.analytics.pipeline import load_pipeline
    from ticklake.errors import ConfigError

    def day(value: str | None, flag: str) -> date | None:
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{flag} {value!r} is not a date as YYYY-MM-DD") from None

    spec = load_pipeline(pipeline)
    opened = get_lake(lake)
    with progress_bars() as bars:
        bar = bars.add(f"pipeline {spec.name}")

        def on_progress(event: dict[str, Any]) -> None:
            days = event["days"]
            note = f"batch {days[0]}..{days[-1]} done" if days else "starting"
            bar.update(total=event["total"], completed=event["done"], note=note)

        run = opened.analytics(
            spec,
            start=day(start, "--start"),
            end=day(end, "--end"),
            executor=executor,
            workers=workers,
            batch_frequency=batch_frequency,
            profile=profile,
            progress=on_progress,
        )
    table = Table("pass", "gold dataset", "rows", title=f"run {run.run_id}")
    rows = run.rows_out
    for p in run.spec.passes:
        table.add_row(p.name, f"gold.{run.spec.output_dataset(p)}", str(rows.get(p.name, 0)))
    console.print(table)
    console.print(
        f"{len(run.batches)} batch(es) ({run.frequency}) from {run.spec.start} to "
        f"{run.spec.end}; ledger {run.run_dir / 'run.json'}",
        highlight=False,
    )
    if run.profile_path is not None:
        console.print(
            f"profile: {run.profile_path} (open it in https://ui.perfetto.dev)", highlight=False
        )
