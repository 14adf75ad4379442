"""SQL files on the warehouse: split, bind ``${variables}``, run in one transaction.

A file holds any number of statements separated by ``;``. The splitter knows
DuckDB's lexical rules well enough that a ``;`` inside a string (``'...'``, ``E'...'``,
``$$...$$``), a quoted identifier (``"..."``) or a comment (``--``, ``/* */``) never
splits, and it remembers the line each statement starts on, for error messages.

Variables:

- ``${name}`` is a **value**. It becomes the DuckDB prepared parameter ``$name`` and
  its value (a string from ``-v name=value``) is bound, never pasted into the SQL. DuckDB
  casts it from the context: ``WHERE date >= ${start}`` compares as a DATE,
  ``n > ${k}`` as a number, ``LIMIT ${k}`` as an integer; write ``${k}::INTEGER``
  where nothing says which type. A view stores its SQL, so ``CREATE VIEW`` cannot use
  one (DuckDB cannot prepare it): that is an error naming the line;
- ``${name:ident}`` is an **identifier** (a table, column or schema name). The value
  must match ``[A-Za-z_][A-Za-z0-9_]*`` (or ``schema.name`` of two such parts); it is
  inserted quoted with :func:`~ticklake.lake.sql.quote_ident`.

A ``${...}`` inside a string literal is an error (it would not be substituted), as are a
variable the file uses but nobody set and one that was set but the file never uses.

:func:`run_sql_text` runs every statement in ONE transaction on the warehouse's write
connection: a failure rolls back all of it and raises one :class:`QueryError` naming the
source, line, statement number and DuckDB's message. The result says which warehouse
objects were created, replaced or dropped, the rows each INSERT/UPDATE/DELETE touched,
and holds the **last** statement's rows when it returns rows (a SELECT, EXPLAIN, ...):
earlier SELECTs run (they may fail the file) but their rows are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp

from ticklake.errors import ConfigError, QueryError
from ticklake.lake.lake import Lake
from ticklake.lake.sql import referenced_datasets, snapshot
from ticklake.lake.sql_names import quote_ident, quote_literal
from ticklake.warehouse.db import Warehouse, WarehouseObject

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")  # $$ or $tag$ quoting
_IDENT_VALUE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_CREATE_VIEW = re.compile(
    r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(TEMP\s+|TEMPORARY\s+)?(VIEW|MACRO)\b", re.IGNORECASE
)
#: Statement kinds that return rows worth showing.
_ROWS = {"SELECT", "EXPLAIN", "PRAGMA", "CALL", "RELATION"}
#: Statement kinds ``ticklake query`` runs without ``--write``.
READ_ONLY_KINDS = frozenset({"SELECT", "EXPLAIN"})
_DML = {"INSERT", "UPDATE", "DELETE", "MERGE_INTO"}


@dataclass(frozen=True)
class Statement:
    """One statement of a SQL text, ready to execute."""

    number: int  # 1-based, in the file
    line: int  # where it starts in the file
    sql: str  # with ${name} -> $name and ${name:ident} -> "quoted"
    parameters: dict[str, str]  # the values its $name parameters bind
    kind: str  # DuckDB's StatementType name (SELECT, CREATE, ...)


@dataclass
class SqlRunResult:
    """What running a SQL text did (see the module docstring)."""

    source: str
    statements: int = 0
    created: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rows_changed: dict[str, int] = field(default_factory=dict)  # "statement 2 (INSERT)": n
    frame: pl.DataFrame | None = None  # the last statement's rows, if it returns rows
    wrote: bool = False  # ran on the warehouse's write connection (and committed)
    on_warehouse: bool = False  # ran on warehouse.duckdb (else on in-memory lake views)

    def summary(self) -> list[str]:
        """One line per change, for the CLI."""
        lines = [f"created {name}" for name in self.created]
        lines += [f"replaced {name}" for name in self.replaced]
        lines += [f"dropped {name}" for name in self.dropped]
        lines += [f"{what}: {rows:,} row(s)" for what, rows in self.rows_changed.items()]
        return lines


# --------------------------------------------------------------------- splitting
def split_statements(text: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every non-empty statement of ``text`` (``;`` outside quotes).

    Examples:
        >>> split_statements("select ';' as a; -- x;y\\n\\nselect 2")
        [(1, "select ';' as a"), (3, 'select 2')]
    """
    out: list[tuple[int, str]] = []
    start = 0
    outside = 0  # scan the text between quoted spans (strings, identifiers, comments)
    for span_start, span_end in [*_string_spans(text), (len(text), len(text))]:
        cut = text.find(";", outside, span_start)
        while cut >= 0:
            _add(out, text, start, cut)
            start = cut + 1
            cut = text.find(";", start, span_start)
        outside = span_end
    _add(out, text, start, len(text))
    return out


