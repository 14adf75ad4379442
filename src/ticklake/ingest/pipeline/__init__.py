"""The ingest pipeline: sources → canonical rows → checks → quarantine → day commits.

Two phases, each a set of pure tasks run through an executor:

1. **stage** (one task per source file, in parallel): hash the file (a file already
   ingested is skipped), read it in bounded batches, run the row checks, and spool the
   valid rows per trading day, and the rejected rows, as Parquet parts under
   ``<lake>/_staging/<ingest_id>/``. A file that fails (corrupt, truncated, wrong
   columns) is reported with its error and its parts are discarded: nothing of it is
   committed, and it is not recorded, so fixing it and re-running ingests it.
   A batch spanning several days (per-contract files covering a week) is cut into
   per-day slices written to disk at once, so memory holds one batch, not the days;
   with the serial executor only a single-day batch's rows stay in memory, for one
   day (the earliest).
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

from ticklake.ingest.pipeline.commit import DayTask, commit_day
from ticklake.ingest.pipeline.files import ingest_files
from ticklake.ingest.pipeline.frame import ingest_frame
from ticklake.ingest.pipeline.quarantine import QUARANTINE_COLUMNS
from ticklake.ingest.pipeline.results import (
    DayResult,
    FileResult,
    IngestRequest,
    IngestSummary,
    ProgressFn,
)
from ticklake.ingest.pipeline.staging import STAGING_DIR, plan_sources, stage_file, stage_group

__all__ = [
    "QUARANTINE_COLUMNS",
    "STAGING_DIR",
    "DayResult",
    "DayTask",
    "FileResult",
    "IngestRequest",
    "IngestSummary",
    "ProgressFn",
    "commit_day",
    "ingest_files",
    "ingest_frame",
    "plan_sources",
    "stage_file",
    "stage_group",
]
