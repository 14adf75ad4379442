"""Phase 1, staging: plan the input files and spool their rows per trading day.

:func:`plan_sources` expands the inputs in input order, :func:`_group_sources` splits
them into stage tasks (small files in groups read together), and :func:`stage_file` /
:func:`stage_group` read, check and spool rows under ``<lake>/_staging/<ingest_id>/``
(in memory with the serial executor, up to :data:`MEMORY_SPOOL_BYTES`).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import traceback
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import polars as pl

from ticklake.errors import IngestError, TicklakeError
from ticklake.ingest.pipeline.quarantine import _quarantine_frame, _raw_text
from ticklake.ingest.pipeline.results import FileResult, IngestRequest
from ticklake.ingest.readers.base import FilesBatch, Reader, get_reader
from ticklake.ingest.sources import SourceFile, expand_inputs, user_text
from ticklake.ingest.validate import split_valid
from ticklake.lake import Lake, open_lake
from ticklake.lake.days import trading_day_expr
from ticklake.lake.layout import STAGING_DIR, partition_dirname
from ticklake.lake.manifest import sha256_file

#: Files up to this size are read in groups through ``Reader.read_files`` when the
#: reader supports it: one kernel pass per group instead of per-file fixed costs.
SMALL_FILE_BYTES = 32 * 2**20
#: Input bytes (and files) per group: bounds the rows a group holds before spooling.
GROUP_BYTES = 64 * 2**20
GROUP_FILES = 512
#: With the serial executor, stage and commit run in this process: staged parts of
#: one trading day (the earliest staged, committed first) stay in memory (a marker
#: file keeps the layout) up to this many bytes per process; the other days spill to
#: disk as soon as they are read, so memory holds one day whatever the days per file.
#: Spooling to disk and reading back costs more than parsing, hence the one day.
MEMORY_SPOOL_BYTES = 2 * 2**30
#: A multi-day batch is cut into per-day slices (no copy) while its rows come in runs
#: of one day (per-contract files are in time order); beyond this many runs per day
#: (rows out of time order) it is split by a copying ``partition_by`` instead.
MAX_RUNS_PER_DAY = 4096

_memory_spool: dict[str, pl.DataFrame] = {}
#: staging root -> the one trading day whose parts may stay in memory
_memory_day: dict[str, date] = {}
_memory_spool_lock = threading.Lock()


def _write_spill(rows: pl.DataFrame, path: Path | str) -> None:
    # Staging files are read once and deleted: favour speed over size. Uncompressed
    # Parquet (dictionary / RLE encoded) writes ~2x faster than LZ4 and reads back
    # ~2x faster, at about twice LZ4's size on disk.
    rows.write_parquet(path, compression="uncompressed", statistics=False)


def _memory_slot(path: Path, day: date, size: float) -> bool:
    """Whether ``size`` bytes of ``day``'s rows staged at ``path`` may stay in memory.

    Only the earliest day staged so far is held: when an earlier day turns up, the
    parts held for the later one are written out to their paths first.
    """
    root = str(path.parents[2])  # <staging>/stage-*/date=*/part-*
    with _memory_spool_lock:
        current = _memory_day.get(root)
        if current is not None and day > current:
            return False
        if current is not None and day < current:
            marker = f"{os.sep}{partition_dirname(current)}{os.sep}"
            for key in [k for k in _memory_spool if k.startswith(root) and marker in k]:
                _write_spill(_memory_spool.pop(key), key)
        _memory_day[root] = day
        used = sum(frame.estimated_size() for frame in _memory_spool.values())
        return used + size <= MEMORY_SPOOL_BYTES


def _spool(rows: pl.DataFrame, path: Path, in_memory: bool, day: date) -> None:
    """Stage ``day``'s ``rows`` at ``path``: in memory if allowed and room, else disk."""
    if in_memory and _memory_slot(path, day, rows.estimated_size()):
        with _memory_spool_lock:
            _memory_spool[str(path)] = rows
        path.touch()
        return
    _write_spill(rows, path)