def _word(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _skip_quoted(text: str, i: int, quote: str, backslash: bool) -> int:
    j = i + 1
    while j < len(text):
        if backslash and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if text.startswith(quote * 2, j):
                j += 2
                continue
            return j + 1
        j += 1
    return j


def _add(out: list[tuple[int, str]], text: str, start: int, end: int) -> None:
    chunk = text[start:end]
    lead = _leading_noise(chunk)  # the statement starts at its first significant character
    body = chunk[lead:].rstrip()
    if body:
        out.append((text.count("\n", 0, start + lead) + 1, body))


def _leading_noise(chunk: str) -> int:
    i = 0
    while i < len(chunk):
        if chunk[i].isspace():
            i += 1
        elif chunk.startswith("--", i):
            end = chunk.find("\n", i)
            i = len(chunk) if end < 0 else end + 1
        elif chunk.startswith("/*", i):
            end = chunk.find("*/", i + 2)
            i = len(chunk) if end < 0 else end + 2
        else:
            break
    return i


def is_complete(text: str) -> bool:
    """True when every statement of ``text`` is closed by a ``;`` (for the shell).

    Examples:
        >>> is_complete("select 1; -- done"), is_complete("select ';"), is_complete("select 1")
        (True, False, False)
    """
    count = len(split_statements(text))
    return count > 0 and len(split_statements(text + "\nselect 1")) == count + 1


# --------------------------------------------------------------------- variables
def parse_sql(
    text: str,
    source: str,
    variables: Mapping[str, str] | None = None,
    *,
    line_offset: int = 0,
) -> list[Statement]:
    """Split ``text`` and bind its variables; raise on any variable problem."""
    given = dict(variables or {})
    for name in given:
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"{source}: variable name {name!r} is not a valid name ([A-Za-z_][A-Za-z0-9_]*)",
                source=source,
                variable=name,
            )
    used: set[str] = set()
    statements: list[Statement] = []
    for number, (line, raw) in enumerate(split_statements(text), start=1):
        where = f"{source}:{line + line_offset}"
        sql, params = _substitute(raw, given, used, where)
        if params and _CREATE_VIEW.match(sql):
            names = ", ".join("${" + p + "}" for p in params)
            raise ConfigError(
                f"{where}: statement {number} uses the value variable(s) {names} in "
                "CREATE VIEW/MACRO; a view stores its SQL, so a bound value cannot be part "
                "of it: filter when you query the view, or make it a table "
                "(CREATE TABLE ... AS SELECT)",
                source=source,
                line=line + line_offset,
                statement=number,
            )
        statements.append(
            Statement(number, line + line_offset, sql, params, _kind(sql, where, number))
        )
    unused = sorted(set(given) - used)
    if unused:
        raise ConfigError(
            f"{source}: variable(s) {', '.join(unused)} given with -v but not used in the "
            "file (a typo?); it uses: " + (", ".join(sorted(used)) or "(none)"),
            source=source,
            variables=unused,
        )
    return statements


def _substitute(
    raw: str, given: Mapping[str, str], used: set[str], where: str
) -> tuple[str, dict[str, str]]:
    params: dict[str, str] = {}
    pieces: list[str] = []
    last = 0
    literal_spans = _string_spans(raw)
    for match in _VARIABLE.finditer(raw):
        lines_before = raw.count("\n", 0, match.start())
        here = _shift(where, lines_before)
        if any(a <= match.start() < b for a, b in literal_spans):
            raise ConfigError(
                f"{here}: {match.group(0)} is inside a quoted string or comment, where it is "
                "not replaced; write it outside the quotes (a value is bound as a parameter, "
                "e.g. WHERE date >= ${start})",
                location=here,
            )
        spec = match.group(1)
        name, _, kind = spec.partition(":")
        name = name.strip()
        if not _NAME.fullmatch(name) or kind not in ("", "ident"):
            raise ConfigError(
                f"{here}: bad variable {match.group(0)}; write ${{name}} for a value or "
                "${name:ident} for an identifier",
                location=here,
            )
        if name not in given:
            raise ConfigError(
                f"{here}: variable {match.group(0)} is not set; pass -v {name}=VALUE",
                location=here,
                variable=name,
            )
        used.add(name)
        value = given[name]
        pieces.append(raw[last : match.start()])
        if kind == "ident":
            if not _IDENT_VALUE.fullmatch(value):
                raise ConfigError(
                    f"{here}: identifier variable {name}={value!r} is not a plain name "
                    "(letters, digits, _; optionally schema.name)",
                    location=here,
                    variable=name,
                )
            pieces.append(".".join(quote_ident(part) for part in value.split(".")))
        else:
            params[name] = value
            pieces.append(f"${name}")
            if _word(raw, match.end()):
                pieces.append(" ")
        last = match.end()
    pieces.append(raw[last:])
    return "".join(pieces), params


