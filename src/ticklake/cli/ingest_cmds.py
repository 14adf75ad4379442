"""``ticklake ingest FORMAT PATH... --dataset NAME`` and ``ticklake generate ...``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ticklake.cli._common import (
    LakeOption,
    ProgressTask,
    console,
    err_console,
    get_lake,
    handle_errors,
    progress_bars,
)
from ticklake.errors import EXIT_NOTHING_COMMITTED, IngestError, NothingCommittedError

if TYPE_CHECKING:
    from ticklake.ingest.pipeline import IngestSummary


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)


def _formats_table() -> Table:
    from ticklake.ingest.readers import get_reader, reader_names

    table = Table("format", "schema", "time zone", "reads", "description", show_lines=True)
    for name in reader_names():
        reader = get_reader(name)
        table.add_row(
            name,
            reader.schema,
            reader.exchange_timezone + (f" (+{reader.day_offset})" if reader.day_offset else ""),
            ", ".join(reader.suffixes) or "any",
            reader.description,
        )
    table.add_row(
        "postgres",
        "--schema",
        "--timezone",
        "a query",
        "A PostgreSQL query (--dsn-env, --query, --watermark): incremental by the watermark, "
        "streamed, nothing committed if the server fails mid-read (docs/export.md).",
    )
    table.add_row(
        "binance_raw",
        "trades, quotes, book_updates, funding, bars",
        "UTC",
        ".jsonl.zst",
        "The raw parts of `ticklake collect binance` (RAW_DIR or a part): each line is routed "
        "by its stream to <prefix>_trades, _agg_trades, _quotes, _book_updates, _funding, "
        "_klines_<interval> "
        "(--dataset is the prefix, default binance); re-reading a part is a no-op.",
    )
    return table


@handle_errors
def ingest_cmd(
    fmt: Annotated[
        str | None, typer.Argument(metavar="FORMAT", help="Reader name (see --list-formats).")
    ] = None,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="PATH...", help="Files, directories, globs, .gz/.zst/.zip."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Target dataset name.")
    ] = None,
    layer: Annotated[str, typer.Option(help="Target layer.")] = "bronze",
    mapping: Annotated[
        Path | None, typer.Option(help="YAML mapping for the generic csv/jsonl/parquet/arrow.")
    ] = None,
    infer: Annotated[
        bool, typer.Option("--infer", help="Print a proposed mapping for PATH and stop.")
    ] = False,
    schema: Annotated[
        str | None, typer.Option(help="Canonical schema for --infer and postgres (e.g. trades).")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="Exchange time zone of a new dataset (default: the reader's)."),
    ] = None,
    instrument: Annotated[str | None, typer.Option(help="Symbol for files without one.")] = None,
    keep_all_columns: Annotated[
        bool, typer.Option("--keep-all-columns", help="Keep every vendor field (options).")
    ] = False,
    levels: Annotated[
        int | None, typer.Option(help="Book depth for L2 snapshot formats (default: detect).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Re-read sources already ingested.")] = False,
    executor: Annotated[
        str | None, typer.Option(help="serial | process (default: lake setting).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    batch_rows: Annotated[
        int, typer.Option(help="Rows per read batch (memory bound).")
    ] = 1_000_000,
    list_formats: Annotated[
        bool, typer.Option("--list-formats", help="List the formats and exit.")
    ] = False,
    query: Annotated[
        str | None, typer.Option(help="postgres: the SELECT to load.", rich_help_panel="postgres")
    ] = None,
    dsn_env: Annotated[
        str,
        typer.Option(
            "--dsn-env", help="postgres: variable holding the DSN.", rich_help_panel="postgres"
        ),
    ] = "PG_DSN",
    watermark: Annotated[
        str | None,
        typer.Option(
            help="postgres: column whose high watermark makes re-runs incremental.",
            rich_help_panel="postgres",
        ),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="postgres: ignore the stored watermark.", rich_help_panel="postgres"
        ),
    ] = False,
    lake_path: LakeOption = None,
) -> None:
    """Ingest vendor files into a day-partitioned dataset (atomic, idempotent, quarantined),
    or (FORMAT postgres) a PostgreSQL query, incrementally by --watermark."""
    if fmt == "postgres":
        _ingest_postgres(
            query,
            dataset,
            schema,
            watermark,
            dsn_env,
            layer,
            timezone,
            batch_rows,
            full,
            lake_path,
        )
        return
    if list_formats or fmt is None:
        console.print(_formats_table())
        return
    if infer:
        from ticklake.ingest.mapping import infer_mapping, render_yaml

        if not paths:
            raise IngestError("--infer needs a PATH to look at")
        console.print(render_yaml(infer_mapping(paths[0], schema)), highlight=False, markup=False)
        return
    if not paths:
        raise IngestError(f"give at least one PATH to ingest with format {fmt!r}")
    if fmt == "binance_raw":
        _ingest_raw(paths, dataset or "binance", force, lake_path)
        return
    if dataset is None:
        raise IngestError("name the target dataset with --dataset NAME (e.g. --dataset trades)")
    from ticklake.ingest.readers import ReaderOptions

    extra: dict[str, object] = {}
    if mapping is not None:
        extra["mapping"] = mapping
    if levels is not None:
        extra["levels"] = levels
    options = ReaderOptions(
        batch_rows=batch_rows,
        timezone=None,
        instrument=instrument,
        keep_all_columns=keep_all_columns,
        extra=extra,
    )
    lake = get_lake(lake_path)
    with progress_bars() as bars:
        tasks: dict[str, ProgressTask] = {}

        def on_progress(phase: str, index: int, total: int, note: str) -> None:
            if phase not in tasks:
                label = "reading files" if phase == "read" else "committing days"
                tasks[phase] = bars.add(label, total)
            tasks[phase].advance(note=Path(note).name[:40])

        summary = lake.ingest(
            paths,
            dataset,
            format=fmt,
            layer=layer,
            options=options,
            timezone=timezone,
            force=force,
            executor=executor,
            workers=workers,
            progress=on_progress,
            on_failure="return",
        )
    for failed in summary.failed:
        console.print(f"[red]failed[/] {failed.error}", highlight=False, soft_wrap=True)
    console.print(summary.line(), highlight=False, soft_wrap=True)
    for note, count in summary.notes.items():
        console.print(f"note: {count:,} row(s): {note}", highlight=False, soft_wrap=True)
    if summary.rows_quarantined:
        console.print(
            f"rejected rows are in {lake.root / 'quarantine' / dataset} with their reasons",
            highlight=False,
            soft_wrap=True,
        )
    if summary.failed:
        raise typer.Exit(IngestError.exit_code)
    if summary.nothing_committed:
        err_console.print("[bold yellow]warning:[/] ", end="")
        err_console.print(
            _nothing_committed(summary), highlight=False, markup=False, soft_wrap=True
        )
        raise typer.Exit(NothingCommittedError.exit_code)


def _ingest_postgres(
    query: str | None,
    dataset: str | None,
    schema: str | None,
    watermark: str | None,
    dsn_env: str,
    layer: str,
    timezone: str | None,
    batch_rows: int,
    full: bool,
    lake_path: Path | None,
) -> None:
    """``ingest postgres --query ... -d DATASET --schema S --watermark COL``."""
    missing = [
        flag
        for flag, value in (
            ("--query", query),
            ("--dataset", dataset),
            ("--schema", schema),
            ("--watermark", watermark),
        )
        if not value
    ]
    if missing:
        raise IngestError(f"ingest postgres needs {', '.join(missing)}")
    assert query and dataset and schema and watermark
    lake = get_lake(lake_path)
    with progress_bars() as bars:
        tasks: dict[str, ProgressTask] = {}

        def on_progress(phase: str, count: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add("reading rows" if phase == "read" else "committing days")
            tasks[phase].update(completed=count)

        summary = lake.ingest_postgres(
            query,
            dataset,
            schema=schema,
            watermark=watermark,
            dsn_env=dsn_env,
            layer=layer,
            timezone=timezone,
            batch_rows=batch_rows,
            full=full,
            progress=on_progress,
        )
    console.print(summary.line(), highlight=False, soft_wrap=True)


def _ingest_raw(paths: list[str], prefix: str, force: bool, lake_path: Path | None) -> None:
    """``ingest binance_raw RAW_DIR``: route a collector's parts by their stream."""
    lake = get_lake(lake_path)
    summaries = []
    with progress_bars() as bars:
        for path in paths:
            task = bars.add(f"routing {Path(path).name[:30]}")

            def on_progress(index: int, total: int, task: ProgressTask = task) -> None:
                task.update(total=total, completed=index)

            summaries.append(lake.ingest_raw(path, prefix, force=force, progress=on_progress))
    table = Table("dataset", "parts", "rows read", "added", "quarantined")
    datasets = sorted({d for s in summaries for d in s.datasets})
    for name in datasets:
        table.add_row(
            f"bronze.{name}",
            f"{sum(s.parts.get(name, 0) for s in summaries):,}",
            f"{sum(s.rows_read(name) for s in summaries):,}",
            f"{sum(s.rows_added(name) for s in summaries):,}",
            f"{sum(s.rows_quarantined(name) for s in summaries):,}",
        )
    console.print(table)
    read = sum(s.parts_read for s in summaries)
    skipped = sum(s.parts_skipped for s in summaries)
    bad = sum(s.lines_quarantined for s in summaries)
    console.print(
        f"{read} part(s) routed, {skipped} already routed (skipped), "
        f"{sum(s.lines for s in summaries):,} lines, {bad:,} unroutable line(s) quarantined",
        highlight=False,
    )
    if open_klines := sum(s.klines_open for s in summaries):
        console.print(f"{open_klines:,} update(s) of still-open klines (not bars)", highlight=False)
    if read and all(s.nothing_committed for s in summaries if s.parts_read):
        err_console.print(
            f"[bold yellow]warning:[/] 0 rows committed from {read} raw part(s): every line "
            f"was unroutable; see the quarantine's reasons (exit code {EXIT_NOTHING_COMMITTED})",
            highlight=False,
        )
        raise typer.Exit(EXIT_NOTHING_COMMITTED)


def _nothing_committed(summary: IngestSummary) -> str:
    """The one-line warning of an ingest that committed no row (exit code 11)."""
    read = [f for f in summary.files if f.status == "staged"]
    if summary.rows_read == 0:
        why = "the file(s) hold no data rows (empty, header-only or 0-row)"
    else:
        why = f"all {summary.rows_read:,} row(s) read were quarantined"
    names = ", ".join(f.label for f in read[:3]) + (" ..." if len(read) > 3 else "")
    return (
        f"0 rows committed to {summary.layer}.{summary.dataset}: {why} ({names}); "
        "check the files and the quarantine's reasons "
        f"(exit code {NothingCommittedError.exit_code})."
    )