def _unspool(path: str) -> pl.DataFrame:
    with _memory_spool_lock:
        frame = _memory_spool.pop(path, None)
    return frame if frame is not None else pl.read_parquet(path)


def _drop_spooled(staging: Path) -> None:
    prefix = str(staging) + os.sep
    with _memory_spool_lock:
        for key in [k for k in _memory_spool if k.startswith(prefix)]:
            del _memory_spool[key]
        for key in [k for k in _memory_day if k.startswith(prefix) or k == str(staging)]:
            del _memory_day[key]


def _day_runs(days: pl.Series) -> dict[date, list[tuple[int, int]]] | None:
    """Per trading day, the (offset, length) runs of consecutive rows of that day, in
    row order; None when the rows change day too often for slicing to pay."""
    runs = days.rle()
    lengths, values = runs.struct.field("len"), runs.struct.field("value")
    out: dict[date, list[tuple[int, int]]] = {}
    offset = 0
    for length, day in zip(lengths.to_list(), values.to_list(), strict=True):
        out.setdefault(day, []).append((offset, length))
        offset += length
    if len(lengths) > MAX_RUNS_PER_DAY * len(out):
        return None
    return out


def _spool_by_day(
    rows: pl.DataFrame,
    day_of_row: pl.Series,
    out: Path,
    name: str,
    in_memory: bool,
    wanted: set[str] | None = None,
) -> list[date]:
    """Spool ``rows`` as ``out/date=DAY/name``, each day's rows in input order.

    ``wanted`` (ISO days) keeps only those days. Return the days spooled. A batch of
    several days (multi-day contract files) is cut into zero-copy slices written to
    disk at once: holding one of its days in memory would need a copy, and measured
    (5-day files) the copies fragment the heap so peak RSS grew with every group.
    """
    first, last = day_of_row.min(), day_of_row.max()
    groups: list[tuple[date, pl.DataFrame, bool]]
    runs = None
    if first == last and isinstance(first, date) and day_of_row.null_count() == 0:
        groups = [(first, rows, False)]  # the common case: one trading day
    elif day_of_row.null_count() == 0 and (runs := _day_runs(day_of_row)) is not None:
        groups = [
            (
                day,
                pl.concat([rows.slice(o, n) for o, n in spans], rechunk=False),
                True,
            )
            for day, spans in sorted(runs.items())
        ]
    else:
        split = rows.with_columns(day_of_row.alias("__day"))
        groups = [
            (day, part.drop("__day"), False)
            for (day,), part in split.partition_by("__day", as_dict=True).items()
        ]
    spooled = []
    for day, part, sliced in groups:
        if wanted is not None and day.isoformat() not in wanted:
            continue  # an intact day keeps what it has (later corrections included)
        ddir = out / partition_dirname(day)
        ddir.mkdir(parents=True, exist_ok=True)
        _spool(part, ddir / name, in_memory and not sliced, day)
        spooled.append(day)
    return spooled


def _staging_root(lake_root: str, ingest_id: str) -> Path:
    return Path(lake_root) / STAGING_DIR / ingest_id


def plan_sources(
    reader: Reader, format: str, inputs: Sequence[str | Path], staging: Path
) -> list[SourceFile]:
    """Expand ``inputs`` into the source files to stage, in input order.

    Input order is the sorted file list, or the reader's :meth:`Reader.source_order`
    when it names one. Raise :class:`IngestError` when no input file is left.
    """
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
    return sources


