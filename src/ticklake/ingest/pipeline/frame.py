"""Frame ingest: :func:`ingest_frame` maps, checks and commits an in-memory frame
(the Python API ``lake.ingest``) in one step, without staging.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import polars as pl

from ticklake.ingest.mapping import Mapping, apply_mapping, mapping_for_frame, to_polars
from ticklake.ingest.pipeline.commit import _resolve_conflicts
from ticklake.ingest.pipeline.quarantine import _commit_quarantine, _quarantine_frame, _raw_text
from ticklake.ingest.pipeline.results import DayResult, FileResult, IngestRequest, IngestSummary
from ticklake.ingest.validate import split_valid
from ticklake.lake import Lake


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

    started = time.perf_counter()
    ingest_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    if mapping is None:
        mapping = mapping_for_frame(frame, schema)
    elif not isinstance(mapping, Mapping):
        mapping = Mapping.from_yaml(Path(mapping))
    polars_frame = to_polars(frame)
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
