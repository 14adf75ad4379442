"""The atomic commit protocol for one partition.

Called with the partition lock held. Steps (each named, so tests can crash or fail
the writer at every one of them):

1. ``write_temp``   write the Parquet file to ``.tmp-<uuid>.tmp`` in the partition dir,
                    hashing the bytes as they are written (a second thread hashes
                    while the writer encodes the next row group: no re-read)
2. ``fsync_temp``   fsync it
3. ``pending``      write the new manifest as ``_manifest.json.pending`` (temp, fsync,
                    rename, fsync dir): a write-ahead record of the file hash
4. ``replace_data`` ``os.replace`` the temp file onto ``data.parquet``
5. ``fsync_dir``    fsync the directory so the rename is durable
6. ``manifest``     ``os.replace`` the pending manifest onto ``_manifest.json``, fsync dir
7. ``record``       write the same manifest as the dataset's partition record
                    (``_partitions/date=….json``, atomic: see :mod:`ticklake.lake.records`)

A reader that opens ``data.parquet`` gets the old file or the new one, never a torn
one (rename is atomic). A crash leaves at most a temp file and a pending manifest;
:func:`recover_partition`, run under the lock before every write and by
``ticklake lake verify --repair``, rolls forward (pending hash equals the data file:
the rename happened) or back (it did not), deletes temp files, and rolls a partition
record that lags its manifest forward once the data file's sha256 proves the manifest.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ticklake.errors import CommitError, CorruptPartitionError
from ticklake.lake.layout import TEMP_PREFIX, TEMP_SUFFIX, PartitionRef, is_temp_file
from ticklake.lake.manifest import Manifest, sha256_file
from ticklake.lake.records import matches, record_temps, try_read_record, write_record

#: Test seam: called with each step name before the step runs. Tests set it to raise
#: an OSError (injected I/O failure) or to ``os._exit`` (crash) at a chosen step.
FAULT_HOOK: Callable[[str], None] | None = None

STEPS: tuple[str, ...] = (
    "write_temp",
    "fsync_temp",
    "pending",
    "replace_data",
    "fsync_dir",
    "manifest",
    "record",
)


def _step(name: str) -> None:
    if FAULT_HOOK is not None:
        FAULT_HOOK(name)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(directory: Path) -> Path:
    return directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}{TEMP_SUFFIX}"


def write_text_atomic(path: Path, text: str) -> None:
    """Write a small text file atomically (temp in the same dir, fsync, rename, fsync dir)."""
    tmp = _temp_path(path.parent)
    try:
        with tmp.open("w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Rows sampled to decide which columns get dictionary encoding.
DICTIONARY_SAMPLE_ROWS = 65_536
#: A column is dictionary-encoded when its sample has at most this share of distinct values.
DICTIONARY_MAX_DISTINCT = 0.25


def _writer_options(zstd_level: int, use_dictionary: bool | list[str] = True) -> dict[str, Any]:
    return {
        "compression": "zstd",
        "compression_level": zstd_level,
        "write_statistics": True,
        "write_page_checksum": True,
        "use_dictionary": use_dictionary,
    }


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Columns worth a dictionary: few distinct values in a leading sample.

    For a near-unique column (trade ids, nanosecond times, raw prices) the writer builds
    a dictionary until it overflows and then falls back to plain encoding: pure cost
    (it more than doubled the write time of a trades day) and no smaller file.
    """
    sample = table.slice(0, DICTIONARY_SAMPLE_ROWS)
    if sample.num_rows == 0:
        return list(table.column_names)
    limit = DICTIONARY_MAX_DISTINCT * sample.num_rows
    return [
        name
        for name in sample.column_names
        if pc.count_distinct(sample.column(name), mode="all").as_py() <= limit
    ]


