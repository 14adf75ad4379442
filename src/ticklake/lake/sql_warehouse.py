"""The warehouse's user objects inside the locked, untrusted SQL path.

``<lake>/warehouse.duckdb`` (:mod:`ticklake.warehouse.db`, a layer above this one, so
its file and schema names are repeated here) holds generated views over the lake and
the user's own views and tables. :func:`ticklake.lake.sql.run_untrusted_sql` lets a
query name those user objects, read-only, while the lake itself is still read through
the query's pinned snapshot:

- :func:`attach` ATTACHes the file ``READ_ONLY`` as ``_warehouse`` before the
  configuration is locked (DuckDB refuses ATTACH once external access is off). It is
  attached only when the query names a table that is not a lake dataset, so a plain
  lake query never touches the file (nor waits for a writer holding it);
- :func:`mirror`, run after the lock and under the query's time limit, gives every user
  object its own name in the in-memory catalog: a table as a view over
  ``_warehouse.<schema>.<table>``, a user view by replaying its definition (DuckDB keeps
  the ``CREATE VIEW`` text) in memory. Replayed there, the names a view reads bind to
  the snapshot's pinned views first; read inside the attached catalog, ``bronze.x``
  would bind to the warehouse's own generated view (live files, relative paths).

The replay runs with external access off and ``allowed_directories`` set, so a user
view reading ``read_csv('/etc/passwd')`` fails to bind exactly like such a query; it is
left out, and a query naming it is refused with that reason (:func:`unavailable`).
Generated views and the ``_ticklake`` bookkeeping schema are not mirrored; a user object
with a lake view's name is shadowed by the lake view.
"""

from __future__ import annotations

import re
import time
from contextlib import suppress
from pathlib import Path

import duckdb

from ticklake.errors import LockTimeoutError, QueryError
from ticklake.lake.sql_names import (
    META_SCHEMA,
    WAREHOUSE_FILE,
    quote_ident,
    quote_literal,
    table_names,
)

#: As :mod:`ticklake.warehouse.db` names them.
#: The catalog name of the attached warehouse inside the untrusted connection.
ALIAS = "_warehouse"


def names_beyond_lake(query: str, datasets: set[tuple[str, str]], bare: set[str]) -> bool:
    """True if ``query`` names a table that is no lake dataset (or cannot be parsed).

    ``datasets`` are the lake's ``(layer, name)``, ``bare`` the names with a bare view.

    Examples:
        >>> names_beyond_lake("SELECT * FROM bronze.t", {("bronze", "t")}, {"t"})
        False
        >>> names_beyond_lake("SELECT * FROM t JOIN mine.v USING (ts)", {("bronze", "t")}, {"t"})
        True
    """
    names = table_names(query)
    if names is None:
        return True
    for parts in names:
        if len(parts) > 2:
            return True  # catalog.schema.table: only the attached warehouse has a catalog
        schema, table = (parts[-2], parts[-1]) if len(parts) == 2 else ("main", parts[-1])
        if (schema, table) in datasets or (schema == "main" and table in bare):
            continue
        return True
    return False


def attach(con: duckdb.DuckDBPyConnection, lake_root: Path, wait_seconds: float) -> bool:
    """ATTACH ``<lake>/warehouse.duckdb`` read-only as :data:`ALIAS`; False if it is absent.

    A writer holding the file (``ticklake sql build``, ``sql run``) is waited for up to
    ``wait_seconds``, then :class:`LockTimeoutError` says so.
    """
    path = lake_root / WAREHOUSE_FILE
    if not path.is_file():
        return False
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con.execute(f"ATTACH {quote_literal(str(path))} AS {ALIAS} (READ_ONLY)")
            return True
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise QueryError(f"{WAREHOUSE_FILE} cannot be opened: {exc}") from None
            if time.monotonic() > deadline:
                raise LockTimeoutError(
                    f"{WAREHOUSE_FILE} is held by a writer (a `ticklake sql build`, `sql run` "
                    "or `query --write`); the query names warehouse objects, so it waited "
                    f"{wait_seconds:g} s for it: retry when the writer is done",
                    path=str(path),
                ) from None
            time.sleep(0.05)
        except duckdb.Error as exc:
            raise QueryError(f"{WAREHOUSE_FILE} cannot be opened: {exc}") from None


def mirror(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Make the attached warehouse's user objects visible in memory (module docstring).

    Returns the user views that could not be replayed, ``schema.name`` -> the reason.
    """
    generated: set[tuple[str, str]] = set()
    with suppress(duckdb.CatalogException):  # a warehouse never refreshed has no record
        rows = con.execute(f"SELECT * FROM {ALIAS}.{META_SCHEMA}.generated_views").fetchall()
        generated = {(str(s), str(n)) for s, n in rows}
    present = {
        (str(s), str(n))
        for s, n in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'memory' "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = 'memory' AND NOT internal"
        ).fetchall()
    }
    skip = generated | present
    filters = "database_name = ? AND NOT internal AND schema_name <> ?"
    tables = con.execute(
        f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {filters} ORDER BY 1, 2",
        [ALIAS, META_SCHEMA],
    ).fetchall()
    views = con.execute(
        f"SELECT schema_name, view_name, sql FROM duckdb_views() WHERE {filters} ORDER BY 1, 2",
        [ALIAS, META_SCHEMA],
    ).fetchall()
    for schema in sorted({str(s) for s, _ in tables} | {str(s) for s, _, _ in views}):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS memory.{quote_ident(schema)}")
    for schema, name in tables:
        if (schema, name) in skip:
            continue
        target = f"{quote_ident(schema)}.{quote_ident(name)}"
        con.execute(f"CREATE VIEW memory.{target} AS SELECT * FROM {ALIAS}.{target}")
    pending = {
        f"{schema}.{name}": str(sql) for schema, name, sql in views if (schema, name) not in skip
    }
    failed: dict[str, str] = {}
    # A view may read another: replay in passes until one makes no progress.
    while pending:
        failed, progress = {}, False
        for qualified, sql in list(pending.items()):
            problem = _replay(con, sql)
            if problem is None:
                del pending[qualified]
                progress = True
            else:
                failed[qualified] = problem
        if not progress:
            break
    return failed


def _replay(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """Create the view ``sql`` (the stored ``CREATE VIEW`` text) in memory; the error, if any."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        return f"its definition does not parse: {str(exc).splitlines()[0]}"
    if (
        len(statements) != 1
        or statements[0].type != duckdb.StatementType.CREATE
        or not re.match(r"\s*CREATE\s+VIEW\s", sql, flags=re.IGNORECASE)
    ):
        return "its definition is not one CREATE VIEW statement"
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    return None


def unavailable(message: str, failed: dict[str, str]) -> tuple[str, str] | None:
    """The ``(view, reason)`` a DuckDB "does not exist" ``message`` is about, if it is one
    of the user views :func:`mirror` could not replay."""
    for qualified, reason in failed.items():
        name = qualified.partition(".")[2]
        for shown in (qualified, name):
            if re.search(rf'name "?{re.escape(shown)}"? does not exist', message):
                return qualified, reason
    return None
