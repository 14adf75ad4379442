"""``ticklake strategies list | show NAME | new NAME --from TEMPLATE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ticklake.cli._common import console, handle_errors

strategies_app = typer.Typer(
    help="Strategy templates: list them, show one, copy one to start your own.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(strategies_app, name="strategies")


@strategies_app.command("list")
@handle_errors
def list_cmd() -> None:
    """List the shipped templates with their sweep axes and what they do."""
    from ticklake.strategies import list_templates

    table = Table("template", "sweep", "description", title="strategy templates")
    for info in list_templates():
        sweep = (
            " × ".join(f"{axis} {values}" for axis, values in info.sweep_axes.items())
            if info.sweep_axes
            else "-"
        )
        table.add_row(info.name, sweep, info.summary)
    console.print(table)
    console.print(
        "`ticklake strategies show NAME` prints one; "
        "`ticklake strategies new MINE --from NAME` copies it to ./strategies/MINE.yml",
        highlight=False,
        markup=False,
    )


@strategies_app.command("show")
@handle_errors
def show_cmd(name: Annotated[str, typer.Argument(help="Template name.")]) -> None:
    """Print a template's YAML, comments included."""
    from ticklake.strategies import template_text

    # Verbatim: no wrapping or markup, so the output can be redirected to a file.
    typer.echo(template_text(name), nl=False)


@strategies_app.command("new")
@handle_errors
def new_cmd(
    name: Annotated[str, typer.Argument(help="Name of the new strategy (and its file).")],
    template: Annotated[str, typer.Option("--from", help="Template to start from.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write NAME.yml into.")] = Path(
        "strategies"
    ),
) -> None:
    """Copy a template to OUT/NAME.yml (never overwrites) and say how to run it."""
    from ticklake.strategies import copy_template

    path = copy_template(template, name, out)
    console.print(f"wrote {path} (from template {template})", highlight=False, markup=False)
    console.print(
        f"next: edit it, then `ticklake backtest check {path}` and `ticklake backtest run {path}`",
        highlight=False,
        markup=False,
    )
