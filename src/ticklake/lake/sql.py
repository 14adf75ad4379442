"""SQL over the lake with DuckDB: views, trusted queries and the locked untrusted path.

Every dataset is a view ``<layer>.<dataset>`` (and a bare ``<dataset>`` view when the
name is unique across layers) over ``<layer>/<dataset>/date=*/data.parquet`` with the
Hive ``date`` column. Only ``data.parquet`` files are matched, so temp files of an
in-flight commit are never read.

DuckDB opens a Parquet file more than once per query (to bind the schema, then to
scan), so a commit renaming a new file into place in between makes it read the old
footer against the new bytes (torn reads: "Could not read enough bytes", thrift
errors). :func:`run_sql` and :func:`run_untrusted_sql` therefore hard-link the
committed files into a private snapshot under ``cache/sql/`` for the query's
duration: a link pins one inode, so every open sees the same committed file.

The persistent ``warehouse.duckdb`` (:mod:`ticklake.warehouse.db`) uses the same view
statements with paths relative to the lake.

Before a query runs, the pinned files of the datasets it names are checked against
their commits (:mod:`ticklake.lake.integrity`: sha256 on this process's first read of
each file), so a flipped bit raises :class:`CorruptPartitionError` instead of returning
an altered value; DuckDB itself does not verify Parquet page checksums. Every
connection ticklake opens has ``autoinstall_known_extensions`` off: extensions come
from the installed Python packages or not at all, never from the internet.

The untrusted path (:func:`run_untrusted_sql`, used by the dashboard's SQL box) allows
exactly one SELECT statement, reads only inside the lake, runs with external access
off and the configuration locked, under memory/thread limits, a statement timeout and
a row cap.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import duckdb
import polars as pl
import pyarrow as pa

from ticklake.errors import (
    AmbiguousDatasetError,
    CorruptPartitionError,
    DatasetNotFoundError,
    InterruptedRunError,
    QueryError,
    QueryRejectedError,
    QueryTimeoutError,
    ResultTooLargeError,
)
from ticklake.lake import integrity, sql_warehouse
from ticklake.lake.lake import Lake
from ticklake.lake.layout import DATA_FILE, PartitionRef, parse_partition_dirname
from ticklake.lake.sql_names import quote_ident, quote_literal, table_names

SNAPSHOT_DIR = Path("cache") / "sql"

T = TypeVar("T")


@dataclass(frozen=True)
class QueryResult:
    frame: pl.DataFrame
    truncated: bool
    elapsed_seconds: float


def view_statements(lake: Lake, *, relative: bool, root: Path | None = None) -> list[str]:
    """SQL creating one view per dataset (plus bare names where unambiguous).

    ``root`` reads the data files from a snapshot of the lake instead of the lake itself.
    """
    root = root or lake.root
    infos = lake.datasets()
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.name] = counts.get(info.name, 0) + 1
    statements = []
    for layer in sorted({info.layer for info in infos}):
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(layer)}")
    for info in infos:
        # Datasets live at validated paths (names are [a-z0-9_]), quoting is belt and braces.
        base = Path(info.layer) / info.name
        has_data = any((root / base).glob(f"date=*/{DATA_FILE}"))
        if has_data:
            pattern = str(base / "date=*" / DATA_FILE)
            if not relative:
                pattern = str(root / pattern)
            body = f"SELECT * FROM read_parquet({quote_literal(pattern)}, hive_partitioning=true)"
        else:
            cols = ", ".join(
                f"CAST(NULL AS {_duck_type(c.type)}) AS {quote_ident(c.name)}"
                for c in info.dataset_schema.columns
            )
            body = f"SELECT {cols}, CAST(NULL AS DATE) AS date WHERE false"
        qualified = f"{quote_ident(info.layer)}.{quote_ident(info.name)}"
        statements.append(f"CREATE OR REPLACE VIEW {qualified} AS {body}")
        if counts[info.name] == 1:
            bare = f"main.{quote_ident(info.name)}"
            statements.append(f"CREATE OR REPLACE VIEW {bare} AS SELECT * FROM {qualified}")
    return statements


def _duck_type(type_name: str) -> str:
    return {
        "timestamp[ns, UTC]": "TIMESTAMPTZ",
        "date32": "DATE",
        "float64": "DOUBLE",
        "float32": "FLOAT",
        "int64": "BIGINT",
        "int32": "INTEGER",
        "int8": "TINYINT",
        "uint64": "UBIGINT",
        "bool": "BOOLEAN",
        "string": "VARCHAR",
    }[type_name]


def connect(lake: Lake, *, root: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views over the lake (absolute paths).

    The views read the live files, so a long-lived connection can see torn reads while
    a commit runs; pass ``root`` from :func:`snapshot` to read pinned files instead.
    """
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET TimeZone='UTC'")
    for statement in view_statements(lake, relative=False, root=root):
        con.execute(statement)
    return con