def _shift(where: str, lines: int) -> str:
    source, _, line = where.rpartition(":")
    return f"{source}:{int(line) + lines}"


def _string_spans(text: str) -> list[tuple[int, int]]:
    """Spans of string literals, quoted identifiers and comments in ``text``, in order.

    ``'...'`` (``''`` escapes a quote; after ``E``, a backslash does too), ``"..."``,
    ``$$...$$`` / ``$tag$...$tag$``, ``-- ...`` to the end of the line, ``/* ... */``.
    An unclosed one runs to the end of the text.
    """
    spans = []
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end < 0 else end + 2
        elif ch in "'\"":
            backslash = ch == "'" and i > 0 and text[i - 1] in "eE" and not _word(text, i - 2)
            end = _skip_quoted(text, i, ch, backslash)
        elif ch == "$" and not _word(text, i - 1) and (tag := _DOLLAR_TAG.match(text, i)):
            end = text.find(tag.group(0), i + len(tag.group(0)))
            end = len(text) if end < 0 else end + len(tag.group(0))
        else:
            i += 1
            continue
        spans.append((i, end))
        i = end
    return spans


def _kind(sql: str, where: str, number: int) -> str:
    try:
        parsed = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(
            f"{where}: statement {number} does not parse: {_first_line(exc)}",
            location=where,
            statement=number,
        ) from exc
    if len(parsed) != 1:  # the splitter and DuckDB disagree: trust DuckDB's error later
        return "MULTI"
    return str(parsed[0].type.name)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --------------------------------------------------------------------- running
def read_sql_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such SQL file", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})", path=str(path)) from None


def execute_statements(
    con: duckdb.DuckDBPyConnection,
    statements: list[Statement],
    source: str,
    result: SqlRunResult,
) -> None:
    """Run ``statements`` on ``con`` (inside the caller's transaction), filling ``result``.

    Raises one :class:`QueryError` naming the source, line and statement on failure.
    """
    for st in statements:
        if st.kind == "TRANSACTION":
            raise QueryError(
                f"{source}:{st.line}: statement {st.number} is a transaction statement "
                f"({st.sql.split()[0].upper()}); the whole file already runs in one "
                "transaction: remove BEGIN/COMMIT/ROLLBACK",
                location=f"{source}:{st.line}",
                statement=st.number,
            )
        try:
            params = st.parameters or None
            if st.kind in _ROWS:
                relation = con.sql(st.sql, params=params)
                result.frame = relation.pl() if relation is not None else None
            else:
                cursor = con.execute(st.sql, params)
                row = cursor.fetchone() if st.kind in _DML else None
                if row is not None:
                    result.rows_changed[f"statement {st.number} ({st.kind})"] = int(row[0])
                result.frame = None
        except duckdb.Error as exc:
            raise QueryError(
                f"{source}:{st.line}: statement {st.number} ({st.kind}) failed: {_first_line(exc)}",
                location=f"{source}:{st.line}",
                statement=st.number,
                duckdb_error=str(exc),
            ) from exc
        result.statements += 1


def _catalog(con: duckdb.DuckDBPyConnection, warehouse: Warehouse) -> dict[str, WarehouseObject]:
    return {o.qualified: o for o in warehouse.objects(con)}


def record_changes(
    before: dict[str, WarehouseObject],
    after: dict[str, WarehouseObject],
    statements: list[Statement],
    result: SqlRunResult,
) -> None:
    result.created = sorted(set(after) - set(before))
    result.dropped = sorted(set(before) - set(after))
    # Kept but replaced: its columns changed, or a CREATE OR REPLACE / ALTER named it.
    targets = {t for st in statements if (t := _replace_target(st)) is not None}
    result.replaced = sorted(
        name
        for name in set(before) & set(after)
        if before[name].columns != after[name].columns or name in targets
    )


