"""The ingest pipeline: sources → canonical rows → checks → quarantine → day commits.

Two phases, each a set of pure tasks run through an executor:

1. **stage** (one task per source file, in parallel): hash the file (a file already
   ingested is skipped), read it in bounded batches, run the row checks, and spool the
   valid rows per trading day, and the rejected rows, as Parquet parts under
   ``<lake>/_staging/<ingest_id>/``. A file that fails (corrupt, truncated, wrong
   columns) is reported with its error and its parts are discarded: nothing of it is
   committed, and it is not recorded, so fixing it and re-running ingests it.
2. **commit** (one task per trading day, in parallel): read that day's parts from every
   file, collapse identical duplicates, move conflicting rows for one key to the
   quarantine (the first file in input order wins), and merge into the day's partition
   in one atomic commit. Many files per day (option chains come as one file per
   contract) therefore cost one commit per day, not one per file.

Input order is the sorted file list, except for readers that name an order for their
files (:meth:`Reader.source_order`: per-contract option files go in the partition's
(underlying, expiry, type, strike) order, files whose names do not decode after them,
ties in sorted-name order): the rows of a day then arrive sorted and the commit skips
its sort (≈ 1 s of an option day's 8 s).

Finally the quarantine parts are committed, each successful source is appended to the
dataset's ``_sources.jsonl`` (after all its days committed: a crash before that simply
means the file is ingested again, which merges without duplicates), and the staging
directory is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.errors import IngestError, TicklakeError
from ticklake.execution import get_executor
from ticklake.ingest.readers.base import FilesBatch, ReaderOptions, get_reader
from ticklake.ingest.sources import SourceFile, expand_inputs
from ticklake.ingest.validate import split_valid
from ticklake.lake import Lake, open_lake
from ticklake.lake.commit import write_parquet
from ticklake.lake.lake import is_sorted_by, trading_day_expr
from ticklake.lake.layout import QUARANTINE_DIR, partition_dirname
from ticklake.lake.manifest import SourceRef, sha256_file, utc_now_iso

STAGING_DIR = "_staging"
#: Files up to this size are read in groups through ``Reader.read_files`` when the
#: reader supports it: one kernel pass per group instead of per-file fixed costs.
SMALL_FILE_BYTES = 32 * 2**20
#: Input bytes (and files) per group: bounds the rows a group holds before spooling.
GROUP_BYTES = 64 * 2**20
GROUP_FILES = 512
#: With the serial executor, stage and commit run in this process: staged parts stay
#: in memory (a marker file keeps the layout) up to this many bytes per process, and
#: spill to disk beyond it. Spooling to disk and reading back costs more than parsing.
MEMORY_SPOOL_BYTES = 2 * 2**30

_memory_spool: dict[str, pl.DataFrame] = {}
_memory_spool_lock = threading.Lock()


def _spool(rows: pl.DataFrame, path: Path, in_memory: bool) -> None:
    """Stage ``rows`` at ``path``: in this process's memory if allowed and room, else disk."""
    if in_memory:
        size = rows.estimated_size()
        with _memory_spool_lock:
            used = sum(frame.estimated_size() for frame in _memory_spool.values())
            if used + size <= MEMORY_SPOOL_BYTES:
                _memory_spool[str(path)] = rows
                path.touch()
                return
    # Staging files are read once and deleted: favour speed over size.
    rows.write_parquet(path, compression="lz4")


def _unspool(path: str) -> pl.DataFrame:
    with _memory_spool_lock:
        frame = _memory_spool.pop(path, None)
    return frame if frame is not None else pl.read_parquet(path)


def _drop_spooled(staging: Path) -> None:
    prefix = str(staging) + os.sep
    with _memory_spool_lock:
        for key in [k for k in _memory_spool if k.startswith(prefix)]:
            del _memory_spool[key]


QUARANTINE_COLUMNS = {
    "source": pl.String(),
    "source_row": pl.Int64(),
    "raw": pl.String(),
    "reason": pl.String(),
    "ingest_id": pl.String(),
}