def referenced_datasets(lake: Lake, query: str) -> set[tuple[str, str]] | None:
    """The ``(layer, name)`` of every dataset view ``query`` names; None if unknown."""
    names = table_names(query)
    if names is None:
        return None
    infos = lake.datasets()
    qualified = {(i.layer, i.name) for i in infos}
    bare: dict[str, list[tuple[str, str]]] = {}
    for info in infos:
        bare.setdefault(info.name, []).append((info.layer, info.name))
    out: set[tuple[str, str]] = set()
    for parts in names:
        schema, table = (parts[-2], parts[-1]) if len(parts) >= 2 else ("main", parts[-1])
        if (schema, table) in qualified:
            out.add((schema, table))
        elif schema == "main" and len(bare.get(table, [])) == 1:
            out.add(bare[table][0])
    return out


@contextmanager
def snapshot(lake: Lake, query: str | None = None) -> Iterator[Path]:
    """Hard-link every committed data file into a private directory; yield its root.

    The files of the datasets ``query`` names (every dataset when it is None or cannot
    be parsed) are checked against their commits first. Falls back to the live lake
    (checking the live files) when the file system cannot hard-link.
    """
    wanted = referenced_datasets(lake, query) if query is not None else None
    timeout = lake.settings.lake.lock_timeout_seconds
    # The pid in the name lets vacuum remove snapshots of readers that were killed.
    root = lake.root / SNAPSHOT_DIR / f"{os.getpid()}-{uuid.uuid4().hex}"
    planned: list[tuple[PartitionRef, Path, bool]] = []  # (partition, link, check it?)
    for info in lake.datasets():
        base = Path(info.layer) / info.name
        check = lake.settings.lake.verify_reads and (
            wanted is None or (info.layer, info.name) in wanted
        )
        # List the partition directories (never renamed), then look each data file up
        # by name: a directory listing racing a commit's rename onto data.parquet need
        # not return that entry at all.
        for partition in (lake.root / base).glob("date=*"):
            day = parse_partition_dirname(partition.name)
            if day is not None and (partition / DATA_FILE).exists():
                ref = PartitionRef(lake.root, info.layer, info.name, day)
                planned.append((ref, root / base / partition.name / DATA_FILE, check))
    try:
        for ref, target, _ in planned:
            target.parent.mkdir(parents=True, exist_ok=True)
            link_committed(ref.data_path, target)
    except OSError:
        shutil.rmtree(root, ignore_errors=True)
        live = [(ref, None) for ref, _, check in planned if check]
        integrity.check_partitions(live, lock_timeout=timeout)
        yield lake.root
        return
    try:
        pinned = [(ref, target) for ref, target, check in planned if check and target.exists()]
        integrity.check_partitions(pinned, lock_timeout=timeout)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def link_committed(data: Path, target: Path, attempts: int = 100) -> None:
    """Hard-link the committed file at ``data`` to ``target``.

    Linux's link() fails with ENOENT when the inode it looked up loses its last name
    before the link is made: exactly what a commit's rename onto ``data.parquet`` does to
    the previous file. The path itself always names a committed file, so look it up
    again; only a partition that is really gone (vacuum) is skipped.
    """
    for _ in range(attempts):
        try:
            os.link(data, target)
            return
        except FileNotFoundError:
            if not data.exists():
                return
    raise OSError(f"could not pin {data}: replaced {attempts} times while linking")


def run_sql(lake: Lake, query: str) -> pl.DataFrame:
    """Run trusted SQL; a statement that returns no rows gives an empty frame."""
    with snapshot(lake, query) as root:
        con = connect(lake, root=root)
        try:

            def execute() -> pl.DataFrame:
                rel = con.sql(query)
                return rel.pl() if rel is not None else pl.DataFrame()

            return _interruptible(con, execute, query)
        except duckdb.CatalogException as exc:
            raise _catalog_error(lake, exc, query) from exc
        except duckdb.Error as exc:
            raise QueryError(f"query failed: {exc}", query=query) from exc
        finally:
            con.close()


class QueryDatasetNotFoundError(DatasetNotFoundError, QueryError):
    """A query names a dataset the lake does not have (a DatasetNotFoundError, exit 4)."""


class QueryAmbiguousDatasetError(AmbiguousDatasetError, QueryError):
    """A query names a bare dataset that exists in several layers (exit 4)."""


_MISSING_TABLE = re.compile(r'Table with name "?([A-Za-z0-9_.]+)"? does not exist')


