"""What an ingest run is asked to do and what it did: the request, per-file and per-day
results, and the :class:`IngestSummary` the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ticklake.ingest.readers.base import ReaderOptions

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
    #: lineage notes from the reader with their row counts (see ``Batch.notes``)
    notes: dict[str, int] = field(default_factory=dict)

    def add_notes(self, notes: dict[str, int]) -> None:
        for text, count in notes.items():
            self.notes[text] = self.notes.get(text, 0) + count


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

    @property
    def nothing_committed(self) -> bool:
        """True when files were read but no row reached the lake (all rejected, empty or
        header-only files, 0-row Parquet, empty zip members). Files already ingested
        (skipped) do not count: a re-run that has nothing new to do is not this."""
        return self.rows_committed == 0 and any(f.status == "staged" for f in self.files)

    @property
    def notes(self) -> dict[str, int]:
        """The files' lineage notes, summed."""
        total: dict[str, int] = {}
        for result in self.files:
            for text, count in result.notes.items():
                total[text] = total.get(text, 0) + count
        return total

    def line(self) -> str:
        return (
            f"ingest → {self.layer}.{self.dataset}: {len(self.files)} file(s) "
            f"({len(self.skipped)} already ingested, {len(self.failed)} failed), "
            f"{self.rows_read:,} rows read, {self.rows_committed:,} committed "
            f"({self.rows_added:,} new), {self.rows_quarantined:,} quarantined, "
            f"{len(self.days)} day(s) touched, {self.seconds:.1f} s"
        )
