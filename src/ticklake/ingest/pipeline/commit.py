"""Phase 2, commit: merge each trading day's staged rows into its partition.

Identical duplicates collapse to one row; rows that share a key but differ go to the
quarantine, the one from the earlier input file kept (:func:`_resolve_conflicts`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import polars as pl

from ticklake.ingest.pipeline.quarantine import _commit_quarantine, _quarantine_frame, _raw_text
from ticklake.ingest.pipeline.results import DayResult, IngestRequest
from ticklake.ingest.pipeline.staging import _unspool
from ticklake.lake import open_lake
from ticklake.lake.manifest import SourceRef
from ticklake.lake.merge import is_sorted_by


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
    for part in task.parts:  # committed: free the day's staging (disk) as we go
        with contextlib.suppress(OSError):
            os.remove(part)
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
