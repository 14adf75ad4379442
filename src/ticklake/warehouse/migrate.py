"""The SQL project folder's migrations and views.

The project folder (``warehouse.project_dir``, default ``<lake>/sql/``) holds::

    migrations/0001_create_fills.sql   applied once, in order (ticklake sql migrate)
    views/<name>.sql                   one SELECT each, (re)made as views (ticklake sql views)
    models/<name>.sql                  models (ticklake sql build; see models.py)

**Migrations** are named ``NNNN_description.sql`` (four digits, lower-case words), numbered
1, 2, 3 ... without gap or duplicate. Each pending one runs with its record in
``_ticklake.migrations`` (version, name, sha256, applied_at) in one transaction, so a
failing migration leaves the warehouse exactly as before it (earlier ones stay applied)
and names its file and line. An applied migration whose file changed (another sha256) or
vanished is refused before anything runs: a migration is history; change the schema with
a new one.

**Views**: ``views/<name>.sql`` (or ``views/<schema>.<name>.sql``) is one SELECT; it becomes
the view ``<schema>.<name>`` (schema ``main`` by default). ``ticklake sql views`` recreates
all of them in one transaction, in dependency order (a view may select from another),
and drops the views it made earlier whose file is gone (recorded in
``_ticklake.project_views``; it never drops a view it did not make).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from ticklake.errors import ConfigError, QueryError
from ticklake.lake.lake import Lake
from ticklake.lake.sql_names import quote_ident
from ticklake.warehouse.db import META_SCHEMA, Warehouse
from ticklake.warehouse.sqlfile import (
    SqlRunResult,
    execute_statements,
    parse_sql,
    record_changes,
)

_MIGRATION = re.compile(r"(\d{4})_([a-z0-9][a-z0-9_]*)\.sql")
_VIEW_FILE = re.compile(r"(?:([A-Za-z_][A-Za-z0-9_]*)\.)?([A-Za-z_][A-Za-z0-9_]*)\.sql")
_MIGRATIONS_TABLE = f"{META_SCHEMA}.migrations"
_VIEWS_TABLE = f"{META_SCHEMA}.project_views"


def project_dir(lake: Lake, override: Path | str | None = None) -> Path:
    """The SQL project folder: ``override``, else ``warehouse.project_dir`` (lake-relative)."""
    path = Path(override) if override is not None else Path(lake.settings.warehouse.project_dir)
    return path if path.is_absolute() else lake.root / path


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name
    path: Path
    sha256: str
    text: str


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    sha256: str
    applied_at: datetime


@dataclass
class MigrationReport:
    """What ``migrate`` found and did."""

    folder: Path
    applied_before: list[AppliedMigration] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    applied_now: list[Migration] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # "0002_x.sql: created main.t"
    dry_run: bool = False


def discover_migrations(folder: Path) -> list[Migration]:
    """The migrations in ``folder`` in order; refuse bad names, duplicates and gaps."""
    if not folder.is_dir():
        return []
    found: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        match = _MIGRATION.fullmatch(path.name)
        if match is None:
            raise ConfigError(
                f"{path}: not a migration name; name migrations NNNN_description.sql "
                "(four digits, then lower-case letters, digits and _), e.g. 0001_create_fills.sql",
                path=str(path),
            )
        version = int(match.group(1))
        if version in found:
            raise ConfigError(
                f"{folder}: two migrations have number {version:04d}: "
                f"{found[version].name} and {path.name}; renumber one",
                path=str(path),
                version=version,
            )
        data = path.read_bytes()
        found[version] = Migration(
            version, path.name, path, hashlib.sha256(data).hexdigest(), data.decode("utf-8")
        )
    versions = sorted(found)
    for expected, version in enumerate(versions, start=1):
        if version != expected:
            raise ConfigError(
                f"{folder}: migration {expected:04d} is missing (next is "
                f"{found[version].name}); migrations are numbered 0001, 0002, ... without gaps",
                path=str(folder),
                version=expected,
            )
    return [found[v] for v in versions]


def _ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {_MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, "
        "name VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )


def _applied(con: duckdb.DuckDBPyConnection) -> list[AppliedMigration]:
    rows = con.execute(
        # TIMESTAMPTZ would need pytz to fetch; the session time zone is UTC.
        "SELECT version, name, sha256, CAST(applied_at AS TIMESTAMP) "
        f"FROM {_MIGRATIONS_TABLE} ORDER BY version"
    ).fetchall()
    return [AppliedMigration(v, n, h, at.replace(tzinfo=UTC)) for v, n, h, at in rows]


def _check_history(applied: list[AppliedMigration], files: list[Migration], folder: Path) -> None:
    by_version = {m.version: m for m in files}
    for record in applied:
        current = by_version.get(record.version)
        if current is None:
            raise QueryError(
                f"{folder}: migration {record.name} was applied on "
                f"{record.applied_at:%Y-%m-%d %H:%M} UTC but its file is gone; restore it "
                "(a migration is history: change the schema with a new migration)",
                path=str(folder / record.name),
                version=record.version,
            )
        if current.name != record.name or current.sha256 != record.sha256:
            raise QueryError(
                f"{current.path}: migration {record.version:04d} was changed after it was "
                f"applied as {record.name} (sha256 {record.sha256[:12]}, now "
                f"{current.sha256[:12]}); restore the applied file (e.g. `git checkout` it) "
                "and put the change in a new migration "
                f"{max(by_version) + 1:04d}_<description>.sql",
                path=str(current.path),
                version=record.version,
                applied_sha256=record.sha256,
                current_sha256=current.sha256,
            )


def migrate(
    lake: Lake, *, project: Path | str | None = None, dry_run: bool = False
) -> MigrationReport:
    """Apply the pending migrations of the project folder (see the module docstring)."""
    folder = project_dir(lake, project) / "migrations"
    files = discover_migrations(folder)
    report = MigrationReport(folder=folder, dry_run=dry_run)
    for migration in files:  # parse them all first: a bad variable fails before any runs
        parse_sql(migration.text, str(migration.path))
    warehouse = Warehouse(lake)
    with warehouse.connect(write=True) as con:
        _ensure_table(con)
        report.applied_before = _applied(con)
        _check_history(report.applied_before, files, folder)
        done = {record.version for record in report.applied_before}
        report.pending = [m for m in files if m.version not in done]
        if dry_run:
            return report
        for migration in report.pending:
            statements = parse_sql(migration.text, str(migration.path))
            result = SqlRunResult(source=str(migration.path), wrote=True)
            before = {o.qualified: o for o in warehouse.objects(con)}
            con.execute("BEGIN")
            try:
                execute_statements(con, statements, str(migration.path), result)
                con.execute(
                    f"INSERT INTO {_MIGRATIONS_TABLE} VALUES (?, ?, ?, ?)",
                    [migration.version, migration.name, migration.sha256, datetime.now(UTC)],
                )
                after = {o.qualified: o for o in warehouse.objects(con)}
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            record_changes(before, after, statements, result)
            report.applied_now.append(migration)
            report.changes += [f"{migration.name}: {line}" for line in result.summary()]
    return report


# ------------------------------------------------------------------------- views
@dataclass(frozen=True)
class ProjectView:
    schema: str
    name: str
    path: Path
    sql: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class ViewsReport:
    folder: Path
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def discover_views(folder: Path) -> list[ProjectView]:
    """The ``views/*.sql`` files, each checked to be exactly one SELECT."""
    if not folder.is_dir():
        return []
    views = []
    for path in sorted(folder.glob("*.sql")):
        match = _VIEW_FILE.fullmatch(path.name)
        if match is None:
            raise ConfigError(
                f"{path}: a view file is named <name>.sql or <schema>.<name>.sql "
                "(letters, digits, _)",
                path=str(path),
            )
        statements = parse_sql(path.read_text(encoding="utf-8"), str(path))
        if len(statements) != 1 or statements[0].kind != "SELECT":
            kinds = ", ".join(st.kind for st in statements) or "nothing"
            raise ConfigError(
                f"{path}: a view file holds exactly one SELECT (its view is named after the "
                f"file), found {kinds}",
                path=str(path),
            )
        views.append(ProjectView(match.group(1) or "main", match.group(2), path, statements[0].sql))
    return views


def _order(views: list[ProjectView]) -> list[ProjectView]:
    """Views in dependency order (a view after those of the project it selects from)."""
    by_name = {v.qualified: v for v in views}
    bare = {v.name: v.qualified for v in views if v.schema == "main"}
    probe = duckdb.connect()
    deps: dict[str, set[str]] = {}
    try:
        for view in views:
            names = set()
            for raw in probe.get_table_names(view.sql, qualified=True):
                parts = raw.replace('"', "").split(".")
                qualified = ".".join(parts[-2:]) if len(parts) >= 2 else bare.get(parts[-1], "")
                if qualified in by_name and qualified != view.qualified:
                    names.add(qualified)
            deps[view.qualified] = names
    finally:
        probe.close()
    ordered: list[ProjectView] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            raise ConfigError(f"views select from each other in a cycle: {cycle}", cycle=cycle)
        state[name] = "visiting"
        for dep in sorted(deps[name]):
            visit(dep, [*chain, name])
        state[name] = "done"
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name, [])
    return ordered


def create_views(lake: Lake, *, project: Path | str | None = None) -> ViewsReport:
    """(Re)create every project view in one transaction (see the module docstring)."""
    folder = project_dir(lake, project) / "views"
    views = _order(discover_views(folder))
    report = ViewsReport(folder=folder)
    with Warehouse(lake).connect(write=True) as con:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {_VIEWS_TABLE} (schema_name VARCHAR, view_name VARCHAR, "
            "PRIMARY KEY (schema_name, view_name))"
        )
        previous = set(con.execute(f"SELECT * FROM {_VIEWS_TABLE}").fetchall())
        con.execute("BEGIN")
        try:
            for view in views:
                target = f"{quote_ident(view.schema)}.{quote_ident(view.name)}"
                try:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(view.schema)}")
                    con.execute(f"CREATE OR REPLACE VIEW {target} AS {view.sql}")
                except duckdb.Error as exc:
                    first = str(exc).strip().splitlines()[0]
                    raise QueryError(
                        f"{view.path}:1: view {view.qualified} failed: {first}; no view was "
                        "changed",
                        path=str(view.path),
                    ) from exc
                report.created.append(view.qualified)
            made = {(v.schema, v.name) for v in views}
            for schema, name in sorted(previous - made):
                con.execute(f"DROP VIEW IF EXISTS {quote_ident(schema)}.{quote_ident(name)}")
                report.dropped.append(f"{schema}.{name}")
            con.execute(f"DELETE FROM {_VIEWS_TABLE}")
            if made:
                con.executemany(f"INSERT INTO {_VIEWS_TABLE} VALUES (?, ?)", sorted(made))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return report
