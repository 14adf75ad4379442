"""The persistent warehouse: ``<lake>/warehouse.duckdb``.

It holds two kinds of objects:

- **generated views**, one per lake dataset (``<layer>.<dataset>`` and a bare
  ``<dataset>`` where the name is unique), over the lake's Parquet files by paths
  relative to the lake (``file_search_path`` is set on every open, so a lake directory
  can move). They are (re)made by :meth:`Warehouse.refresh_views`, which records their
  names in ``_ticklake.generated_views`` and never touches anything else;
- **the user's objects**: views and tables made by ``ticklake sql run``, migrations and
  models. They persist.

DuckDB lets one process open the file read-write, or any number read-only, never both.
Writers therefore take the lake's warehouse lock (one ticklake writer at a time) and
keep the file open only for the work at hand; a reader that meets a writer's file lock
waits for it up to ``lake.lock_timeout_seconds`` and then says who holds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ticklake.errors import LockTimeoutError, QueryError
from ticklake.lake.lake import Lake
from ticklake.lake.locking import file_lock
from ticklake.lake.sql import view_statements
from ticklake.lake.sql_names import META_SCHEMA, WAREHOUSE_FILE, quote_ident, quote_literal

_LOCK = Path("locks") / "warehouse.lock"


@dataclass(frozen=True)
class WarehouseObject:
    schema: str
    name: str
    kind: str  # "view" | "table"
    generated: bool
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class Warehouse:
    """The lake's persistent DuckDB database (see the module docstring)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.path = lake.root / WAREHOUSE_FILE

    # ------------------------------------------------------------------ opening
    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lake.settings.lake.lock_timeout_seconds
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise LockTimeoutError(
                        f"{self.path}: the warehouse is held by another process ({exc}); "
                        "wait for it to finish (a `ticklake sql build`, `sql run` or "
                        "`query --write`) and retry",
                        path=str(self.path),
                    ) from None
                time.sleep(0.05)
        con.execute("SET autoinstall_known_extensions=false")
        con.execute("SET autoload_known_extensions=false")
        con.execute("SET TimeZone='UTC'")
        con.execute(f"SET file_search_path={quote_literal(str(self.lake.root))}")
        return con

    @contextmanager
    def connect(self, *, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the warehouse for the ``with`` block.

        ``write=True`` takes the warehouse lock, refreshes the generated views (so a
        dataset created since the last refresh is there) and opens the file read-write.
        A read-only open of a warehouse that does not exist yet creates it first.
        """
        if write:
            lock = self.lake.root / _LOCK
            timeout = self.lake.settings.lake.lock_timeout_seconds
            with file_lock(lock, timeout, "the warehouse"):
                con = self._open(read_only=False)
                try:
                    self.refresh_views(con)
                    yield con
                finally:
                    con.close()
            return
        if not self.path.exists():
            self.refresh()
        con = self._open(read_only=True)
        try:
            yield con
        finally:
            con.close()

    def refresh(self) -> Path:
        """Create the warehouse if needed and refresh its generated views."""
        with self.connect(write=True):
            pass
        return self.path

    def is_stale(self) -> bool:
        """True when the generated views no longer match the lake (or there is no file).

        A read-only reader calls :meth:`refresh` first when this says so: a dataset made,
        removed or given its first partition since the last refresh.
        """
        if not self.path.exists():
            return True
        con = self._open(read_only=True)
        try:
            try:
                recorded = set(
                    con.execute(f"SELECT * FROM {META_SCHEMA}.generated_views").fetchall()
                )
            except duckdb.CatalogException:
                return True
            views = {
                (s, n): "read_parquet" in (sql or "").lower()
                for s, n, sql in con.execute(
                    "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal"
                ).fetchall()
            }
            tables = set(
                con.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_catalog = current_database()"
                ).fetchall()
            )
        finally:
            con.close()
        expected: dict[tuple[str, str], bool] = {}
        for statement in view_statements(self.lake, relative=True):
            target = _view_target(statement)
            if target is not None:
                expected[target] = "read_parquet" in statement.lower()
        if recorded - set(expected):
            return True  # a dataset is gone
        for target, reads_files in expected.items():
            if target in recorded:
                if views.get(target) != reads_files:
                    return True  # an empty dataset got its first partition (or lost all)
            elif target not in tables:
                return True  # a new dataset (not shadowed by a user object)
        return False

    # ------------------------------------------------------------ generated views
    def refresh_views(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """(Re)create one view per dataset; drop generated views whose dataset is gone.

        A user object with the name a generated view wants is left alone (the dataset
        stays reachable by its qualified ``<layer>.<name>``) and never replaced.
        """
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {META_SCHEMA}.generated_views "
            "(schema_name VARCHAR, view_name VARCHAR, PRIMARY KEY (schema_name, view_name))"
        )
        previous = set(con.execute(f"SELECT * FROM {META_SCHEMA}.generated_views").fetchall())
        existing = {
            (s, n)
            for s, n in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database()"
            ).fetchall()
        }
        made: list[tuple[str, str]] = []
        con.execute("BEGIN")
        try:
            for statement in view_statements(self.lake, relative=True):
                target = _view_target(statement)
                if target is None:  # CREATE SCHEMA
                    con.execute(statement)
                    continue
                if target in existing and target not in previous:
                    continue  # the user's own object of that name
                con.execute(statement)
                made.append(target)
            for schema, name in previous - set(made):
                con.execute(f"DROP VIEW IF EXISTS {quote_ident(schema)}.{quote_ident(name)}")
            con.execute(f"DELETE FROM {META_SCHEMA}.generated_views")
            if made:
                con.executemany(f"INSERT INTO {META_SCHEMA}.generated_views VALUES (?, ?)", made)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise QueryError(f"{self.path}: refreshing the lake views failed: {exc}") from exc
        return [f"{s}.{n}" for s, n in made]

    # ------------------------------------------------------------------ catalog
    def objects(self, con: duckdb.DuckDBPyConnection) -> list[WarehouseObject]:
        """Every view and table of the warehouse but its own bookkeeping."""
        generated: set[tuple[str, str]] = set()
        with suppress(duckdb.CatalogException):
            generated = set(con.execute(f"SELECT * FROM {META_SCHEMA}.generated_views").fetchall())
        rows = con.execute(
            "SELECT t.table_schema, t.table_name, t.table_type, c.column_name, c.data_type "
            "FROM information_schema.tables t JOIN information_schema.columns c "
            "ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema "
            "AND c.table_name = t.table_name "
            "WHERE t.table_catalog = current_database() AND t.table_schema <> ? "
            "ORDER BY t.table_schema, t.table_name, c.ordinal_position",
            [META_SCHEMA],
        ).fetchall()
        grouped: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        for schema, name, kind, column, dtype in rows:
            grouped.setdefault((schema, name, kind), []).append((column, dtype))
        return [
            WarehouseObject(
                schema=schema,
                name=name,
                kind="view" if kind == "VIEW" else "table",
                generated=(schema, name) in generated,
                columns=tuple(cols),
            )
            for (schema, name, kind), cols in grouped.items()
        ]


def _view_target(statement: str) -> tuple[str, str] | None:
    """``(schema, name)`` of a ``CREATE OR REPLACE VIEW a.b AS`` statement, else None."""
    prefix = "CREATE OR REPLACE VIEW "
    if not statement.startswith(prefix):
        return None
    head = statement[len(prefix) :].split(" AS ", 1)[0]
    schema, name = head.split(".", 1)
    return schema.strip('"'), name.strip('"')