def _catalog_error(lake: Lake, exc: duckdb.Error, query: str) -> Exception:
    """ticklake's own error for a query naming a dataset that is not (readable) in the lake."""
    match = _MISSING_TABLE.search(str(exc))
    if match is None:
        return QueryError(f"query failed: {str(exc).splitlines()[0]}", query=query)
    name = match.group(1)
    for broken in lake.unreadable_datasets():
        qualified = str(broken.fields.get("dataset", ""))
        if name in (qualified, qualified.partition(".")[2]):
            return CorruptPartitionError(broken.message, **broken.fields)
    if "." not in name and len(lake.layers_of(name)) > 1:
        return QueryAmbiguousDatasetError(name, lake.layers_of(name))
    return QueryDatasetNotFoundError(name, known=lake.dataset_names())


def _interruptible(
    con: duckdb.DuckDBPyConnection,
    work: Callable[[], T],
    query: str,
    timeout_seconds: float | None = None,
) -> T:
    """Run ``work`` (which uses ``con``) in a helper thread that Ctrl+C and a timeout can stop.

    DuckDB does not always notice SIGINT while it executes, so a long query on the main
    thread can ignore Ctrl+C; and ``con.interrupt()`` is lost when it arrives before the
    statement starts executing (while it binds or plans). So the main thread only waits,
    and to stop the query it interrupts the connection again every 0.1 s until the helper
    thread ends. Ctrl+C raises :class:`InterruptedRunError`, the timeout
    :class:`QueryTimeoutError`; other exceptions of ``work`` are re-raised as they are.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []
    # An Event, not Thread.join/is_alive: on CPython 3.11 a KeyboardInterrupt inside
    # join() can leave is_alive() False while the thread still runs.
    done = threading.Event()

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the waiting thread
            # Drop the frames' locals: a half-read DuckDB result kept alive by the
            # traceback holds the connection busy, and then it cannot be closed.
            traceback.clear_frames(exc.__traceback__)
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=target, name="ticklake-sql", daemon=True)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    stop: BaseException | None = None
    worker.start()
    while True:
        # Everything inside the try: Ctrl+C can land on any line of the wait.
        try:
            if stop is not None:
                con.interrupt()
            if done.wait(0.1):
                break
            if stop is None and deadline is not None and time.monotonic() >= deadline:
                stop = QueryTimeoutError(
                    f"query stopped after the {timeout_seconds:g} s limit; narrow it (filter "
                    "by date, select fewer columns) or raise query.timeout_seconds",
                    query=query,
                )
        except KeyboardInterrupt:
            stop = InterruptedRunError(
                "query interrupted (Ctrl+C); it only reads, so nothing was changed", query=query
            )
    if stop is not None:
        raise stop from None
    if failure:
        raise failure[0]
    return outcome[0]


def check_single_select(query: str) -> None:
    """Raise :class:`QueryRejectedError` unless ``query`` is exactly one SELECT."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryRejectedError(f"query does not parse: {exc}", query=query) from exc
    if len(statements) != 1:
        raise QueryRejectedError(
            f"exactly one statement is allowed, got {len(statements)}; remove the extra ';'",
            query=query,
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRejectedError(
            f"only SELECT queries are allowed here, got {kind.name}", query=query
        )


def run_untrusted_sql(
    lake: Lake,
    query: str,
    *,
    max_rows: int | None = None,
    timeout_seconds: float | None = None,
    max_bytes: int | None = None,
) -> QueryResult:
    """Run one untrusted SELECT in a locked-down DuckDB over the lake's views.

    The result streams out of DuckDB in Arrow batches and is counted as it comes: once
    its in-memory (Arrow) size passes ``max_bytes`` (default ``query.max_result_mib``)
    the query stops and :class:`ResultTooLargeError` says so, so a wide result never
    sits in memory whole. At most ``max_rows`` rows are kept (``truncated`` says if cut).

    A query naming the user's views and tables of ``warehouse.duckdb`` sees them,
    read-only, while the lake's names still read the pinned snapshot
    (:mod:`ticklake.lake.sql_warehouse`).
    """
    settings = lake.settings.query
    max_rows = max_rows or settings.max_rows
    timeout_seconds = timeout_seconds or settings.timeout_seconds
    max_bytes = max_bytes or settings.max_result_mib * 1024 * 1024
    check_single_select(query)
    # A query naming the warehouse's user objects reads datasets it does not name: check
    # every dataset's pinned files then (each file is hashed once per process).
    infos = lake.datasets()
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.name] = counts.get(info.name, 0) + 1
    warehouse = (lake.root / sql_warehouse.WAREHOUSE_FILE).is_file() and (
        sql_warehouse.names_beyond_lake(
            query, {(i.layer, i.name) for i in infos}, {n for n, c in counts.items() if c == 1}
        )
    )
    with snapshot(lake, None if warehouse else query) as snapshot_root:
        return _run_locked(
            lake, query, snapshot_root, max_rows, timeout_seconds, max_bytes, warehouse=warehouse
        )


