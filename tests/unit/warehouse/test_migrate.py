"""``ticklake sql migrate`` and ``sql views``: once, in order, refused when history changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

import ticklake
from ticklake.cli import app
from ticklake.errors import ConfigError, QueryError

runner = CliRunner()


@pytest.fixture
def lake(tmp_path: Path) -> ticklake.LakeSession:
    return ticklake.init_lake(tmp_path / "lake")


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def _db(lake: ticklake.LakeSession, sql: str) -> list[tuple[object, ...]]:
    """Read the warehouse with plain DuckDB, not ticklake's code."""
    con = duckdb.connect(str(lake.root / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _user_tables(lake: ticklake.LakeSession) -> set[str]:
    rows = _db(
        lake,
        "select table_name from information_schema.tables where table_schema = 'main'",
    )
    return {str(r[0]) for r in rows}


def test_migrations_apply_once_in_order_with_their_records(lake: ticklake.LakeSession) -> None:
    folder = lake.root / "sql" / "migrations"
    first = _write(folder, "0001_create_fills.sql", "create table fills (id int);\n")
    _write(folder, "0002_add_qty.sql", "alter table fills add column qty int;\n")
    result = runner.invoke(app, ["sql", "migrate", "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    assert "applied 0001_create_fills.sql" in result.output
    assert "0002_add_qty.sql: replaced main.fills" in result.output
    records = _db(lake, "select version, name, sha256 from _ticklake.migrations order by 1")
    assert records == [
        (1, "0001_create_fills.sql", hashlib.sha256(first.read_bytes()).hexdigest()),
        (
            2,
            "0002_add_qty.sql",
            hashlib.sha256(b"alter table fills add column qty int;\n").hexdigest(),
        ),
    ]
    assert _db(
        lake, "select column_name from information_schema.columns where table_name = 'fills'"
    ) == [
        ("id",),
        ("qty",),
    ]
    again = runner.invoke(app, ["sql", "migrate", "--lake", str(lake.root)])
    assert again.exit_code == 0 and "up to date (2 migration(s) applied)" in again.output


def test_dry_run_lists_pending_and_applies_nothing(lake: ticklake.LakeSession) -> None:
    _write(lake.root / "sql" / "migrations", "0001_t.sql", "create table t (a int);")
    result = runner.invoke(app, ["sql", "migrate", "--dry-run", "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    assert "would apply 0001_t.sql" in result.output
    assert "t" not in _user_tables(lake)
    assert _db(lake, "select count(*) from _ticklake.migrations") == [(0,)]


def test_failing_migration_leaves_the_warehouse_as_before_it(lake: ticklake.LakeSession) -> None:
    folder = lake.root / "sql" / "migrations"
    _write(folder, "0001_ok.sql", "create table ok (a int);")
    bad = _write(
        folder,
        "0002_bad.sql",
        "create table half (a int);\n\ninsert into half select * from nope;\n",
    )
    with pytest.raises(QueryError) as info:
        lake.migrate()
    assert str(info.value).startswith(f"{bad}:3: statement 2 (INSERT) failed: Catalog Error")
    assert _user_tables(lake) == {"ok"}  # 0001 stays applied, nothing of 0002
    assert _db(lake, "select name from _ticklake.migrations") == [("0001_ok.sql",)]


def test_changed_applied_migration_is_refused_naming_file_and_hashes(
    lake: ticklake.LakeSession,
) -> None:
    folder = lake.root / "sql" / "migrations"
    path = _write(folder, "0001_t.sql", "create table t (a int);")
    old = hashlib.sha256(path.read_bytes()).hexdigest()
    lake.migrate()
    path.write_text("create table t (a bigint);")
    new = hashlib.sha256(path.read_bytes()).hexdigest()
    _write(folder, "0002_u.sql", "create table u (a int);")
    result = runner.invoke(app, ["sql", "migrate", "--lake", str(lake.root)])
    assert result.exit_code == QueryError.exit_code
    assert f"{path}: migration 0001 was changed after it was applied" in result.output
    assert f"sha256 {old[:12]}, now {new[:12]}" in result.output
    assert "put the change in a new migration 0003_<description>.sql" in result.output
    assert "u" not in _user_tables(lake)  # refused before anything ran


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["0001_a.sql", "0003_c.sql"], "migration 0002 is missing (next is 0003_c.sql)"),
        (
            ["0001_a.sql", "0001_b.sql"],
            "two migrations have number 0001: 0001_a.sql and 0001_b.sql",
        ),
        (["1_a.sql"], "1_a.sql: not a migration name; name migrations NNNN_description.sql"),
        (["0002_a.sql"], "migration 0001 is missing"),
    ],
)
def test_gaps_duplicates_and_bad_names_are_refused(
    lake: ticklake.LakeSession, names: list[str], message: str
) -> None:
    for name in names:
        _write(lake.root / "sql" / "migrations", name, "create table x (a int);")
    with pytest.raises(ConfigError) as info:
        lake.migrate()
    assert message in str(info.value)


def test_project_folder_from_settings_and_from_the_option(tmp_path: Path) -> None:
    lake = ticklake.init_lake(tmp_path / "lake")
    toml = lake.root / "ticklake.toml"
    text = toml.read_text()
    assert '[warehouse]\nproject_dir = "sql"' in text  # `init` writes the default
    toml.write_text(text.replace('project_dir = "sql"', 'project_dir = "warehouse_sql"'))
    lake = ticklake.open_lake(lake.root)
    assert lake.settings.warehouse.project_dir == "warehouse_sql"
    _write(
        lake.root / "warehouse_sql" / "migrations",
        "0001_a.sql",
        "create table from_settings (a int);",
    )
    other = _write(
        tmp_path / "elsewhere" / "migrations", "0001_b.sql", "create table from_option (a int);"
    )
    lake.migrate()
    assert "from_settings" in _user_tables(lake)
    result = runner.invoke(
        app, ["sql", "migrate", "--project", str(other.parent.parent), "--lake", str(lake.root)]
    )
    # The same version number with another file is a changed history: refused.
    assert result.exit_code == QueryError.exit_code
    assert "was changed after it was applied as 0001_a.sql" in result.output


def test_views_are_made_in_dependency_order_and_stale_ones_dropped(
    lake: ticklake.LakeSession,
) -> None:
    views = lake.root / "sql" / "views"
    lake.sql_run("create table base as select range as n from range(5)")
    _write(views, "a_total.sql", "select sum(n) as total from evens")  # needs evens first
    _write(views, "evens.sql", "-- the even numbers\nselect n from base where n % 2 = 0")
    _write(views, "gold.top.sql", "select max(n) as top from evens")
    result = runner.invoke(app, ["sql", "views", "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    assert _db(lake, "select total from a_total") == [(6,)]  # 0 + 2 + 4
    assert _db(lake, "select top from gold.top") == [(4,)]
    (views / "gold.top.sql").unlink()
    again = runner.invoke(app, ["sql", "views", "--lake", str(lake.root)])
    assert "dropped view gold.top (its file is gone)" in again.output
    assert _db(lake, "select count(*) from duckdb_views() where view_name = 'top'") == [(0,)]
    assert "base" in _user_tables(lake)  # never drops what it did not make


def test_a_failing_view_changes_no_view(lake: ticklake.LakeSession) -> None:
    views = lake.root / "sql" / "views"
    _write(views, "good.sql", "select 1 as one")
    lake.sql_views()
    _write(views, "good.sql", "select 2 as two")
    bad = _write(views, "zz_bad.sql", "select * from missing_table")
    with pytest.raises(QueryError, match=f"{bad}:1: view main.zz_bad failed: Catalog Error"):
        lake.sql_views()
    assert _db(lake, "select * from good") == [(1,)]


def test_a_view_file_must_be_one_select(lake: ticklake.LakeSession) -> None:
    path = _write(lake.root / "sql" / "views", "v.sql", "create table t (a int); select 1")
    with pytest.raises(ConfigError, match="a view file holds exactly one SELECT"):
        lake.sql_views()
    assert path.exists()