def write_parquet(
    table: pa.Table | pl.DataFrame,
    path: Path,
    *,
    row_group_rows: int,
    zstd_level: int,
    schema: pa.Schema | None = None,
    fast_digest: list[str] | None = None,
) -> str:
    """Write ticklake Parquet (ZSTD, statistics, page checksums; no fsync); return its sha256.

    ``fast_digest``, a list, receives the file's xxh3-128 (the read check's digest).

    Columns with few distinct values are dictionary-encoded (decided on a sample).

    The bytes are hashed as they are written, so the file is not read back. A Polars
    frame is converted (and cast to ``schema``) one row group at a time.
    """
    if schema is None:
        schema = table.schema if isinstance(table, pa.Table) else table.head(0).to_arrow().schema
    pieces = _arrow_slices(table, schema, row_group_rows)
    first = next(pieces, None)
    dictionary = _dictionary_columns(first) if first is not None else True
    with path.open("wb") as raw:
        sink = _HashingFile(raw)
        try:
            options = _writer_options(zstd_level, dictionary)
            with pq.ParquetWriter(sink, schema, **options) as writer:
                for piece in itertools.chain([first] if first is not None else [], pieces):
                    writer.write_table(piece, row_group_size=row_group_rows)
        finally:
            digest = sink.hexdigest()
            if fast_digest is not None:
                fast_digest.append(sink.fast_hexdigest())
    return digest


class _HashingFile:
    """A write-only file that feeds every byte written to sha256 and xxh3-128 on a helper
    thread.

    hashlib releases the GIL on large updates, so hashing overlaps the Parquet
    encoder (which also runs without the GIL) instead of re-reading the file after.
    """

    def __init__(self, fh: Any) -> None:
        import xxhash

        self._fh = fh
        self._digest = hashlib.sha256()
        self._fast = xxhash.xxh3_128()
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._hash, name="ticklake-sha256", daemon=True)
        self._thread.start()
        self._pos = 0
        self.closed = False
        self._done = False

    def _hash(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)
            self._fast.update(chunk)

    def write(self, data: Any) -> int:
        chunk = bytes(data)  # the caller may reuse its buffer once write returns
        self._fh.write(chunk)
        self._queue.put(chunk)
        self._pos += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        self._fh.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def _finish(self) -> None:
        if not self._done:
            self._queue.put(None)
            self._thread.join()
            self._done = True

    def hexdigest(self) -> str:
        self._finish()
        return self._digest.hexdigest()

    def fast_hexdigest(self) -> str:
        self._finish()
        return str(self._fast.hexdigest())


def _arrow_slices(
    data: pa.Table | pl.DataFrame, schema: pa.Schema | None, rows: int
) -> Iterator[pa.Table]:
    """Yield ``data`` as Arrow tables of ``rows`` rows, converted one slice at a time.

    Converting a Polars frame slice by slice keeps only one row group's Arrow copy
    alive, instead of a second copy of the whole partition.
    """
    total = data.num_rows if isinstance(data, pa.Table) else data.height
    for start in range(0, total, rows):
        piece = data.slice(start, rows)
        table = piece if isinstance(piece, pa.Table) else piece.to_arrow()
        yield table.cast(schema) if schema is not None and table.schema != schema else table


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device: free space, then retry the write"
    if exc.errno == errno.EIO:
        return "I/O error from the storage device: check the disk, then retry"
    return f"{exc.strerror or exc}"


