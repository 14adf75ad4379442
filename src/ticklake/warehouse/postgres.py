"""``ingest postgres``: load a PostgreSQL query into a lake dataset, incrementally.

How a run goes:

1. The stored high watermark ``W`` of the dataset (the largest ``--watermark`` value of
   the rows already committed, recorded in the dataset's ``_sources.jsonl`` ledger after
   the commits) becomes ``WHERE wm >= W`` around the query; the first run (or
   ``full=True``) reads everything.
2. The result streams over ADBC (PostgreSQL binary COPY → Arrow record batches, one
   snapshot of the source), is type-checked against the schema before the first row
   is read, conformed per batch and spooled to ``<lake>/_staging/pg-*/<day>/`` as
   Arrow IPC (LZ4). Memory holds one batch at a time (``batch_rows``), never the result.
3. Only once the whole result has arrived are the days committed, one atomic lake
   commit each (merge by key: rows already there change nothing, changed rows
   replace theirs). Then the new watermark is recorded.

Guarantees:

- PostgreSQL failing mid-read (the backend terminated, the server stopped, a network
  cut) commits nothing at all and leaves the watermark where it was: the spool is
  thrown away and the error says so.
- A crash or error while committing (after the read) leaves each day either as it was
  or complete (each day's commit is atomic and holds every row of that day the read
  returned); the watermark is not advanced, so the next run reads the same rows again
  and completes the rest; rows already committed merge as no-ops.
- ``>=`` rather than ``>``: a row written after a run with a watermark value equal to
  the stored one (same timestamp, later commit) is read by the next run. The rows at
  exactly ``W`` are read again on each run and dropped by the key merge, so a re-run
  with nothing new commits nothing. Rows whose watermark is NULL are read by the first
  (or a full) run only; rows committed in the source with a watermark *below* ``W``
  (a long transaction that stamped ``updated_at`` before committing) are not seen: use
  a watermark the source assigns at commit, or run with ``full=True`` now and then.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from ticklake._version import __version__
from ticklake.errors import ConfigError, IngestError, QueryError
from ticklake.lake.days import trading_day_expr
from ticklake.lake.lake import Lake
from ticklake.lake.layout import LOCK_DIR, STAGING_DIR, check_dataset_name, check_layer
from ticklake.lake.locking import file_lock
from ticklake.lake.manifest import DatasetInfo, SourceRef, utc_now_iso
from ticklake.lake.merge import WriteResult
from ticklake.lake.owners import write_owner
from ticklake.lake.pgtypes import check_source_type, dsn_from_env
from ticklake.schemas import DatasetSchema, get_schema

__all__ = ["PostgresIngestSummary", "ingest_postgres", "stored_watermark"]

#: PostgreSQL types a watermark may have (ordered, comparable, exact in JSON).
WATERMARK_TYPES = ("timestamptz", "timestamp", "date", "int2", "int4", "int8")
PG_TYPE_KEY = b"POSTGRESQL:type"
BATCH_SIZE_HINT = "adbc.postgresql.batch_size_hint_bytes"
#: Days committed at once (each commit is atomic on its own).
COMMIT_THREADS = 2


@dataclass
class PostgresIngestSummary:
    """What one ``ingest postgres`` run did."""

    dataset: str
    layer: str
    watermark_column: str
    watermark_before: str | None
    watermark_after: str | None = None
    rows_read: int = 0
    rows_added: int = 0
    null_watermark_rows: int = 0
    batches: int = 0
    days: list[str] = field(default_factory=list)
    days_changed: int = 0
    seconds: float = 0.0
    read_seconds: float = 0.0

    def line(self) -> str:
        since = f"{self.watermark_column} >= {self.watermark_before}"
        scope = "everything" if self.watermark_before is None else since
        rate = self.rows_read / self.seconds if self.seconds else 0.0
        return (
            f"{self.layer}.{self.dataset}: read {self.rows_read:,} row(s) ({scope}) in "
            f"{self.seconds:.1f} s ({rate:,.0f} rows/s; read {self.read_seconds:.1f} s); "
            f"{self.rows_added:,} added, "
            f"{self.days_changed} of {len(self.days)} day(s) changed; watermark "
            f"{self.watermark_after}"
        )


def _state_key(layer: str, dataset: str) -> str:
    return hashlib.sha256(f"postgres-watermark:{layer}.{dataset}".encode()).hexdigest()


def stored_watermark(lake: Lake, dataset: str, layer: str = "bronze") -> dict[str, Any] | None:
    """The last completed ``ingest postgres`` record of a dataset (None: never loaded)."""
    if not (lake.root / layer / dataset).is_dir():
        return None
    return lake.ingested_sources(dataset, layer).get(_state_key(layer, dataset))


def _source_label(dsn: str, query: str) -> SourceRef:
    """A lineage entry naming the server and the query, never the DSN's credentials."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # a DSN psycopg cannot parse still works for ADBC: name no server
        parts = {}
    where = f"{parts.get('host', '')}:{parts.get('port', '')}/{parts.get('dbname', '')}"
    digest = hashlib.sha256(query.encode()).hexdigest()
    return SourceRef(path=f"postgresql://{where} query {digest[:12]}", sha256=digest)


