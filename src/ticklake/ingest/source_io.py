"""Opening and reading source files: transparent ``.gz`` / ``.zst`` decompression,
whole-file reads and chunks of whole lines.

Shared by the readers and by mapping inference (which samples a file's head).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

import numpy as np

from ticklake.errors import IngestError


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