ProgressFn = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class IngestRequest:
    """What to ingest where; picklable so tasks can run in other processes."""

    lake_root: str
    format: str
    dataset: str
    layer: str = "bronze"
    options: ReaderOptions = field(default_factory=ReaderOptions)
    force: bool = False
    ingest_id: str = ""
    #: stage and commit run in the calling process (serial executor): spool in memory
    spool_in_memory: bool = False


@dataclass
class FileResult:
    label: str
    status: str  # "staged" | "skipped" | "failed"
    sha256: str = ""
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    days: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class DayResult:
    day: str
    rows_in: int
    rows_before: int
    rows_after: int
    conflicts_quarantined: int
    changed: bool


@dataclass
class IngestSummary:
    """What an ingest run did; ``line()`` is the one-line summary the CLI prints."""

    dataset: str
    layer: str
    ingest_id: str
    files: list[FileResult] = field(default_factory=list)
    days: list[DayResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if f.status == "skipped"]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_rejected for f in self.files) + sum(
            d.conflicts_quarantined for d in self.days
        )

    @property
    def rows_committed(self) -> int:
        return sum(d.rows_in - d.conflicts_quarantined for d in self.days)

    @property
    def rows_added(self) -> int:
        return sum(d.rows_after - d.rows_before for d in self.days)

    def line(self) -> str:
        return (
            f"ingest → {self.layer}.{self.dataset}: {len(self.files)} file(s) "
            f"({len(self.skipped)} already ingested, {len(self.failed)} failed), "
            f"{self.rows_read:,} rows read, {self.rows_committed:,} committed "
            f"({self.rows_added:,} new), {self.rows_quarantined:,} quarantined, "
            f"{len(self.days)} day(s) touched, {self.seconds:.1f} s"
        )


def _staging_root(lake_root: str, ingest_id: str) -> Path:
    return Path(lake_root) / STAGING_DIR / ingest_id


def _raw_text(frame: pl.DataFrame) -> pl.Series:
    """Render rows as compact JSON text (for quarantine of already-parsed rows)."""
    if frame.height == 0:
        return pl.Series("raw", [], pl.String)
    return pl.Series(
        "raw", [json.dumps(row, default=str) for row in frame.iter_rows(named=True)], pl.String
    )


def _quarantine_frame(
    source: str, ingest_id: str, source_row: pl.Series, raw: pl.Series, reason: pl.Series
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source": pl.Series([source] * len(raw), dtype=pl.String),
            "source_row": source_row.cast(pl.Int64),
            "raw": raw.cast(pl.String),
            "reason": reason.cast(pl.String),
            "ingest_id": pl.Series([ingest_id] * len(raw), dtype=pl.String),
        },
        schema=QUARANTINE_COLUMNS,
    )