def stage_file(item: tuple[IngestRequest, int, SourceFile]) -> FileResult:
    """Phase 1 task: read one source file and spool its rows per trading day."""
    request, index, source = item
    started = time.perf_counter()
    result = FileResult(label=source.label, status="staged")
    lake = open_lake(request.lake_root)
    out = _staging_root(request.lake_root, request.ingest_id) / _stage_dirname(index)
    try:
        result.sha256 = sha256_file(source.path)
        restore = None if request.force else _days_to_restore(lake, request, result.sha256)
        if restore is not None and not restore:
            result.status = "skipped"  # ingested before, and every day it gave is intact
            return result
        info = lake.dataset_info(request.dataset, request.layer)
        dschema = info.dataset_schema
        reader = get_reader(request.format)
        days: set[str] = set()
        for batch_no, batch in enumerate(reader.read(source.path, request.options)):
            result.rows_read += batch.frame.height + batch.rejected.height
            result.add_notes(batch.notes)
            valid, rejected = split_valid(batch.frame, dschema)
            result.rows_valid += valid.height
            parts = []
            if restore is not None:
                pass  # restoring days: its rejected rows were quarantined the first time
            elif batch.rejected.height:
                parts.append(
                    _quarantine_frame(
                        source.label,
                        request.ingest_id,
                        batch.rejected["source_row"],
                        batch.rejected["raw"],
                        batch.rejected["reason"],
                    )
                )
            if rejected.height and restore is None:
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
            spooled = _spool_by_day(
                valid,
                day_of_row,
                out,
                f"part-{batch_no:06d}.parquet",
                request.spool_in_memory,
                restore,
            )
            days.update(day.isoformat() for day in spooled)
        result.days = sorted(days)
    except TicklakeError as exc:
        result.status, result.error = "failed", user_text(str(exc), source)
    except Exception as exc:  # any reader crash fails this file only, with its name
        result.status = "failed"
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        result.error = user_text(f"{source.label}: could not be read: {detail}", source)
    finally:
        result.seconds = time.perf_counter() - started
    if result.status == "failed":
        _drop_spooled(out)
        shutil.rmtree(out, ignore_errors=True)
    return result


def _days_to_restore(lake: Lake, request: IngestRequest, sha: str) -> set[str] | None:
    """None for a source never ingested; else the days it gave whose partition is gone
    or not as recorded (empty: nothing to do, the source is skipped)."""
    known = lake.ingested_sources(request.dataset, request.layer).get(sha)
    if known is None:
        return None
    return set(lake.days_to_restore(request.dataset, known.get("days") or [], request.layer))


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
    todo: list[int] = []  # positions in members still to read
    restore: dict[int, set[str]] = {}  # index in todo -> days to restore (ingested before)
    for pos, (_, source) in enumerate(members):
        try:
            results[pos].sha256 = sha256_file(source.path)
        except OSError as exc:
            results[pos].status = "failed"
            results[pos].error = f"{source.label}: could not be read: {exc}"
            continue
        days = None if request.force else _days_to_restore(lake, request, results[pos].sha256)
        if days is not None and not days:
            results[pos].status = "skipped"
        else:
            if days is not None:
                restore[len(todo)] = days
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
        results[todo[k]].status = "failed"
        results[todo[k]].error = user_text(message, members[todo[k]][1])
    for k, notes in batch.notes.items():
        results[todo[k]].add_notes(notes)
    try:
        _spool_group(request, lake, members, todo, batch, results, out, restore)
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
    restore: dict[int, set[str]] | None = None,
) -> None:
    restore = restore or {}
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
        if k in restore:
            pass  # restoring days: its rejected rows were quarantined the first time
        elif unparsed.get(k):
            mine = batch.rejected.filter(pl.col("__file") == k)
            parts.append(
                _quarantine_frame(
                    source.label, request.ingest_id, mine["source_row"], mine["raw"], mine["reason"]
                )
            )
        if invalid.get(k) and k not in restore:
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
    for k, keep in restore.items():  # a restored source gives only its missing days
        wanted = [date.fromisoformat(d) for d in keep]
        with_day = with_day.filter((pl.col("__file") != k) | pl.col("__day").is_in(wanted))
    if restore:
        valid = with_day.drop("__day")
        if valid.height == 0:
            return
    for k, day in with_day.select("__file", "__day").unique().sort("__file", "__day").iter_rows():
        results[todo[k]].days.append(day.isoformat())
    # Rows stay in input order (files in index order): earlier files win conflicts.
    _spool_by_day(
        valid.drop("__file"),
        with_day["__day"],
        out,
        "part-000000.parquet",
        request.spool_in_memory,
    )
