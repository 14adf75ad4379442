"""Opening and reading source files: transparent ``.gz`` / ``.zst`` decompression,
whole-file reads, chunks of whole lines, and the check that a text source is text.

:func:`check_text_head` looks at the first bytes a text reader sees and refuses, with
what the file is and what to do, input that is not UTF-8 text: a compressed file whose
name lacks ``.gz`` / ``.zst``, a zip or Parquet file, UTF-16 text, binary data.

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


#: Bytes of a text source looked at by :func:`check_text_head`.
TEXT_HEAD_BYTES = 64 * 1024
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed; its name should end in .gz (rename it to {name}.gz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; its name should end in .zst (rename it to {name}.zst)"),
    (b"BZh", "bzip2-compressed; decompress it (bunzip2) or recompress it as .gz"),
    (b"\xfd7zXZ\x00", "xz-compressed; decompress it (unxz) or recompress it as .gz"),
    (b"PK\x03\x04", "a zip archive; give the .zip itself (named .zip) or unzip it first"),
    (b"PK\x05\x06", "an empty zip archive; there is nothing in it to ingest"),
    (b"PAR1", "a Parquet file, not text; ingest it with a Parquet format (parquet, nse_options)"),
    (b"ARROW1", "an Arrow IPC file, not text; ingest it with format arrow"),
)


def check_text_head(path: Path, head: bytes, *, label: str | None = None) -> None:
    """Raise :class:`IngestError` if ``head`` (a text source's first bytes) is not UTF-8 text.

    A UTF-8 byte-order mark is fine. The message says what the file is and what to do.
    A character cut at the end of ``head`` is not an error.
    """
    name = label or str(path)
    fix = None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            fix = what.format(name=Path(name).name)
            break
    if fix is None and (head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head)):
        fix = (
            "UTF-16 text; convert it to UTF-8, e.g. `iconv -f UTF-16 -t UTF-8 "
            f"{Path(name).name} > {Path(name).stem}-utf8{Path(name).suffix}`"
        )
    if fix is None and b"\x00" in head:
        fix = (
            "binary data, not delimited text (it holds NUL bytes); check that it is the right file"
        )
    if fix is None:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data":  # not a character cut off by head
                line = head.count(b"\n", 0, exc.start) + 1
                fix = (
                    f"not UTF-8 text (byte 0x{head[exc.start]:02x} on line {line}); convert it "
                    "to UTF-8 (e.g. `iconv -f latin1 -t UTF-8`) or, if the file is damaged, "
                    "re-download it"
                )
    if fix is not None:
        raise IngestError(f"{name}: the file is {fix}.", path=name)


def _looks_utf16(head: bytes) -> bool:
    """ASCII text as UTF-16 without a BOM: every other byte is NUL."""
    sample = head[:512]
    if len(sample) < 8:
        return False
    even, odd = sample[0::2], sample[1::2]
    return even.count(0) > 0.4 * len(even) or odd.count(0) > 0.4 * len(odd)


def check_text_source(path: Path) -> None:
    """:func:`check_text_head` on the first bytes of ``path`` (decompressed)."""
    with open_source(path) as fh:
        try:
            head = fh.read(TEXT_HEAD_BYTES)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise IngestError(
                f"{path}: file is corrupt or truncated ({exc}); re-download or remove it.",
                path=str(path),
            ) from exc
    check_text_head(path, head)


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
                if line_no == 1 and not pieces:
                    check_text_head(path, block[:TEXT_HEAD_BYTES])
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