def stage_file(item: tuple[IngestRequest, int, SourceFile]) -> FileResult:
    """Phase 1 task: read one source file and spool its rows per trading day."""
    request, index, source = item
    started = time.perf_counter()
    result = FileResult(label=source.label, status="staged")
    lake = open_lake(request.lake_root)
    out = _staging_root(request.lake_root, request.ingest_id) / _stage_dirname(index)
    try:
        result.sha256 = sha256_file(source.path)
        if not request.force and result.sha256 in lake.ingested_sources(
            request.dataset, request.layer
        ):
            result.status = "skipped"
            return result
        info = lake.dataset_info(request.dataset, request.layer)
        dschema = info.dataset_schema
        reader = get_reader(request.format)
        days: set[str] = set()
        for batch_no, batch in enumerate(reader.read(source.path, request.options)):
            result.rows_read += batch.frame.height + batch.rejected.height
            valid, rejected = split_valid(batch.frame, dschema)
            result.rows_valid += valid.height
            parts = []
            if batch.rejected.height:
                parts.append(
                    _quarantine_frame(
                        source.label,
                        request.ingest_id,
                        batch.rejected["source_row"],
                        batch.rejected["raw"],
                        batch.rejected["reason"],
                    )
                )
            if rejected.height:
                parts.append(
                    _quarantine_frame(
                        source.label,
                        request.ingest_id,
                        pl.Series([None] * rejected.height, dtype=pl.Int64),
                        _raw_text(rejected.drop("reason")),
                        rejected["reason"],
                    )
                )
            for number, part in enumerate(parts):
                result.rows_rejected += part.height
                qdir = out / "quarantine"
                qdir.mkdir(parents=True, exist_ok=True)
                part.write_parquet(qdir / f"file-{index:06d}-{batch_no:06d}-{number}.parquet")
            if valid.height == 0:
                continue
            day_of_row = valid.select(trading_day_expr(dschema.ts_column, info))[:, 0]
            first, last = day_of_row.min(), day_of_row.max()
            groups: list[tuple[date, pl.DataFrame]]
            if first == last and isinstance(first, date):  # the common case: one trading day
                groups = [(first, valid)]
            else:
                split = valid.with_columns(day_of_row.alias("__day"))
                groups = [
                    (day, rows.drop("__day"))
                    for (day,), rows in split.partition_by("__day", as_dict=True).items()
                ]
            for day, rows in groups:
                ddir = out / partition_dirname(day)
                ddir.mkdir(parents=True, exist_ok=True)
                _spool(rows, ddir / f"part-{batch_no:06d}.parquet", request.spool_in_memory)
                days.add(day.isoformat())
        result.days = sorted(days)
    except TicklakeError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # any reader crash fails this file only, with its name
        result.status = "failed"
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        result.error = f"{source.label}: could not be read: {detail}"
    finally:
        result.seconds = time.perf_counter() - started
    if result.status == "failed":
        _drop_spooled(out)
        shutil.rmtree(out, ignore_errors=True)
    return result


def _stage_dirname(first_index: int) -> str:
    # One directory per stage task, named by its first input index: sorting the names
    # gives input order, which conflict resolution relies on (earlier file wins).
    return f"stage-{first_index:06d}"


def _group_sources(
    sources: Sequence[SourceFile], together: bool
) -> list[tuple[tuple[int, SourceFile], ...]]:
    """Split the inputs into stage tasks: small files in groups, everything else alone."""
    if not together:
        return [((i, s),) for i, s in enumerate(sources)]
    groups: list[tuple[tuple[int, SourceFile], ...]] = []
    current: list[tuple[int, SourceFile]] = []
    size = 0
    for i, source in enumerate(sources):
        try:
            nbytes = source.path.stat().st_size
        except OSError:
            nbytes = 0  # the stage task reports the file
        if nbytes > SMALL_FILE_BYTES:
            if current:
                groups.append(tuple(current))
                current, size = [], 0
            groups.append(((i, source),))
            continue
        if current and (size + nbytes > GROUP_BYTES or len(current) >= GROUP_FILES):
            groups.append(tuple(current))
            current, size = [], 0
        current.append((i, source))
        size += nbytes
    if current:
        groups.append(tuple(current))
    return groups