def _literal(value: str, pg_name: str) -> str:
    """A typed SQL literal of a stored watermark (our own ledger's value, still quoted)."""
    if pg_name not in WATERMARK_TYPES:
        raise ConfigError(f"stored watermark has type {pg_name!r}; run with a full reload")
    return "'" + value.replace("'", "''") + "'::" + pg_name


def _wrapped_query(query: str, watermark: str, since: dict[str, Any] | None) -> str:
    body = query.strip().rstrip(";").strip()
    if not body:
        raise ConfigError("ingest postgres: --query is empty")
    sql = f"SELECT * FROM ({body}) AS _ticklake_src"
    if since is not None:
        ident = '"' + watermark.replace('"', '""') + '"'
        sql += f" WHERE {ident} >= {_literal(since['value'], since['pg_type'])}"
    return sql


def _pg_types(schema: pa.Schema) -> dict[str, str]:
    return {f.name: (f.metadata or {}).get(PG_TYPE_KEY, b"?").decode() for f in schema}


def _check_columns(
    schema: pa.Schema, dschema: DatasetSchema, watermark: str, where: str
) -> dict[str, str]:
    """Check the result's columns against the schema before any row is read."""
    types = _pg_types(schema)
    if watermark not in types:
        raise ConfigError(
            f"{where}: the query has no column {watermark!r} (the --watermark); its "
            f"columns: {', '.join(types)}",
            column=watermark,
        )
    if types[watermark] not in WATERMARK_TYPES:
        raise ConfigError(
            f"{where}: watermark column {watermark!r} is PostgreSQL {types[watermark]}; "
            f"it must be one of {', '.join(WATERMARK_TYPES)}",
            column=watermark,
        )
    names = set(dschema.column_names)
    unknown = [c for c in types if c not in names and c != watermark]
    if unknown:
        raise ConfigError(
            f"{where}: column(s) {unknown} are not in schema {dschema.name!r} (columns: "
            f"{', '.join(dschema.column_names)}); rename them in the query (AS ...) or drop "
            "them",
            columns=unknown,
        )
    missing = [c.name for c in dschema.columns if not c.nullable and c.name not in types]
    if missing:
        raise ConfigError(
            f"{where}: the query lacks required column(s) {missing} of schema {dschema.name!r}",
            columns=missing,
        )
    for col in dschema.columns:
        if col.name in types:
            check_source_type(col.name, types[col.name], col.type, where)
    return types


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Opaque PostgreSQL types (numeric arrives as text) replaced by their storage."""
    columns = []
    changed = False
    for column in batch.columns:
        if isinstance(column.type, pa.BaseExtensionType):
            columns.append(column.storage)
            changed = True
        else:
            columns.append(column)
    if not changed:
        return batch
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _watermark_text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(int(value))


def _prefetched(reader: pa.RecordBatchReader, depth: int = 2) -> Iterator[pa.RecordBatch]:
    """The reader's batches, read ahead by a thread so PostgreSQL's COPY keeps streaming
    while the last batch is spooled (at most ``depth`` batches wait in memory)."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def pump() -> None:
        try:
            for batch in reader:
                if stop.is_set():
                    return
                slots.put(batch)
            slots.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            slots.put(exc)

    thread = threading.Thread(target=pump, name="ticklake-pg-read", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a pump waiting on a full queue, then wait
            with suppress(queue.Empty):
                slots.get(timeout=0.05)
        thread.join()


def _connect(dsn: str, where: str) -> Any:
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi

    try:
        return adbc_driver_postgresql.dbapi.connect(dsn)
    except adbc_driver_manager.Error as exc:
        raise IngestError(f"{where}: cannot connect to PostgreSQL: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400]


@contextmanager
def _staging(lake: Lake) -> Iterator[Path]:
    directory = lake.root / STAGING_DIR / f"pg-{uuid.uuid4().hex[:12]}"
    directory.mkdir(parents=True)
    write_owner(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def ingest_postgres(
    lake: Lake,
    query: str,
    dataset: str,
    *,
    schema: str | DatasetSchema,
    watermark: str,
    dsn: str | None = None,
    dsn_env: str = "PG_DSN",
    layer: str = "bronze",
    timezone: str | None = None,
    batch_rows: int = 500_000,
    full: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> PostgresIngestSummary:
    """Load ``query``'s rows newer than the stored watermark into ``layer.dataset``.

    See the module docstring for the guarantees. ``progress(phase, n)`` is called with
    ``("read", rows so far)`` after each batch and ``("commit", days so far)`` after
    each day. Raises :class:`IngestError` when PostgreSQL fails mid-read (nothing
    committed), :class:`QueryError` when it rejects the query and
    :class:`ConfigError` for a column that does not map (naming it).
    """
    check_dataset_name(dataset)
    check_layer(layer)
    if batch_rows < 1:
        raise ConfigError("batch_rows must be at least 1")
    where = f"ingest postgres into {layer}.{dataset}"
    dsn = dsn or dsn_from_env(dsn_env, "ingest postgres")
    dschema = get_schema(schema) if isinstance(schema, str) else schema
    lock = lake.root / LOCK_DIR / layer / dataset / "_postgres.lock"
    with file_lock(lock, lake.settings.lake.lock_timeout_seconds, f"{layer}.{dataset}"):
        return _run(
            lake,
            query,
            dataset,
            dschema,
            watermark,
            dsn,
            layer,
            timezone,
            batch_rows,
            full,
            progress,
            where,
        )


def _dataset_info(
    lake: Lake, dataset: str, layer: str, dschema: DatasetSchema, timezone: str | None
) -> DatasetInfo:
    """The existing descriptor, or the one a first write will create (not written here)."""
    if layer in lake.layers_of(dataset):
        return lake.dataset_info(dataset, layer)
    return DatasetInfo(
        layer=layer,
        name=dataset,
        schema_=dschema.to_dict(),
        timezone=timezone or lake.settings.lake.default_timezone,
        ticklake_version=__version__,
    )


def _run(
    lake: Lake,
    query: str,
    dataset: str,
    dschema: DatasetSchema,
    watermark: str,
    dsn: str,
    layer: str,
    timezone: str | None,
    batch_rows: int,
    full: bool,
    progress: Callable[[str, int], None] | None,
    where: str,
) -> PostgresIngestSummary:
    import adbc_driver_manager

    started = time.perf_counter()
    state = None if full else stored_watermark(lake, dataset, layer)
    if state is not None and state.get("watermark_column") != watermark:
        raise ConfigError(
            f"{where}: the dataset was loaded with --watermark {state.get('watermark_column')}, "
            f"not {watermark}; keep it, or reload everything with --full",
            column=watermark,
        )
    since = state.get("watermark") if state else None
    summary = PostgresIngestSummary(dataset, layer, watermark, since["value"] if since else None)
    info = _dataset_info(lake, dataset, layer, dschema, timezone)
    dschema = info.dataset_schema if layer in lake.layers_of(dataset) else dschema
    sql = _wrapped_query(query, watermark, since)
    best: Any = None
    wm_type = since["pg_type"] if since else None
    with _staging(lake) as stage:
        conn = _connect(dsn, where)
        try:
            cur = conn.cursor()
            # ADBC's batches: about batch_rows rows of ~100 bytes, 64 KiB to 16 MiB.
            hint = max(1 << 16, min(batch_rows * 100, 1 << 24))
            cur.adbc_statement.set_options(**{BATCH_SIZE_HINT: str(hint)})
            try:
                cur.execute(sql)
                reader = cur.fetch_record_batch()
            except adbc_driver_manager.Error as exc:
                raise QueryError(
                    f"{where}: PostgreSQL rejected the query: {_one_line(exc)}"
                ) from None
            types = _check_columns(reader.schema, dschema, watermark, where)
            wm_type = types[watermark]
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            try:
                for batch in _prefetched(reader):
                    pending.append(_plain(batch))
                    pending_rows += batch.num_rows
                    if pending_rows >= batch_rows:
                        best = _spool(stage, pending, dschema, info, watermark, best, summary)
                        pending, pending_rows = [], 0
                        if progress is not None:
                            progress("read", summary.rows_read)
                if pending:
                    best = _spool(stage, pending, dschema, info, watermark, best, summary)
                    if progress is not None:
                        progress("read", summary.rows_read)
            except (adbc_driver_manager.Error, OSError) as exc:
                raise IngestError(
                    f"{where}: PostgreSQL failed after {summary.rows_read:,} row(s) were "
                    f"read: {_one_line(exc)}. Nothing was committed and the watermark is "
                    "unchanged; run the same command again.",
                    dataset=dataset,
                ) from None
        finally:
            with suppress(adbc_driver_manager.Error):  # the connection may be gone
                conn.close()
        summary.read_seconds = time.perf_counter() - started
        _commit(
            lake, stage, dataset, layer, dschema, info, _source_label(dsn, query), summary, progress
        )
    if best is not None:
        summary.watermark_after = _watermark_text(best)
    if best is not None and (
        summary.days_changed or summary.watermark_after != summary.watermark_before
    ):
        lake.record_source(
            dataset,
            {
                "sha256": _state_key(layer, dataset),
                "path": _source_label(dsn, query).path,
                "kind": "postgres",
                "query_sha256": hashlib.sha256(query.encode()).hexdigest(),
                "watermark_column": watermark,
                "watermark": {"value": summary.watermark_after, "pg_type": wm_type},
                "rows": summary.rows_read,
                "days": summary.days,
                "finished_at": utc_now_iso(),
            },
            layer=layer,
        )
    if best is None:
        summary.watermark_after = summary.watermark_before
        if layer not in lake.layers_of(dataset):
            lake.create_dataset(dataset, dschema, layer=layer, timezone=info.timezone)
    summary.seconds = time.perf_counter() - started
    return summary


def _spool(
    stage: Path,
    batches: list[pa.RecordBatch],
    dschema: DatasetSchema,
    info: DatasetInfo,
    watermark: str,
    best: Any,
    summary: PostgresIngestSummary,
) -> Any:
    """Conform a batch, note its watermark, write it to the spool by trading day."""
    frame = pl.from_arrow(pa.Table.from_batches(batches))
    assert isinstance(frame, pl.DataFrame)
    summary.rows_read += frame.height
    summary.batches += 1
    wm = frame[watermark]
    summary.null_watermark_rows += wm.null_count()
    top = wm.max()
    if top is not None and (best is None or top > best):
        best = top
    if watermark not in dschema.column_names:
        frame = frame.drop(watermark)
    data = dschema.conform(frame, source=f"PostgreSQL batch {summary.batches}")
    days = data.select(trading_day_expr(dschema.ts_column, info).alias("__day"))["__day"]
    if days.null_count() == 0 and days.min() == days.max():
        parts = {(days[0],): data}  # one day (the usual batch): no copy by partition_by
    else:
        parts = data.with_columns(days).partition_by("__day", as_dict=True, include_key=False)
    for (day,), part in parts.items():
        directory = stage / str(day)
        directory.mkdir(exist_ok=True)
        part.write_ipc(directory / f"{summary.batches:06d}.arrow", compression="lz4")
    return best


def _commit(
    lake: Lake,
    stage: Path,
    dataset: str,
    layer: str,
    dschema: DatasetSchema,
    info: DatasetInfo,
    source: SourceRef,
    summary: PostgresIngestSummary,
    progress: Callable[[str, int], None] | None,
) -> None:
    """One atomic commit per spooled day, two days at a time (the compression and
    hashing of one day overlap the other's; memory holds at most two days)."""

    def commit_day(directory: Path) -> WriteResult:
        frame = pl.concat(
            [pl.read_ipc(p) for p in sorted(directory.glob("*.arrow"))],
            rechunk=False,
        )
        # Distinct keys (the usual case) need not pay the lake's full-row dedupe pass;
        # repeated keys go through it (identical rows dropped, conflicting ones refused).
        unique = not frame.select(dschema.key).is_duplicated().any()
        return lake.write(
            dataset,
            frame,
            layer=layer,
            schema=dschema,
            timezone=info.timezone,
            sources=[source],
            input_is_unique=unique,
        )

    days = sorted(p for p in stage.iterdir() if p.is_dir())
    with ThreadPoolExecutor(max_workers=COMMIT_THREADS, thread_name_prefix="ticklake-pg") as pool:
        for index, result in enumerate(pool.map(commit_day, days), 1):
            summary.rows_added += result.rows_added
            summary.days.extend(result.days)
            summary.days_changed += sum(1 for p in result.partitions if p.changed)
            if progress is not None:
                progress("commit", index)