def commit_partition(
    ref: PartitionRef,
    table: pa.Table | pl.DataFrame,
    manifest_for: Callable[[int, str], Manifest],
    *,
    row_group_rows: int,
    zstd_level: int,
    schema: pa.Schema | None = None,
) -> Manifest:
    """Write ``table`` as the partition's new file and manifest, atomically.

    ``table`` is an Arrow table or a Polars frame (converted one row group at a time
    and cast to ``schema``). ``manifest_for(file_bytes, sha256)`` builds the manifest
    once the file is written; the hash is taken from the bytes as they are written.
    On an I/O error nothing partial stays visible and :class:`CommitError` names the
    partition and the failed step.
    """
    directory = ref.directory
    directory.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(directory)
    step = "write_temp"
    replaced = False
    try:
        _step(step)
        fast: list[str] = []
        sha: str | None = write_parquet(
            table,
            tmp,
            row_group_rows=row_group_rows,
            zstd_level=zstd_level,
            schema=schema,
            fast_digest=fast,
        )
        step = "fsync_temp"
        _step(step)
        fsync_file(tmp)
        step = "pending"
        # A writer that does not report its hash (a test double) gets the file hashed.
        manifest = manifest_for(tmp.stat().st_size, sha or sha256_file(tmp))
        if sha and fast:
            manifest = manifest.model_copy(update={"file_xxh3_128": fast[0]})
        _step(step)
        write_text_atomic(ref.pending_manifest_path, manifest.to_json())
        step = "replace_data"
        _step(step)
        os.replace(tmp, ref.data_path)
        replaced = True
        step = "fsync_dir"
        _step(step)
        fsync_dir(directory)
        step = "manifest"
        _step(step)
        os.replace(ref.pending_manifest_path, ref.manifest_path)
        fsync_dir(directory)
        step = "record"
        _step(step)
        write_record(ref, manifest)
        return manifest
    except OSError as exc:
        if not replaced:
            # Roll back: the old data file and manifest are untouched.
            for leftover in (tmp, ref.pending_manifest_path):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            raise CommitError(
                f"writing partition {ref.relative} failed at step {step!r}: {_describe(exc)}. "
                "Nothing was changed; the previous data is intact.",
                partition=ref.relative,
                step=step,
                errno=exc.errno,
            ) from exc
        # The new file is in place; its manifest is pending and will be rolled forward.
        raise CommitError(
            f"partition {ref.relative}: the new data file is in place but step {step!r} "
            f"failed ({_describe(exc)}); the manifest is rolled forward on the next write "
            "or by `ticklake lake verify --repair`.",
            partition=ref.relative,
            step=step,
            errno=exc.errno,
        ) from exc


def recover_partition(ref: PartitionRef) -> list[str]:
    """Finish or undo an interrupted commit; call with the partition lock held.

    Returns what was done, one line each (empty when the partition was clean).
    """
    actions: list[str] = []
    for temp in record_temps(ref):
        temp.unlink()
        actions.append(f"{ref.relative}: removed orphan temp file of its record {temp.name}")
    directory = ref.directory
    if not directory.is_dir():
        return actions
    for entry in directory.iterdir():
        if is_temp_file(entry.name):
            entry.unlink()
            actions.append(f"{ref.relative}: removed orphan temp file {entry.name}")
    pending = ref.pending_manifest_path
    if pending.exists():
        try:
            manifest = Manifest.read(pending)
            data_sha = sha256_file(ref.data_path) if ref.data_path.exists() else None
        except (CorruptPartitionError, OSError):  # an unreadable pending record rolls back
            manifest, data_sha = None, None
        if manifest is not None and data_sha == manifest.file_sha256:
            os.replace(pending, ref.manifest_path)
            actions.append(f"{ref.relative}: rolled forward an interrupted commit")
        else:
            pending.unlink()
            actions.append(f"{ref.relative}: rolled back an interrupted commit")
        fsync_dir(directory)
    actions.extend(roll_record_forward(ref))
    return actions


def roll_record_forward(ref: PartitionRef) -> list[str]:
    """Record the partition's manifest when the record lags it and the data proves it.

    The record is the commit's last step, so a crash after the data rename leaves it
    behind (or absent, for a new day). Only a manifest that names this partition and
    whose sha256 equals the data file's is recorded: a damaged or misplaced partition
    is left for ``verify`` to report. Call with the partition lock held.
    """
    if not (ref.data_path.is_file() and ref.manifest_path.is_file()):
        return []
    try:
        manifest = Manifest.read(ref.manifest_path)
    except CorruptPartitionError:
        return []
    if try_read_record(ref) == manifest or not matches(manifest, ref):
        return []
    if sha256_file(ref.data_path) != manifest.file_sha256:
        return []
    write_record(ref, manifest)
    return [f"{ref.relative}: recorded the committed partition in its dataset's record"]
