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
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, cast

import numpy as np
import polars as pl

from ticklake.errors import IngestError

#: Columns of a rejected-rows frame.
REJECTED_SCHEMA = pl.Schema({"source_row": pl.Int64(), "raw": pl.String(), "reason": pl.String()})


def empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTED_SCHEMA)


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


@dataclass
class Batch:
    """Canonical rows read from one source, plus the rows that failed to parse."""

    frame: pl.DataFrame
    rejected: pl.DataFrame = field(default_factory=empty_rejected)


@dataclass
class FilesBatch:
    """Canonical rows of several small source files read together (:meth:`Reader.read_files`).

    ``frame`` and ``rejected`` carry a ``__file`` column (UInt32, the index of the row's
    file in the paths given); ``failed`` maps the index of each file that could not be
    read to an error message naming it. No row of a failed file is in ``frame`` or
    ``rejected``.
    """

    frame: pl.DataFrame
    rejected: pl.DataFrame
    failed: dict[int, str] = field(default_factory=dict)


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


def reader_names() -> list[str]:
    _load_builtin_readers()
    return sorted(_READERS)


def get_reader(name: str) -> Reader:
    _load_builtin_readers()
    try:
        return _READERS[name]()
    except KeyError:
        raise IngestError(
            f"unknown format {name!r}; known formats: {', '.join(sorted(_READERS))}. "
            "Run `ticklake ingest formats` to see what each reads.",
            format=name,
        ) from None


def _load_builtin_readers() -> None:
    # Importing the package registers every built-in reader module.
    import ticklake.ingest.readers  # noqa: F401


def open_source(path: Path) -> IO[bytes]:
    """Open ``path`` for binary reading, decompressing ``.gz`` and ``.zst`` transparently."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            return cast(IO[bytes], gzip.open(path, "rb"))
        if path.suffix == ".zst":
            import zstandard

            fh = path.open("rb")
            return zstandard.ZstdDecompressor().stream_reader(fh, closefd=True)
        return path.open("rb")
    except OSError as exc:
        raise IngestError(f"{path}: cannot open ({exc.strerror or exc})", path=str(path)) from exc


def read_source_bytes(path: Path) -> bytes:
    """Read a whole (possibly compressed) source; for small per-file formats only."""
    with open_source(path) as fh:
        try:
            return fh.read()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise IngestError(
                f"{path}: file is corrupt or truncated ({exc}); re-download or remove it.",
                path=str(path),
            ) from exc


def iter_text_chunks(path: Path, lines_per_chunk: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, bytes)`` chunks of whole lines (1-based numbers).

    Every chunk but the last holds exactly ``lines_per_chunk`` lines (split on
    ``\\n``, as iterating a binary file does). The file is read in large blocks and
    the newlines counted in C, not line by line.
    """
    block_bytes = 8 * 2**20
    with open_source(path) as fh:
        line_no = 1
        pieces: list[bytes] = []  # blocks read but not yet yielded
        counts: list[int] = []  # newlines in each piece
        eof = False
        while True:
            while not eof and sum(counts) < lines_per_chunk:
                try:
                    block = fh.read(block_bytes)
                except (OSError, EOFError, gzip.BadGzipFile) as exc:
                    raise IngestError(
                        f"{path}: file is corrupt or truncated after line {line_no} ({exc}).",
                        path=str(path),
                        row=line_no,
                    ) from exc
                if not block:
                    eof = True
                    break
                pieces.append(block)
                counts.append(block.count(b"\n"))
            if not pieces:
                return
            if sum(counts) >= lines_per_chunk:
                # The chunk ends in the piece holding the lines_per_chunk-th newline.
                need, j = lines_per_chunk, 0
                while counts[j] < need:
                    need -= counts[j]
                    j += 1
                newlines = np.flatnonzero(np.frombuffer(pieces[j], dtype=np.uint8) == 10)
                cut = int(newlines[need - 1]) + 1
                chunk = b"".join([*pieces[:j], pieces[j][:cut]])
                rest = pieces[j][cut:]
                pieces = ([rest] if rest else []) + pieces[j + 1 :]
                counts = ([counts[j] - need] if rest else []) + counts[j + 1 :]
                lines = lines_per_chunk
            else:  # end of file: the rest, with or without a final newline
                chunk = b"".join(pieces)
                lines = sum(counts) + (0 if chunk.endswith(b"\n") else 1)
                pieces, counts = [], []
            if chunk:
                yield line_no, chunk
            line_no += lines