#: Rows per Arrow batch fetched from DuckDB by the untrusted path. Small, so a result
#: of wide rows stops near its cap: 50 kB rows with a 64 MiB cap grew the process by
#: 98 MiB at 128 rows, 196 MiB at 512, 294 MiB at 2,048 (479 MiB unstreamed); a
#: 10,000-row narrow result takes the same time either way.
_BATCH_ROWS = 128


def _too_large(query: str, max_bytes: int, rows: int) -> ResultTooLargeError:
    return ResultTooLargeError(
        f"result too large: it passed {max_bytes:,} bytes in memory after {rows:,} rows and "
        "was stopped; narrow it (fewer or shorter columns, a LIMIT, an aggregate), raise "
        "query.max_result_mib, or write it to a file with `ticklake query SQL --format "
        "parquet --output FILE` (the trusted path, no cap)",
        query=query,
        max_bytes=max_bytes,
        rows=rows,
    )


def _first_line(exc: BaseException) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _run_locked(
    lake: Lake,
    query: str,
    snapshot_root: Path,
    max_rows: int,
    timeout_seconds: float,
    max_bytes: int,
    *,
    warehouse: bool = False,
) -> QueryResult:
    """Run ``query`` on a locked connection; ``warehouse`` also shows the user's warehouse
    objects (:mod:`ticklake.lake.sql_warehouse`), read-only."""
    settings = lake.settings.query
    con = connect(lake, root=snapshot_root)
    try:
        # ATTACH is refused once external access is off: before the lock, or never.
        wait = min(lake.settings.lake.lock_timeout_seconds, timeout_seconds)
        warehouse = warehouse and sql_warehouse.attach(con, lake.root, wait)
    except BaseException:
        con.close()
        raise
    # Files only from the query's snapshot (hard links in directories made for it: no
    # symlink in the lake can lead a glob outside) and its spill directory; the live lake
    # only when the file system cannot hard-link (then the snapshot root is the lake).
    root = str(snapshot_root).rstrip("/") + "/"
    con.execute(f"SET memory_limit={quote_literal(settings.memory_limit)}")
    con.execute(f"SET threads={int(settings.threads)}")
    # DuckDB spills to ./.tmp of the working directory by default (and lets the query read
    # it): spill inside the lake instead, in a directory removed after the query (and by
    # vacuum, by its pid, if this process dies).
    spill = lake.root / SNAPSHOT_DIR / f"{os.getpid()}-{uuid.uuid4().hex}-spill"
    con.execute(f"SET temp_directory={quote_literal(str(spill))}")
    allowed = ", ".join(quote_literal(d) for d in (root, str(spill).rstrip("/") + "/"))
    con.execute(f"SET allowed_directories=[{allowed}]")
    con.execute("SET enable_external_access=false")
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    con.execute("SET lock_configuration=true")
    started = time.monotonic()
    unreplayed: dict[str, str] = {}

    def execute() -> pl.DataFrame:
        if warehouse:  # under the time limit, with the configuration locked
            unreplayed.update(sql_warehouse.mirror(con))
        rel = con.sql(query)
        if rel is None:
            raise QueryRejectedError("only SELECT queries are allowed here", query=query)
        reader = rel.limit(max_rows + 1).to_arrow_reader(_BATCH_ROWS)
        batches, size, rows = [], 0, 0
        for batch in reader:
            size += batch.nbytes
            rows += batch.num_rows
            if size > max_bytes:
                reader.close()
                raise _too_large(query, max_bytes, rows)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
        return cast(pl.DataFrame, pl.from_arrow(table))

    try:
        frame = _interruptible(con, execute, query, timeout_seconds)
    except duckdb.PermissionException as exc:
        raise QueryRejectedError(
            f"query refused: {_first_line(exc)}", query=query, detail=str(exc)
        ) from exc
    except duckdb.CatalogException as exc:
        view = sql_warehouse.unavailable(str(exc), unreplayed)
        if view is not None:
            raise QueryRejectedError(
                f"warehouse view {view[0]} cannot be read here: {view[1]}", query=query
            ) from exc
        raise _catalog_error(lake, exc, query) from exc
    except (duckdb.Error, pa.ArrowException) as exc:
        # One line (the SQL box shows it as is); DuckDB's hints stay in ``detail``.
        raise QueryError(f"query failed: {_first_line(exc)}", query=query, detail=str(exc)) from exc
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    elapsed = time.monotonic() - started
    truncated = frame.height > max_rows
    return QueryResult(frame.head(max_rows), truncated, elapsed)
