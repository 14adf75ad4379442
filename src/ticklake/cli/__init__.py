"""The ``ticklake`` command line: one module per command group, errors mapped here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ticklake._version import __version__
from ticklake.cli import (
    analytics_cmds,
    backtest_cmds,
    bars_cmds,
    collect_cmds,
    export_cmds,
    generate_cmds,
    ingest_cmds,
    lake_cmds,
    quality_cmds,
    serve_cmd,
    sql_cmds,
    stats_cmds,
    strategies_cmds,
    warmup_cmd,
)
from ticklake.cli._common import console, handle_errors, setup_logging, state

app = typer.Typer(
    name="ticklake",
    help="ticklake: a local-first tick-data lake, analytics and backtesting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"ticklake {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """ticklake: a local-first tick-data lake, analytics and backtesting."""
    state.debug = state.debug or debug
    setup_logging(verbose)


lake_cmds.register(app)
ingest_cmds.register(app)
generate_cmds.register(app)
backtest_cmds.register(app)
quality_cmds.register(app)
analytics_cmds.register(app)
bars_cmds.register(app)
serve_cmd.register(app)
stats_cmds.register(app)
strategies_cmds.register(app)
collect_cmds.register(app)
sql_cmds.register(app)
export_cmds.register(app)
warmup_cmd.register(app)


@app.command("demo")
@handle_errors
def demo_cmd(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to build the demo (re-created on each run).")
    ] = Path("demo-lake"),
) -> None:
    """Build a small lake from generated data and show what ticklake does with it."""
    from ticklake.demo import run_demo

    try:
        # soft_wrap: a piped demo keeps each line whole instead of breaking it at 160 columns
        run_demo(
            directory,
            log=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True),
        )
    except FileExistsError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


def main() -> None:
    """Console-script entry point."""
    app()