def _replace_target(st: Statement) -> str | None:
    """``schema.name`` a CREATE OR REPLACE or ALTER statement changes, else None."""
    if st.kind not in ("CREATE", "ALTER"):
        return None
    try:
        parsed = sqlglot.parse_one(st.sql, read="duckdb")
    except sqlglot.errors.ParseError:
        return None
    if isinstance(parsed, exp.Create) and not parsed.args.get("replace"):
        return None
    if not isinstance(parsed, exp.Create | exp.Alter):
        return None
    target = parsed.this.this if isinstance(parsed.this, exp.Schema) else parsed.this
    if not isinstance(target, exp.Table):
        return None
    return f"{target.db or 'main'}.{target.name}"


def run_sql_text(
    lake: Lake,
    text: str,
    *,
    source: str = "<sql>",
    variables: Mapping[str, str] | None = None,
) -> SqlRunResult:
    """Run a SQL text on the warehouse's write connection, all of it in one transaction."""
    statements = parse_sql(text, source, variables)
    result = SqlRunResult(source=source, wrote=True, on_warehouse=True)
    if not statements:
        return result
    warehouse = Warehouse(lake)
    with warehouse.connect(write=True) as con, _pinned(lake, con, statements):
        before = _catalog(con, warehouse)
        con.execute("BEGIN")
        try:
            execute_statements(con, statements, source, result)
            after = _catalog(con, warehouse)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        record_changes(before, after, statements, result)
    return result


def run_sql_file(
    lake: Lake, path: Path, variables: Mapping[str, str] | None = None
) -> SqlRunResult:
    """Run the statements of a SQL file (see :func:`run_sql_text`)."""
    return run_sql_text(lake, read_sql_file(path), source=str(path), variables=variables)


def check_read_only(statements: list[Statement], source: str) -> None:
    """Refuse a statement that would change something (``ticklake query`` without --write)."""
    for st in statements:
        if st.kind not in READ_ONLY_KINDS:
            raise QueryError(
                f"{source}: statement {st.number} is {st.kind}, but this query runs "
                "read-only and would persist nothing; add --write to run it on the "
                "warehouse (<lake>/warehouse.duckdb) in one transaction",
                location=f"{source}:{st.line}",
                statement=st.number,
            )


def query_read_only(lake: Lake, text: str, *, source: str = "<query>") -> SqlRunResult:
    """Run read-only statements over the lake views and the warehouse's user objects.

    The warehouse is opened read-only (its generated views are refreshed first when the
    lake's datasets changed since), and its relative paths point at a pinned snapshot of
    the lake's files (checked against their commits), as :func:`run_sql` reads.
    """
    statements = parse_sql(text, source)
    check_read_only(statements, source)
    result = SqlRunResult(source=source, on_warehouse=True)
    if not statements:
        return result
    warehouse = Warehouse(lake)
    if warehouse.is_stale():
        warehouse.refresh()
    with warehouse.connect() as con, _pinned(lake, con, statements):
        execute_statements(con, statements, source, result)
    return result


@contextmanager
def _pinned(
    lake: Lake, con: duckdb.DuckDBPyConnection, statements: list[Statement]
) -> Iterator[Path]:
    """Point ``con``'s relative paths at a pinned, checked snapshot of the lake's files.

    The datasets the statements name, and those the user's views name (a view may read
    datasets the statements do not), are checked against their commits; SQL that does
    not parse checks every dataset.
    """
    texts = [st.sql for st in statements]
    texts += [
        sql
        for (sql,) in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall()
        if sql
    ]
    wanted: set[tuple[str, str]] = set()
    probe: str | None = "SELECT 1"
    for text in texts:
        names = referenced_datasets(lake, text)
        if names is None:
            probe = None  # cannot tell: check every dataset
            break
        wanted |= names
    if probe is not None and wanted:
        probe = "SELECT 1 FROM " + ", ".join(
            f"{quote_ident(layer)}.{quote_ident(name)}" for layer, name in sorted(wanted)
        )
    with snapshot(lake, probe) as root:
        con.execute(f"SET file_search_path={quote_literal(str(root))}")
        try:
            yield root
        finally:
            con.execute(f"SET file_search_path={quote_literal(str(lake.root))}")
