"""The reader interface and registry.

A reader turns one source file into batches of canonical rows. It does the format's
I/O and its quirks (time zones, price scaling, sentinels) and nothing else: the ingest
pipeline validates, quarantines, partitions by trading date and commits.

Contract (checked for every registered reader by the conformance suite):

- ``read(path, options)`` yields :class:`Batch` objects with at most
  ``options.batch_rows`` rows each, so memory stays bounded for any file size.
- ``batch.frame`` already conforms to ``get_schema(reader.schema_for(options))``
  (use :meth:`DatasetSchema.conform`), with ``ts`` in UTC.
- A row that cannot be parsed is never dropped: it goes to ``batch.rejected`` with its
  1-based ``source_row``, the raw text and a reason that names the field.
- A file that cannot be read at all raises :class:`~ticklake.errors.IngestError`
  naming the file (and row/column where it applies) and what to do.

The row containers (:class:`Batch`, :class:`FilesBatch`) and the source-file helpers
(:func:`open_source`, :func:`iter_text_chunks`, ...) live in the lower modules
:mod:`ticklake.ingest.batch` and :mod:`ticklake.ingest.source_io`, which mappings use
too; they are re-exported here so a reader needs one import.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ticklake.errors import IngestError
from ticklake.ingest.batch import REJECTED_SCHEMA as REJECTED_SCHEMA
from ticklake.ingest.batch import Batch as Batch
from ticklake.ingest.batch import FilesBatch as FilesBatch
from ticklake.ingest.batch import empty_rejected as empty_rejected
from ticklake.ingest.source_io import check_text_source as check_text_source
from ticklake.ingest.source_io import iter_text_chunks as iter_text_chunks
from ticklake.ingest.source_io import open_source as open_source
from ticklake.ingest.source_io import read_source_bytes as read_source_bytes


@dataclass(frozen=True)
class ReaderOptions:
    """Options every reader understands; format-specific ones go in ``extra``.

    ``timezone`` overrides the reader's default source time zone for naive times;
    ``instrument`` supplies the symbol for files that do not carry one.
    """

    batch_rows: int = 1_000_000
    timezone: str | None = None
    instrument: str | None = None
    keep_all_columns: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Reader:
    """Base class: subclass, set the class attributes, implement :meth:`read`."""

    #: registry name, e.g. ``"binance_trades"``
    name: ClassVar[str]
    #: canonical schema produced (``schema_for`` may refine it from options)
    schema: ClassVar[str]
    #: one paragraph: what it reads, time-zone rule, scaling rule, quirks handled
    description: ClassVar[str]
    #: file name suffixes it accepts (after stripping .gz / .zst)
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: exchange time zone of a new dataset (its partitions are trading days there)
    exchange_timezone: ClassVar[str] = "UTC"
    #: shift added to local time before taking the trading date (e.g. "7h" for CME)
    day_offset: ClassVar[str | None] = None

    def schema_for(self, options: ReaderOptions) -> str:
        return self.schema

    def prepare(self, first_path: Path, options: ReaderOptions) -> ReaderOptions:
        """Fill options the file itself determines (e.g. book depth) before a run.

        The pipeline calls this once with the first input file, before it creates the
        dataset, so ``schema_for`` sees the detected values.
        """
        return options

    def read(self, path: Path, options: ReaderOptions) -> Iterator[Batch]:
        raise NotImplementedError

    #: Whether :meth:`read_files` is implemented. Formats that come as many small files
    #: (one per contract) do, so the pipeline pays the per-call costs once per group.
    reads_many_files: ClassVar[bool] = False

    def read_files(self, paths: Sequence[Path], options: ReaderOptions) -> FilesBatch:
        """Read several small files at once; must give the rows :meth:`read` gives."""
        raise NotImplementedError

    def source_order(self, path: Path) -> tuple[Any, ...] | None:
        """A sort key that puts input files in the dataset's sort order, or None.

        Formats split into one file per instrument (per option contract) can name the
        order of their files so that the rows of a day arrive already sorted and the
        commit skips its sort. The pipeline sorts stably, so files with equal keys keep
        their input order (which decides conflicts: the earlier file wins).
        """
        return None


_READERS: dict[str, type[Reader]] = {}


def register_reader(cls: type[Reader]) -> type[Reader]:
    """Class decorator: add a reader to the registry under ``cls.name``."""
    name = cls.name
    if name in _READERS and _READERS[name] is not cls:
        raise ValueError(f"reader {name!r} is registered twice ({_READERS[name]} and {cls})")
    for attr in ("schema", "description"):
        if not getattr(cls, attr, None):
            raise ValueError(f"reader {name!r} must set {attr!r}")
    _READERS[name] = cls
    return cls


# No loading step is needed here: importing this module first imports its package,
# whose ``__init__`` imports every built-in reader module, so the registry is complete
# by the time anything can call these.


def reader_names() -> list[str]:
    return sorted(_READERS)


def get_reader(name: str) -> Reader:
    try:
        return _READERS[name]()
    except KeyError:
        raise IngestError(
            f"unknown format {name!r}; known formats: {', '.join(sorted(_READERS))}. "
            "Run `ticklake ingest formats` to see what each reads.",
            format=name,
        ) from None
