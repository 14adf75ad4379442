"""The atomic commit protocol for one partition.

Called with the partition lock held. Steps (each named, so tests can crash or fail
the writer at every one of them):

1. ``write_temp``   write the Parquet file to ``.tmp-<uuid>.tmp`` in the partition dir
2. ``fsync_temp``   fsync it, then hash it
3. ``pending``      write the new manifest as ``_manifest.json.pending`` (temp, fsync,
                    rename, fsync dir): a write-ahead record of the file hash
4. ``replace_data`` ``os.replace`` the temp file onto ``data.parquet``
5. ``fsync_dir``    fsync the directory so the rename is durable
6. ``manifest``     ``os.replace`` the pending manifest onto ``_manifest.json``, fsync dir

A reader that opens ``data.parquet`` gets the old file or the new one, never a torn
one (rename is atomic). A crash leaves at most a temp file and a pending manifest;
:func:`recover_partition`, run under the lock before every write and by
``ticklake lake verify --repair``, rolls forward (pending hash equals the data file:
the rename happened) or back (it did not), and deletes temp files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.errors import CommitError, CorruptPartitionError
from ticklake.lake.layout import TEMP_PREFIX, TEMP_SUFFIX, PartitionRef, is_temp_file
from ticklake.lake.manifest import Manifest, sha256_file

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


def write_parquet(table: pa.Table, path: Path, *, row_group_rows: int, zstd_level: int) -> None:
    """Write ``table`` as ticklake Parquet: ZSTD, statistics, page checksums (no fsync)."""
    with path.open("wb") as fh:
        pq.write_table(
            table,
            fh,
            compression="zstd",
            compression_level=zstd_level,
            row_group_size=row_group_rows,
            write_statistics=True,
            write_page_checksum=True,
            use_dictionary=True,
        )


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on device: free space, then retry the write"
    if exc.errno == errno.EIO:
        return "I/O error from the storage device: check the disk, then retry"
    return f"{exc.strerror or exc}"


def commit_partition(
    ref: PartitionRef,
    table: pa.Table,
    manifest_for: Callable[[int, str], Manifest],
    *,
    row_group_rows: int,
    zstd_level: int,
) -> Manifest:
    """Write ``table`` as the partition's new file and manifest, atomically.

    ``manifest_for(file_bytes, sha256)`` builds the manifest once the file is hashed.
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
        write_parquet(table, tmp, row_group_rows=row_group_rows, zstd_level=zstd_level)
        step = "fsync_temp"
        _step(step)
        fsync_file(tmp)
        step = "pending"
        manifest = manifest_for(tmp.stat().st_size, sha256_file(tmp))
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
    return actions
