"""``ticklake init | status | query`` and the ``ticklake lake ...`` maintenance group."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ticklake.cli._common import (
    LakeOption,
    console,
    err_console,
    get_lake,
    handle_errors,
    human_bytes,
    progress_bar,
)

if TYPE_CHECKING:
    import polars as pl

lake_app = typer.Typer(help="Inspect and maintain the lake's files.", no_args_is_help=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def register(app: typer.Typer) -> None:
    app.command("init")(init_cmd)
    app.command("status")(status_cmd)
    app.command("query")(query_cmd)
    app.add_typer(lake_app, name="lake")


@handle_errors
def init_cmd(
    path: Annotated[Path | None, typer.Argument(help="Directory for the new lake.")] = None,
) -> None:
    """Create a lake: a directory with ticklake.toml and the bronze/silver/gold layers."""
    from ticklake.api import init_lake
    from ticklake.lake.lake import default_lake_path

    target = path or default_lake_path()
    lake = init_lake(target)
    console.print(f"created lake at [bold]{lake.root}[/] (settings: {lake.root / 'ticklake.toml'})")


def _fmt_ts(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@handle_errors
def status_cmd(lake_path: LakeOption = None) -> None:
    """Show datasets, partitions, rows, bytes, date range and last write."""
    lake = get_lake(lake_path)
    table = Table(title=f"lake {lake.root}", title_justify="left")
    for col, justify in (
        ("dataset", "left"),
        ("schema", "left"),
        ("time zone", "left"),
        ("days", "right"),
        ("rows", "right"),
        ("size", "right"),
        ("first day", "left"),
        ("last day", "left"),
        ("last write (UTC)", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    infos = lake.datasets()
    broken = lake.unreadable_datasets()
    for info in infos:
        parts = lake.partitions(info.name, layer=info.layer)
        rows = sum(p.rows for p in parts)
        size = sum(p.bytes for p in parts)
        last = max((p.manifest.written_at for p in parts if p.manifest), default="-")
        table.add_row(
            f"{info.layer}.{info.name}",
            info.dataset_schema.name,
            info.timezone,
            str(len(parts)),
            f"{rows:,}",
            human_bytes(size),
            str(parts[0].date) if parts else "-",
            str(parts[-1].date) if parts else "-",
            last.replace("T", " ")[:19],
        )
    for error in broken:
        table.add_row(f"{error.fields.get('dataset')}", "[red]unreadable[/]", *["-"] * 7)
    if not infos and not broken:
        console.print(
            f"lake {lake.root} is empty: ingest data with `ticklake ingest` or run `ticklake demo`."
        )
        return
    console.print(table)
    for error in broken:
        console.print(f"[red]error[/]: {error.message}", soft_wrap=True)
    from ticklake.lake.layout import QUARANTINE_DIR

    quarantine = lake.root / QUARANTINE_DIR
    if quarantine.is_dir():
        from ticklake.quality.quarantine import quarantined_days

        for days_file in sorted(quarantine.glob("*/_days.json")):
            held = quarantined_days(lake, days_file.parent.name)
            if held:
                console.print(
                    f"quarantined days of {days_file.parent.name} (excluded from silver): "
                    + ", ".join(
                        f"{day} ({','.join(entry.get('rules', []))})"
                        for day, entry in list(held.items())[:10]
                    )
                    + (f" ... {len(held)} in all" if len(held) > 10 else "")
                )
        days = sorted(p.relative_to(quarantine) for p in quarantine.glob("*/date=*"))
        if days:
            console.print(
                f"quarantine: {len(days)} dataset-day(s) hold rejected rows: "
                + ", ".join(str(d) for d in days[:10])
                + (" ..." if len(days) > 10 else "")
            )


def _print_frame(frame: pl.DataFrame, fmt: OutputFormat, output: Path | None) -> None:
    if fmt is OutputFormat.parquet:
        if output is None:
            raise typer.BadParameter("--format parquet needs --output FILE")
        frame.write_parquet(output)
        console.print(f"wrote {frame.height:,} rows to {output}")
        return
    if fmt is OutputFormat.csv:
        text = frame.write_csv()
    elif fmt is OutputFormat.json:
        text = json.dumps(frame.to_dicts(), default=str, indent=1)
    else:
        import polars as pl

        with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=40, tbl_width_chars=200):
            text = str(frame)
    if output is not None:
        output.write_text(text)
        console.print(f"wrote {frame.height:,} rows to {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@handle_errors
def query_cmd(
    sql: Annotated[str, typer.Argument(help="SQL over views like bronze.trades, silver.bars_1m.")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
    untrusted: Annotated[
        bool, typer.Option(help="Use the locked read-only path (one SELECT, row cap, timeout).")
    ] = False,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="Run on the persistent warehouse (<lake>/warehouse.duckdb) in one "
            "transaction, so CREATE / INSERT / ... persist.",
        ),
    ] = False,
    lake_path: LakeOption = None,
) -> None:
    """Run DuckDB SQL over every dataset of the lake (and the warehouse's own objects).

    Read-only by default: a statement that would change something is refused, since it
    would persist nothing. --write runs it on the warehouse and says what changed. Which
    of the two ran is printed to stderr.
    """
    lake = get_lake(lake_path)
    if untrusted and write:
        raise typer.BadParameter("--untrusted is read-only; drop --write or --untrusted")
    if untrusted:
        result = lake.query_untrusted(sql)
        frame = result.frame
        if result.truncated:
            console.print(f"[yellow]result truncated to {frame.height:,} rows (query.max_rows)[/]")
        _print_frame(frame, fmt, output)
        return
    outcome = lake.warehouse_query(sql, write=write)
    warehouse = lake.root / "warehouse.duckdb"
    if write:
        for line in outcome.summary():
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
        note = f"ran on the warehouse {warehouse} (--write): committed"
        if not outcome.summary():
            note += ", no object created, replaced or dropped"
    elif outcome.on_warehouse:
        note = f"ran read-only on the lake views and the warehouse {warehouse}; nothing changed"
    else:
        note = "ran read-only on the lake views (no warehouse.duckdb yet); nothing changed"
    err_console.print(note, highlight=False, markup=False, soft_wrap=True)
    if outcome.frame is not None:
        _print_frame(outcome.frame, fmt, output)


@lake_app.command("tables")
@handle_errors
def tables_cmd(lake_path: LakeOption = None) -> None:
    """List the SQL views (one per dataset) with their columns."""
    lake = get_lake(lake_path)
    table = Table("view", "schema", "columns")
    for info in lake.datasets():
        cols = info.dataset_schema.column_names
        table.add_row(f"{info.layer}.{info.name}", info.dataset_schema.name, ", ".join(cols))
    console.print(table)


@lake_app.command("describe")
@handle_errors
def describe_cmd(dataset: str, lake_path: LakeOption = None) -> None:
    """Show a dataset's schema, key, sort order, time zone and partitions."""
    lake = get_lake(lake_path)
    info = lake.dataset_info(dataset)
    schema = info.dataset_schema
    console.print(
        f"[bold]{info.layer}.{info.name}[/]  schema {schema.name} "
        f"({schema.fingerprint()}), time zone {info.timezone}"
        + (f", trading day offset {info.day_offset}" if info.day_offset else "")
    )
    console.print(f"key: {', '.join(schema.key)}   sort: {', '.join(schema.sort)}")
    cols = Table("column", "type", "null", "description")
    for col in schema.columns:
        cols.add_row(col.name, col.type, "yes" if col.nullable else "no", col.description)
    console.print(cols)
    parts = lake.partitions(info.name, layer=info.layer)
    table = Table("date", "rows", "size", "first ts (UTC)", "last ts (UTC)", "sha256")
    for part in parts:
        m = part.manifest
        table.add_row(
            str(part.date),
            f"{part.rows:,}",
            human_bytes(part.bytes),
            _fmt_ts(m.min_ts_ns if m else None),
            _fmt_ts(m.max_ts_ns if m else None),
            (m.file_sha256[:12] + "…") if m else "[red]no manifest[/]",
        )
    console.print(table)


@lake_app.command("verify")
@handle_errors
def verify_cmd(
    repair: Annotated[
        bool,
        typer.Option(
            help="Finish/undo interrupted commits, rebuild manifests proven intact, move "
            "unproven files to _corrupt/ (and say how to rebuild each day)."
        ),
    ] = False,
    lake_path: LakeOption = None,
) -> None:
    """Recompute every file hash; find torn, orphan, stray, missing, misplaced files,
    abandoned ingest staging and changed run outputs."""
    lake = get_lake(lake_path)
    report = lake.verify(repair=repair)
    for line in report.repaired:
        console.print(f"[green]repaired[/] {line}", soft_wrap=True)
    for line in report.notes:
        console.print(f"note: {line}", soft_wrap=True)
    runs = f", {report.run_files_checked} run output(s)" if report.run_files_checked else ""
    if report.ok:
        console.print(
            f"[green]ok[/]: {report.partitions_checked} partitions{runs}, "
            f"{human_bytes(report.bytes_hashed)} hashed, no problems"
        )
        return
    table = Table("problem", "path", "detail")
    for problem in report.problems:
        table.add_row(problem.kind, problem.path, problem.detail)
    console.print(table)
    console.print(
        f"[red]{len(report.problems)} problem(s)[/] in {report.partitions_checked} "
        "partitions"
        + (
            ""
            if repair
            else "; `--repair` finishes interrupted commits, restores manifests it can prove "
            "and moves unproven files aside"
        )
    )
    raise typer.Exit(7)


@lake_app.command("vacuum")
@handle_errors
def vacuum_cmd(lake_path: LakeOption = None) -> None:
    """Remove orphan temp files, empty partition directories and the staging / SQL
    snapshots of processes that are gone (never a live write's)."""
    lake = get_lake(lake_path)
    actions = lake.vacuum()
    for line in actions:
        console.print(line)
    console.print(f"vacuum done: {len(actions)} action(s)")


@lake_app.command("views")
@handle_errors
def views_cmd(lake_path: LakeOption = None) -> None:
    """(Re)build warehouse.duckdb: one view per dataset, paths relative to the lake."""
    lake = get_lake(lake_path)
    path = lake.refresh_warehouse()
    console.print(
        f"wrote {path} with {len(lake.datasets())} dataset view(s); open it with "
        f"duckdb and `SET file_search_path='{lake.root}'` (moved lake: the new path)"
    )


@lake_app.command("repack")
@handle_errors
def repack_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name, or layer.name.")],
    sort: Annotated[
        str | None,
        typer.Option(
            help="New sort key, comma-separated (e.g. expiry,opt_type,strike,ts); it becomes "
            "the dataset's declared sort. Default: the declared sort."
        ),
    ] = None,
    row_group_rows: Annotated[
        int | None,
        typer.Option(help="Rows per Parquet row group (default: lake.row_group_rows)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First trading day to repack (YYYY-MM-DD).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last trading day to repack (YYYY-MM-DD).")
    ] = None,
    lake_path: LakeOption = None,
) -> None:
    """Rewrite partitions sorted and row-grouped for faster selective scans (same rows)."""
    lake = get_lake(lake_path)
    sort_key = tuple(c.strip() for c in sort.split(",") if c.strip()) if sort else None
    total = len(lake.partition_files(dataset, start=start, end=end, verify=False))
    with progress_bar("repack", total) as advance:
        report = lake.repack(
            dataset,
            sort=sort_key,
            row_group_rows=row_group_rows,
            start=start,
            end=end,
            progress=lambda done, count, partition: advance(note=partition),
        )
    qualified = f"{report.layer}.{report.dataset}"
    if not report.partitions:
        console.print(f"{qualified}: no partitions in the chosen range, nothing repacked")
        return
    table = Table(
        title=f"repack {qualified}: sort {', '.join(report.sort_after)}, "
        f"{report.row_group_rows:,} rows per row group",
        title_justify="left",
    )
    for col in (
        "date",
        "rows",
        "size before",
        "size after",
        "row groups",
        "probe skips",
        "scan before",
        "scan after",
        "speed-up",
    ):
        table.add_column(col, justify="left" if col == "date" else "right")

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms"

    def speedup(before: float, after: float) -> str:
        return f"{before / after:.1f}×" if after else "-"

    for part in report.partitions:
        table.add_row(
            str(part.day),
            f"{part.rows:,}",
            human_bytes(part.bytes_before),
            human_bytes(part.bytes_after),
            f"{part.row_groups_before} → {part.row_groups_after}",
            f"{part.row_groups_skipped_before}/{part.row_groups_before} → "
            f"{part.row_groups_skipped_after}/{part.row_groups_after}",
            ms(part.scan_seconds_before),
            ms(part.scan_seconds_after),
            speedup(part.scan_seconds_before, part.scan_seconds_after),
        )
    table.add_section()
    table.add_row(
        "total",
        f"{report.rows:,}",
        human_bytes(report.bytes_before),
        human_bytes(report.bytes_after),
        f"{report.row_groups_before} → {report.row_groups_after}",
        f"{report.row_groups_skipped_before}/{report.row_groups_before} → "
        f"{report.row_groups_skipped_after}/{report.row_groups_after}",
        ms(report.scan_seconds_before),
        ms(report.scan_seconds_after),
        speedup(report.scan_seconds_before, report.scan_seconds_after),
    )
    console.print(table)
    console.print(f"probe query (per day, best of 3): {report.partitions[0].probe}")
    if report.sort_changed:
        console.print(
            f"declared sort changed from {', '.join(report.sort_before)} to "
            f"{', '.join(report.sort_after)}; later writes keep the new order"
        )
