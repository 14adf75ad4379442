"""``ticklake sql run | migrate | views | shell | dbt-profile``: the warehouse's SQL files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ticklake.cli._common import LakeOption, console, err_console, get_lake, handle_errors
from ticklake.errors import ConfigError

if TYPE_CHECKING:
    from ticklake.warehouse.sqlfile import SqlRunResult

ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", help="SQL project folder (default: warehouse.project_dir, sql/)."),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("run")(run_cmd)
    app.command("migrate")(migrate_cmd)
    app.command("views")(views_cmd)
    app.command("shell")(shell_cmd)
    app.command("dbt-profile")(dbt_profile_cmd)


def parse_variables(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"-v {pair!r}: write -v name=value", variable=pair)
        out[name.strip()] = value
    return out


def print_result(result: SqlRunResult) -> None:
    """What changed (stderr) and the last statement's rows (stdout)."""
    for line in result.summary():
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)
    if result.frame is not None:
        import polars as pl

        with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=40, tbl_width_chars=200):
            sys.stdout.write(f"{result.frame}\n")


@handle_errors
def run_cmd(
    file: Annotated[Path, typer.Argument(help="SQL file: statements separated by ';'.")],
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            "-v",
            help="name=value for ${name} (a bound value) or ${name:ident} (a quoted name).",
        ),
    ] = None,
    lake_path: LakeOption = None,
) -> None:
    """Run a SQL file on the warehouse, all its statements in one transaction."""
    lake = get_lake(lake_path)
    result = lake.sql_run(file, parse_variables(var or []))
    print_result(result)
    err_console.print(
        f"{file}: {result.statements} statement(s) committed to {lake.root / 'warehouse.duckdb'}"
        + ("" if result.summary() else " (no object created, replaced or dropped)"),
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@handle_errors
def migrate_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and list the pending migrations only.")
    ] = False,
    project: ProjectOption = None,
    lake_path: LakeOption = None,
) -> None:
    """Apply the pending migrations (migrations/NNNN_name.sql) once each, in order."""
    lake = get_lake(lake_path)
    report = lake.migrate(project=project, dry_run=dry_run)
    done = len(report.applied_before)
    if not report.pending:
        console.print(f"{report.folder}: up to date ({done} migration(s) applied)")
        return
    if dry_run:
        console.print(f"{report.folder}: {done} applied, {len(report.pending)} pending:")
        for migration in report.pending:
            console.print(f"  would apply {migration.name}", highlight=False)
        return
    for migration in report.applied_now:
        console.print(f"applied {migration.name}", highlight=False)
    for line in report.changes:
        console.print(f"  {line}", highlight=False, soft_wrap=True)


@handle_errors
def views_cmd(project: ProjectOption = None, lake_path: LakeOption = None) -> None:
    """(Re)create every views/*.sql (one SELECT each, named after the file) in one transaction."""
    lake = get_lake(lake_path)
    report = lake.sql_views(project=project)
    for name in report.created:
        console.print(f"view {name}", highlight=False)
    for name in report.dropped:
        console.print(f"dropped view {name} (its file is gone)", highlight=False)
    if not report.created and not report.dropped:
        console.print(f"no views in {report.folder} (add one SELECT per .sql file)")


@handle_errors
def shell_cmd(
    write: Annotated[
        bool, typer.Option("--write", help="Let statements change the warehouse.")
    ] = False,
    lake_path: LakeOption = None,
) -> None:
    """An interactive SQL prompt on the warehouse (read-only unless --write)."""
    from ticklake.warehouse.shell import run_shell

    lake = get_lake(lake_path)
    code = run_shell(lake, write=write, stdin=sys.stdin, out=sys.stdout, err=sys.stderr)
    if code:
        raise typer.Exit(code)


@handle_errors
def dbt_profile_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Where profiles.yml goes (dbt's --profiles-dir).")
    ] = Path("."),
    sources_dir: Annotated[
        Path | None,
        typer.Option("--sources-dir", help="Where sources.yml goes (e.g. your models/)."),
    ] = None,
    profile: Annotated[str, typer.Option(help="Profile name (dbt_project.yml's profile:).")] = (
        "ticklake"
    ),
    lake_path: LakeOption = None,
) -> None:
    """Write a dbt-duckdb profiles.yml and a sources.yml with every dataset as a source."""
    lake = get_lake(lake_path)
    files = lake.dbt_files(out, sources_dir=sources_dir, profile=profile)
    console.print(f"wrote {files.profiles} (profile {profile!r}, database {files.database})")
    console.print(f"wrote {files.sources} ({len(lake.datasets())} dataset(s) as sources)")
