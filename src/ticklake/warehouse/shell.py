"""``ticklake sql shell``: an interactive SQL prompt on the warehouse.

Why not DuckDB's own CLI (``duckdb-cli`` on PyPI)? Its releases trail the ``duckdb``
Python package ticklake uses (1.5.x against 2.x when this was written), so it may not
open the warehouse file at all, and it knows neither ticklake's warehouse lock, nor the
lake-relative paths of the generated views, nor the read-only default. This prompt runs
each statement exactly as ``ticklake query`` does:

- read-only by default (the file is opened for the statement only, so a writer is not
  blocked while the prompt waits); ``--write`` runs each statement in its own
  transaction on the write connection (committed when it succeeds);
- a statement may span lines and ends with ``;``; ``.tables``, ``.schema NAME``,
  ``.help`` and ``.quit`` are the dot-commands;
- with a terminal, line editing and history (readline) are kept in
  ``<lake>/cache/sql_history``; without one (a pipe), statements are read from stdin
  without prompts, errors are printed and reading goes on, and the exit code is 1 if
  any statement failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import polars as pl

from ticklake.errors import TicklakeError
from ticklake.lake.lake import Lake
from ticklake.warehouse.db import Warehouse
from ticklake.warehouse.sqlfile import SqlRunResult, is_complete, query_read_only, run_sql_text

HISTORY_FILE = Path("cache") / "sql_history"
_HELP = """\
.tables          list the warehouse's views and tables (generated ones marked)
.schema NAME     columns of a view or table (and a user view's SQL)
.help            this text
.quit, .exit     leave (Ctrl+D too)
Statements end with ';' and may span lines."""


class Shell:
    """The prompt's state: the lake, the mode and where it prints."""

    def __init__(self, lake: Lake, *, write: bool, out: TextIO, err: TextIO) -> None:
        self.lake = lake
        self.write = write
        self.out = out
        self.err = err
        self.failures = 0

    # ---------------------------------------------------------------- commands
    def run_statement(self, text: str) -> None:
        try:
            if self.write:
                result = run_sql_text(self.lake, text, source="shell")
            else:
                result = query_read_only(self.lake, text, source="shell")
        except TicklakeError as exc:
            self.failures += 1
            print(f"error: {exc}", file=self.err)
            return
        self._show(result)

    def _show(self, result: SqlRunResult) -> None:
        for line in result.summary():
            print(line, file=self.err)
        if result.frame is not None:
            with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=40, tbl_width_chars=200):
                print(result.frame, file=self.out)

    def dot_command(self, line: str) -> bool:
        """Run a dot-command; False means quit."""
        command, _, argument = line.strip().partition(" ")
        if command in (".quit", ".exit"):
            return False
        if command == ".help":
            print(_HELP, file=self.out)
        elif command == ".tables":
            self._tables()
        elif command == ".schema" and argument.strip():
            self._schema(argument.strip())
        else:
            self.failures += 1
            print(f"error: unknown command {line.strip()!r}; .help lists them", file=self.err)
        return True

    def _tables(self) -> None:
        warehouse = Warehouse(self.lake)
        if warehouse.is_stale():
            warehouse.refresh()
        with warehouse.connect() as con:
            objects = warehouse.objects(con)
        for obj in objects:
            origin = "lake view" if obj.generated else f"user {obj.kind}"
            print(f"{obj.qualified}\t{origin}", file=self.out)

    def _schema(self, name: str) -> None:
        warehouse = Warehouse(self.lake)
        if warehouse.is_stale():
            warehouse.refresh()
        wanted = name.replace('"', "")
        with warehouse.connect() as con:
            found = [o for o in warehouse.objects(con) if wanted in (o.qualified, o.name)]
            sql = {
                f"{s}.{n}": text
                for s, n, text in con.execute(
                    "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal"
                ).fetchall()
            }
        if not found:
            self.failures += 1
            print(f"error: no view or table named {name!r}; .tables lists them", file=self.err)
            return
        for obj in found:
            origin = "lake view" if obj.generated else f"user {obj.kind}"
            print(f"{obj.qualified} ({origin})", file=self.out)
            for column, dtype in obj.columns:
                print(f"  {column} {dtype}", file=self.out)
            if not obj.generated and obj.qualified in sql:
                print(sql[obj.qualified], file=self.out)

    # -------------------------------------------------------------------- loop
    def loop(self, read_line: Callable[[str], str | None]) -> None:
        buffer: list[str] = []
        while True:
            line = read_line("   ...> " if buffer else "ticklake> ")
            if line is None:
                if buffer and "".join(buffer).strip():
                    self.run_statement("\n".join(buffer))
                return
            if not buffer and line.strip().startswith("."):
                if not self.dot_command(line):
                    return
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            if is_complete(text):
                buffer = []
                self.run_statement(text)
            elif not text.strip():
                buffer = []


def run_shell(lake: Lake, *, write: bool = False, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    """Run the prompt until ``.quit`` or end of input; the exit code (see module docstring)."""
    shell = Shell(lake, write=write, out=out, err=err)
    interactive = stdin.isatty() and out.isatty()
    if not interactive:

        def read_piped(prompt: str) -> str | None:
            line = stdin.readline()
            return None if line == "" else line.rstrip("\n")

        shell.loop(read_piped)
        return 1 if shell.failures else 0
    mode = "read-write (each statement commits)" if write else "read-only (--write to change)"
    print(f"ticklake SQL on {Warehouse(lake).path}, {mode}; .help for commands", file=out)
    history = lake.root / HISTORY_FILE
    with _readline_history(history):

        def read_tty(prompt: str) -> str | None:
            try:
                return input(prompt)
            except EOFError:
                print(file=out)
                return None
            except KeyboardInterrupt:  # Ctrl+C drops the statement being typed
                print(file=out)
                return ""

        shell.loop(read_tty)
    return 0


@contextlib.contextmanager
def _readline_history(path: Path) -> Iterator[None]:
    try:
        import readline
    except ImportError:  # no readline (Windows): plain input() still works
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(path)
