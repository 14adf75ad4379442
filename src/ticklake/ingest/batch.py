"""What a reader yields: canonical rows plus the rows that failed to parse.

:class:`Batch` (one source) and :class:`FilesBatch` (several small sources read
together) live here, below both the readers and the mappings, so that either can
build them without importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

#: Columns of a rejected-rows frame.
REJECTED_SCHEMA = pl.Schema({"source_row": pl.Int64(), "raw": pl.String(), "reason": pl.String()})


def empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTED_SCHEMA)


@dataclass
class Batch:
    """Canonical rows read from one source, plus the rows that failed to parse."""

    frame: pl.DataFrame
    rejected: pl.DataFrame = field(default_factory=empty_rejected)
    #: lineage notes: what the reader decided for some rows, with their counts (e.g.
    #: "time from `timestamp` ...": 12); the pipeline sums them per file.
    notes: dict[str, int] = field(default_factory=dict)


@dataclass
class FilesBatch:
    """Canonical rows of several small source files read together (``Reader.read_files``).

    ``frame`` and ``rejected`` carry a ``__file`` column (UInt32, the index of the row's
    file in the paths given); ``failed`` maps the index of each file that could not be
    read to an error message naming it. No row of a failed file is in ``frame`` or
    ``rejected``.
    """

    frame: pl.DataFrame
    rejected: pl.DataFrame
    failed: dict[int, str] = field(default_factory=dict)
    #: lineage notes per file index (see :attr:`Batch.notes`)
    notes: dict[int, dict[str, int]] = field(default_factory=dict)
