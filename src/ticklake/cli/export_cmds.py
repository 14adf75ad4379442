"""``ticklake export DATASET|--sql "SELECT ..." --to TARGET``: rows out of the lake."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ticklake.cli._common import LakeOption, console, err_console, get_lake, handle_errors


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("export")(export_cmd)


def _columns(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


@handle_errors
def export_cmd(
    dataset: Annotated[
        str | None, typer.Argument(metavar="DATASET", help="Dataset (name or layer.name).")
    ] = None,
    sql: Annotated[
        str | None, typer.Option("--sql", help="Export this SELECT over the lake instead.")
    ] = None,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="postgres | duckdb:FILE[:TABLE] | parquet:DIR | delta:DIR | csv:FILE",
        ),
    ] = "postgres",
    table: Annotated[
        str | None, typer.Option(help="Target table (postgres: NAME or SCHEMA.NAME; duckdb).")
    ] = None,
    dsn_env: Annotated[
        str, typer.Option("--dsn-env", help="Environment variable holding the PostgreSQL DSN.")
    ] = "PG_DSN",
    key: Annotated[
        str | None, typer.Option(help="Key columns k1,k2 (upsert; primary key of a new table).")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="replace | append | upsert (postgres); see docs/export.md.")
    ] = "replace",
    start: Annotated[str | None, typer.Option(help="First trading day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last trading day (YYYY-MM-DD).")] = None,
    numeric: Annotated[
        str | None,
        typer.Option(help="Columns c1,c2 to create as numeric (integers: numeric(20,0))."),
    ] = None,
    batch_rows: Annotated[int, typer.Option(help="Rows per streamed batch.")] = 250_000,
    lake_path: LakeOption = None,
) -> None:
    """Export a dataset or a SQL result to PostgreSQL (one transaction), DuckDB, Parquet,
    Delta or CSV, streaming in batches."""
    lake = get_lake(lake_path)
    display = Progress(
        TextColumn("[bold]exporting"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.fields[of]} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )
    started = time.perf_counter()
    with display:
        task = display.add_task("export", total=None, of="?", rate="")

        def on_progress(done: int, total: int | None) -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            display.update(
                task,
                completed=done,
                total=total,
                of=f"{total:,}" if total is not None else "?",
                rate=f"{rate:,.0f} rows/s",
            )

        summary = lake.export(
            dataset,
            sql=sql,
            to=to,
            table=table,
            dsn_env=dsn_env,
            key=_columns(key),
            mode=mode,
            start=start,
            end=end,
            numeric=_columns(numeric),
            batch_rows=batch_rows,
            progress=on_progress,
        )
    console.print(summary.line(), highlight=False, soft_wrap=True)
