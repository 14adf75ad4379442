"""``ticklake validate``: run the quality rules, write reports, quarantine, promote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ticklake.cli._common import LakeOption, console, get_lake, handle_errors
from ticklake.errors import EXIT_VALIDATION_FAILED, ConfigError

_VERDICT_STYLE = {"PASS": "bold green", "INVESTIGATE": "bold yellow", "FAIL": "bold red"}
_STATUS_STYLE = {
    "fail": "red",
    "tolerated": "yellow",
    "noted": "cyan",
    "skipped": "dim",
    "not checked": "dim",
}


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_cmd)


def parse_parameters(items: list[str]) -> dict[str, dict[str, Any]]:
    """Turn ``["R6.max_spread_fraction=0.1", "R7.reference_dataset=klines"]`` into a mapping.

    Values are read as JSON when they parse (numbers, booleans, lists), else as strings.

    Examples:
        >>> parse_parameters(["R6.max_spread_fraction=0.1", "R7.reference_dataset=klines"])
        {'R6': {'max_spread_fraction': 0.1}, 'R7': {'reference_dataset': 'klines'}}
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw = item.partition("=")
        rule, dot, name = target.rpartition(".")
        if not sep or not dot or not rule or not name:
            raise ConfigError(
                f"--param {item!r}: expected RULE.PARAMETER=VALUE, e.g. R6.max_spread_fraction=0.1",
                param=item,
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(rule, {})[name] = value
    return out


def _print_rules() -> None:
    from ticklake.quality import rule_classes

    table = Table("id", "name", "severity", "unit", "schemas", "parameters (default)")
    for cls in rule_classes():
        params = ", ".join(
            f"{name}={field.default}" for name, field in cls.Parameters.model_fields.items()
        )
        table.add_row(cls.id, cls.name, str(cls.severity), cls.unit, ", ".join(cls.schemas), params)
    console.print(table)


@handle_errors
def validate_cmd(
    dataset: Annotated[str | None, typer.Argument(help="Dataset name, or layer.name.")] = None,
    start: Annotated[str | None, typer.Option(help="First trading day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last trading day (YYYY-MM-DD).")] = None,
    rules: Annotated[
        str | None,
        typer.Option(
            help="Rule ids, names or families, comma-separated (e.g. R1,R5,S). Default: all."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="Rule parameter RULE.NAME=VALUE (repeatable), e.g. R7.reference_dataset=klines.",
        ),
    ] = None,
    calendar: Annotated[
        str | None,
        typer.Option(help="exchange_calendars name (default from the dataset's time zone)."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the Markdown report here.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON report here.")
    ] = None,
    quarantine_failing: Annotated[
        bool,
        typer.Option(help="Record failing days in <lake>/quarantine/<dataset>/_days.json."),
    ] = False,
    promote: Annotated[
        bool, typer.Option(help="Copy passing bronze days to the silver dataset of the same name.")
    ] = False,
    force: Annotated[
        bool, typer.Option(help="With --promote: copy failing and quarantined days too.")
    ] = False,
    executor: Annotated[
        str | None, typer.Option(help="serial, process or ray (default: lake setting).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel workers.")] = None,
    list_rules: Annotated[
        bool, typer.Option("--list-rules", help="List the registered rules and exit.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            help=f"Exit with code {EXIT_VALIDATION_FAILED} when the verdict is FAIL (for CI)."
        ),
    ] = False,
    lake_path: LakeOption = None,
) -> None:
    """Validate a dataset with the quality rules; print a summary and write reports."""
    if list_rules:
        _print_rules()
        return
    if dataset is None:
        raise typer.BadParameter("give a DATASET (or --list-rules)")
    lake = get_lake(lake_path)
    selected = [r for r in rules.split(",") if r.strip()] if rules else None
    result = lake.validate(
        dataset,
        start=start,
        end=end,
        rules=selected,
        parameters=parse_parameters(param or []),
        calendar=calendar,
        executor=executor,
        workers=workers,
    )
    result.write(report, json_path)
    result.write_to_lake(lake.root)  # the dashboard's Quality page lists the lake's reports
    table = Table(
        title=f"validate {result.layer}.{result.dataset}: {len(result.days)} day(s), "
        f"{result.rows:,} rows, {result.seconds:.1f} s",
        title_justify="left",
    )
    for col in ("rule", "name", "severity", "checked", "violations", "%", "status"):
        table.add_column(col, justify="right" if col in ("checked", "violations", "%") else "left")
    for r in result.rules:
        style = _STATUS_STYLE.get(r.status, "green")
        table.add_row(
            r.id,
            r.name,
            r.severity,
            f"{r.checked:,} {r.unit.split(' (')[0]}",  # the unit without its note
            f"{r.violations:,}",
            f"{100 * r.share:.4f}",
            f"[{style}]{r.status}[/]" + (f" ({r.skip_reason})" if r.skip_reason else ""),
        )
    console.print(table)
    console.print(
        f"verdict: [{_VERDICT_STYLE[result.verdict]}]{result.verdict}[/] — {result.verdict_reason}",
        highlight=False,
    )
    failing = result.failing_days
    if failing:
        console.print(
            f"{len(failing)} failing day(s): "
            + ", ".join(str(d) for d in list(failing)[:12])
            + (" ..." if len(failing) > 12 else "")
        )
    for path in result.report_paths:
        console.print(f"wrote {path}")
    if quarantine_failing:
        if result.layer != "bronze":
            raise ConfigError(
                f"--quarantine-failing applies to bronze datasets; {result.layer}.{result.dataset} "
                "is not one",
                dataset=result.dataset,
            )
        lake.quarantine(result, str(report) if report else None)
        console.print(
            f"quarantine: {len(failing)} day(s) recorded in quarantine/{result.dataset}/_days.json"
        )
    if promote:
        if result.layer != "bronze":
            raise ConfigError(
                f"--promote copies bronze to silver; {result.layer}.{result.dataset} is not bronze",
                dataset=result.dataset,
            )
        done = lake.promote(result.dataset, result.days, failing=failing, force=force)
        console.print(
            f"promoted {len(done.promoted)} day(s), {done.rows:,} rows to silver.{done.dataset}"
            + (
                f"; held back {len(done.held_back)} day(s) (--force copies them)"
                if done.held_back
                else ""
            )
        )
    if strict and result.verdict == "FAIL":
        raise typer.Exit(EXIT_VALIDATION_FAILED)