def stage_group(
    item: tuple[IngestRequest, tuple[tuple[int, SourceFile], ...]],
) -> list[FileResult]:
    """Phase 1 task: stage one file (streamed), or a group of small files read together.

    A group gives exactly what staging its files one by one gives: the same rows per
    trading day in input order, the same rejected rows with file, row and reason, and
    a failed file named with nothing of it spooled. Only the per-file fixed costs
    (kernel calls, spool files) are paid once per group.
    """
    request, members = item
    reader = get_reader(request.format)
    if len(members) == 1 or not reader.reads_many_files:
        return [stage_file((request, index, source)) for index, source in members]
    started = time.perf_counter()
    first = members[0][0]
    out = _staging_root(request.lake_root, request.ingest_id) / _stage_dirname(first)
    results = [FileResult(label=source.label, status="staged") for _, source in members]
    lake = open_lake(request.lake_root)
    known = {} if request.force else lake.ingested_sources(request.dataset, request.layer)
    todo: list[int] = []  # positions in members still to read
    for pos, (_, source) in enumerate(members):
        try:
            results[pos].sha256 = sha256_file(source.path)
        except OSError as exc:
            results[pos].status = "failed"
            results[pos].error = f"{source.label}: could not be read: {exc}"
            continue
        if results[pos].sha256 in known:
            results[pos].status = "skipped"
        else:
            todo.append(pos)
    if not todo:
        return results
    try:
        batch = reader.read_files([members[pos][1].path for pos in todo], request.options)
    except Exception:  # a crash that names no file: stage them one by one to find it
        for pos in todo:
            index, source = members[pos]
            results[pos] = stage_file((request, index, source))
        return results
    for k, message in batch.failed.items():
        results[todo[k]].status, results[todo[k]].error = "failed", message
    try:
        _spool_group(request, lake, members, todo, batch, results, out)
    except Exception as exc:  # the spool failed (disk full...): the whole group fails
        _drop_spooled(out)
        shutil.rmtree(out, ignore_errors=True)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        for pos in todo:
            if results[pos].status == "staged":
                results[pos].status = "failed"
                results[pos].error = f"{results[pos].label}: could not be staged: {detail}"
    elapsed = time.perf_counter() - started
    for pos in todo:
        results[pos].seconds = elapsed / len(todo)
    return results


def _spool_group(
    request: IngestRequest,
    lake: Lake,
    members: tuple[tuple[int, SourceFile], ...],
    todo: list[int],
    batch: FilesBatch,
    results: list[FileResult],
    out: Path,
) -> None:
    info = lake.dataset_info(request.dataset, request.layer)
    dschema = info.dataset_schema
    valid, rejected = split_valid(batch.frame, dschema)

    def counts(frame: pl.DataFrame) -> dict[int, int]:
        return dict(frame.group_by("__file").len().iter_rows())

    parsed, unparsed, invalid = counts(batch.frame), counts(batch.rejected), counts(rejected)
    for k, pos in enumerate(todo):
        if results[pos].status != "staged":
            continue
        result = results[pos]
        result.rows_read = parsed.get(k, 0) + unparsed.get(k, 0)
        result.rows_valid = parsed.get(k, 0) - invalid.get(k, 0)
        result.rows_rejected = unparsed.get(k, 0) + invalid.get(k, 0)
        index, source = members[pos]
        parts = []
        if unparsed.get(k):
            mine = batch.rejected.filter(pl.col("__file") == k)
            parts.append(
                _quarantine_frame(
                    source.label, request.ingest_id, mine["source_row"], mine["raw"], mine["reason"]
                )
            )
        if invalid.get(k):
            mine = rejected.filter(pl.col("__file") == k).drop("__file")
            parts.append(
                _quarantine_frame(
                    source.label,
                    request.ingest_id,
                    pl.Series([None] * mine.height, dtype=pl.Int64),
                    _raw_text(mine.drop("reason")),
                    mine["reason"],
                )
            )
        for number, part in enumerate(parts):
            qdir = out / "quarantine"
            qdir.mkdir(parents=True, exist_ok=True)
            part.write_parquet(qdir / f"file-{index:06d}-000000-{number}.parquet")
    if valid.height == 0:
        return
    with_day = valid.with_columns(trading_day_expr(dschema.ts_column, info).alias("__day"))
    for k, day in with_day.select("__file", "__day").unique().sort("__file", "__day").iter_rows():
        results[todo[k]].days.append(day.isoformat())
    days = with_day["__day"]
    if days.min() == days.max():
        groups = [(days[0], valid)]
    else:
        groups = [
            (day, rows.drop("__day"))
            for (day,), rows in with_day.partition_by("__day", as_dict=True).items()
        ]
    for day, rows in groups:
        ddir = out / partition_dirname(day)
        ddir.mkdir(parents=True, exist_ok=True)
        # Rows stay in input order (files in index order): earlier files win conflicts.
        _spool(rows.drop("__file"), ddir / "part-000000.parquet", request.spool_in_memory)


