"""File ingest: :func:`ingest_files` runs the stage and commit phases over an executor,
then commits each file's quarantine and appends the sources ledger (``_sources.jsonl``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.execution import get_executor
from ticklake.ingest.pipeline.commit import DayTask, commit_day
from ticklake.ingest.pipeline.quarantine import _commit_quarantine
from ticklake.ingest.pipeline.results import (
    DayResult,
    FileResult,
    IngestRequest,
    IngestSummary,
    ProgressFn,
)
from ticklake.ingest.pipeline.staging import (
    STAGING_DIR,
    _drop_spooled,
    _group_sources,
    _staging_root,
    plan_sources,
    stage_group,
)
from ticklake.ingest.readers.base import ReaderOptions, get_reader
from ticklake.lake import Lake
from ticklake.lake.manifest import SourceRef, utc_now_iso
from ticklake.lake.owners import write_owner


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
    write_owner(staging)  # lets verify/vacuum tell an abandoned staging from a live one
    summary = IngestSummary(dataset=dataset, layer=layer, ingest_id=ingest_id)
    try:
        sources = plan_sources(reader, format, inputs, staging)
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
                    **({"notes": result.notes} if result.notes else {}),  # lineage
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
