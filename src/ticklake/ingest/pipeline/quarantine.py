"""Quarantine: rejected and conflicting rows as one frame shape, and their commit.

Every quarantined row carries its source, source row (when known), raw text, reason
and ingest id; :func:`_commit_quarantine` writes such a frame atomically under
``<lake>/_quarantine/<dataset>/date=<day>/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path

import polars as pl

from ticklake.ingest.pipeline.results import IngestRequest
from ticklake.lake import Lake
from ticklake.lake.commit import write_parquet
from ticklake.lake.layout import QUARANTINE_DIR

QUARANTINE_COLUMNS = {
    "source": pl.String(),
    "source_row": pl.Int64(),
    "raw": pl.String(),
    "reason": pl.String(),
    "ingest_id": pl.String(),
}


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