@dataclass(frozen=True)
class DayTask:
    request: IngestRequest
    day: str
    parts: tuple[str, ...]  # staged part files, in input-file order
    sources: tuple[SourceRef, ...]


def _no_repeated_key(frame: pl.DataFrame, key: list[str], order: list[str] | None) -> bool:
    """Cheap proofs that no key repeats (False means: not proven, check exactly)."""
    if order is not None and set(order) == set(key) and is_sorted_by(frame, order):
        # Sorted by exactly the key columns: equal keys would sit next to each other.
        same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(c).shift(1)) for c in key])
        return not frame.select(same.slice(1).any()).item()
    # Distinct 64-bit hashes of the key prove it in one pass; equal hashes (a repeat,
    # or a collision) need the exact, multi-column check.
    return bool(frame.select(pl.struct(key).hash().n_unique()).item() == frame.height)


def _resolve_conflicts(
    frame: pl.DataFrame, key: list[str], order: list[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep identical duplicates once; for different rows sharing a key keep the first.

    ``order`` (the dataset's sort order) lets a sorted frame prove uniqueness cheaply.
    """
    # The common case is no repeated key at all.
    if frame.height < 2 or _no_repeated_key(frame, key, order):
        return frame, frame.head(0)
    if not frame.select(key).is_duplicated().any():
        return frame, frame.head(0)
    distinct = frame.unique(maintain_order=True)
    dup = distinct.select(key).is_duplicated()
    if not dup.any():
        return distinct, distinct.head(0)
    indexed = distinct.with_row_index("__i")
    first = indexed.group_by(key, maintain_order=True).agg(pl.col("__i").first())["__i"]
    keep_mask = indexed["__i"].is_in(first.implode())
    kept = indexed.filter(keep_mask).drop("__i")
    losers = indexed.filter(~keep_mask).drop("__i")
    return kept, losers


def commit_day(task: DayTask) -> DayResult:
    """Phase 2 task: merge one trading day's staged rows into its partition."""
    request = task.request
    lake = open_lake(request.lake_root)
    info = lake.dataset_info(request.dataset, request.layer)
    dschema = info.dataset_schema
    frame = pl.concat([_unspool(p) for p in task.parts], how="vertical", rechunk=False)
    order = [*dschema.sort, *[k for k in dschema.key if k not in dschema.sort]]
    kept, losers = _resolve_conflicts(frame, list(dschema.key), order)
    if losers.height:
        q = _quarantine_frame(
            f"{request.dataset} ingest {request.ingest_id}",
            request.ingest_id,
            pl.Series([None] * losers.height, dtype=pl.Int64),
            _raw_text(losers),
            pl.Series(
                [
                    f"another row has the same key {tuple(dschema.key)} with different values "
                    "(the row from the earlier input file was kept)"
                ]
                * losers.height
            ),
        )
        _commit_quarantine(lake, request, task.day, q, "conflicts")
    result = lake.write(
        request.dataset, kept, layer=request.layer, sources=task.sources, input_is_unique=True
    )
    before = sum(p.rows_before for p in result.partitions)
    after = sum(p.rows_after for p in result.partitions)
    return DayResult(
        day=task.day,
        # distinct rows = kept + losers: no second full-row unique() over the day
        rows_in=kept.height + losers.height,
        rows_before=before,
        rows_after=after,
        conflicts_quarantined=losers.height,
        changed=any(p.changed for p in result.partitions),
    )


def _commit_quarantine(
    lake: Lake, request: IngestRequest, day: str, frame: pl.DataFrame, label: str
) -> Path:
    directory = lake.root / QUARANTINE_DIR / request.dataset / f"date={day}"
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{request.ingest_id}-{label}.parquet"
    tmp = directory / f".tmp-{uuid.uuid4().hex}.tmp"
    try:
        write_parquet(frame.to_arrow(), tmp, row_group_rows=262_144, zstd_level=3)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return final


def ingest_files(
    lake: Lake,
    format: str,
    inputs: Sequence[str | Path],
    dataset: str,
    *,
    layer: str = "bronze",
    options: ReaderOptions | None = None,
    timezone: str | None = None,
    force: bool = False,
    executor: str | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> IngestSummary:
    """Ingest files (paths, directories, globs, archives) of one format into a dataset."""
    started = time.perf_counter()
    reader = get_reader(format)
    options = options or ReaderOptions()
    ingest_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    staging = _staging_root(str(lake.root), ingest_id)
    staging.mkdir(parents=True)
    (staging / "owner.pid").write_text(str(os.getpid()))
    summary = IngestSummary(dataset=dataset, layer=layer, ingest_id=ingest_id)
    try:
        sources = expand_inputs(
            list(inputs),
            suffixes=reader.suffixes,
            reads_zip=".zip" in reader.suffixes,
            staging=staging,
        )
        if sources and reader.source_order(sources[0].path) is not None:
            # Rows then arrive in the dataset's order and the commit need not sort them.
            sources = sorted(sources, key=lambda s: reader.source_order(s.path) or ())
        if not sources:
            raise IngestError(
                f"no input files for format {format!r} in {', '.join(map(str, inputs))} "
                f"(it reads {', '.join(reader.suffixes) or 'any file'})",
                format=format,
            )
        options = reader.prepare(sources[0].path, options)
        lake.create_dataset(
            dataset,
            reader.schema_for(options),
            layer=layer,
            timezone=timezone or reader.exchange_timezone,
            day_offset=reader.day_offset,
        )
        executor_name = executor or lake.settings.execution.executor
        request = IngestRequest(
            lake_root=str(lake.root),
            format=format,
            dataset=dataset,
            layer=layer,
            options=options,
            force=force,
            ingest_id=ingest_id,
            spool_in_memory=executor_name == "serial",
        )
        run = get_executor(
            executor_name,
            workers=workers or lake.settings.execution.workers,
            fresh_worker_per_task=False,
        )
        groups = _group_sources(sources, reader.reads_many_files)
        items = [(request, group) for group in groups]

        def staged(index: int, results: list[FileResult]) -> None:
            if progress:  # one call per file, as callers count them
                for (file_index, _), result in zip(groups[index], results, strict=True):
                    progress("read", file_index, len(sources), result.label)

        summary.files = [
            result
            for results in run.map(stage_group, items, on_result=staged)
            for result in results
        ]

        sources_by_day: dict[str, list[SourceRef]] = {}
        for result in summary.files:
            if result.status != "staged":
                continue
            for day in result.days:
                sources_by_day.setdefault(day, []).append(
                    SourceRef(path=result.label, sha256=result.sha256)
                )
        parts_by_day: dict[str, list[Path]] = {}
        # Stage directories are named by their first input index: sorted = input order.
        # (A group that fell back to one task per file left one directory per file.)
        for sdir in sorted(staging.glob("stage-*")):
            for day in sorted(sources_by_day):
                parts_by_day.setdefault(day, []).extend(
                    sorted((sdir / f"date={day}").glob("part-*.parquet"))
                )
        day_tasks = [
            DayTask(request, day, tuple(str(p) for p in parts), tuple(sources_by_day[day]))
            for day, parts in sorted(parts_by_day.items())
            if parts
        ]

        def committed(index: int, result: DayResult) -> None:
            if progress:
                progress("commit", index, len(day_tasks), result.day)

        summary.days = run.map(commit_day, day_tasks, on_result=committed)

        records: list[dict[str, Any]] = []
        for index, result in enumerate(summary.files):
            if result.status != "staged":
                continue
            qparts = sorted(staging.glob(f"stage-*/quarantine/file-{index:06d}-*.parquet"))
            if qparts:
                frame = pl.concat([pl.read_parquet(p) for p in qparts])
                _commit_quarantine(
                    lake,
                    request,
                    "unknown" if not result.days else result.days[0],
                    frame,
                    f"file-{index:06d}",
                )
            records.append(
                {
                    "sha256": result.sha256,
                    "path": result.label,
                    "format": format,
                    "rows_read": result.rows_read,
                    "rows_valid": result.rows_valid,
                    "rows_rejected": result.rows_rejected,
                    "days": result.days,
                    "ingest_id": ingest_id,
                    "ingested_at": utc_now_iso(),
                }
            )
        # One append and one fsync for the whole run (after every day committed).
        lake.record_sources(dataset, records, layer=layer)
    finally:
        _drop_spooled(staging)
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            (lake.root / STAGING_DIR).rmdir()
    summary.seconds = time.perf_counter() - started
    return summary


def ingest_frame(
    lake: Lake,
    frame: Any,
    dataset: str,
    *,
    schema: str,
    mapping: Any = None,
    layer: str = "bronze",
    timezone: str | None = None,
) -> IngestSummary:
    """Ingest an in-memory pandas / Polars / Arrow frame (Python API ``lake.ingest``)."""
    from ticklake.ingest.mapping import Mapping, apply_mapping, mapping_for_frame

    started = time.perf_counter()
    ingest_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    if mapping is None:
        mapping = mapping_for_frame(frame, schema)
    elif not isinstance(mapping, Mapping):
        mapping = Mapping.from_yaml(Path(mapping))
    polars_frame = frame if isinstance(frame, pl.DataFrame) else _as_polars(frame)
    batch = apply_mapping(polars_frame, mapping, source="frame", first_row=1)
    info = lake.create_dataset(dataset, schema, layer=layer, timezone=timezone)
    valid, rejected = split_valid(batch.frame, info.dataset_schema)
    summary = IngestSummary(dataset=dataset, layer=layer, ingest_id=ingest_id)
    file_result = FileResult(
        label="frame",
        status="staged",
        rows_read=polars_frame.height,
        rows_valid=valid.height,
        rows_rejected=batch.rejected.height + rejected.height,
    )
    summary.files.append(file_result)
    request = IngestRequest(str(lake.root), "frame", dataset, layer, ingest_id=ingest_id)
    quarantine = []
    if batch.rejected.height:
        quarantine.append(
            _quarantine_frame(
                "frame",
                ingest_id,
                batch.rejected["source_row"],
                batch.rejected["raw"],
                batch.rejected["reason"],
            )
        )
    if rejected.height:
        quarantine.append(
            _quarantine_frame(
                "frame",
                ingest_id,
                pl.Series([None] * rejected.height, dtype=pl.Int64),
                _raw_text(rejected.drop("reason")),
                rejected["reason"],
            )
        )
    if quarantine:
        _commit_quarantine(lake, request, "unknown", pl.concat(quarantine), "frame")
    kept, losers = _resolve_conflicts(valid, list(info.dataset_schema.key))
    if losers.height:
        _commit_quarantine(
            lake,
            request,
            "unknown",
            _quarantine_frame(
                "frame",
                ingest_id,
                pl.Series([None] * losers.height, dtype=pl.Int64),
                _raw_text(losers),
                pl.Series(["another row has the same key with different values"] * losers.height),
            ),
            "conflicts",
        )
    result = lake.write(dataset, kept, layer=layer, input_is_unique=True)
    for part in result.partitions:
        summary.days.append(
            DayResult(
                day=part.partition.rsplit("=", 1)[-1],
                rows_in=part.rows_written,
                rows_before=part.rows_before,
                rows_after=part.rows_after,
                conflicts_quarantined=0,
                changed=part.changed,
            )
        )
    if summary.days:
        summary.days[0].conflicts_quarantined = losers.height
    summary.seconds = time.perf_counter() - started
    return summary


def _as_polars(frame: Any) -> pl.DataFrame:
    import pyarrow as pa

    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if isinstance(frame, pa.Table | pa.RecordBatch):
        out = pl.from_arrow(frame)
        assert isinstance(out, pl.DataFrame)
        return out
    return pl.from_pandas(frame)
