"""Read-path integrity: a partition's bytes are checked against its commit before use.

Polars (2.1) and DuckDB (2.0) do not verify Parquet page checksums (measured: with one
flipped bit in a data page both returned altered values 28 times out of 30; pyarrow
with ``page_checksum_verification=True`` raised 29 times, the 30th flip changed no
value). So ticklake hashes a partition's data file the first time a process reads it
and compares the sha256 with the commit's: the manifest, else the pending manifest of
a commit in flight, else the dataset's partition record. It also checks that the
manifest names this partition (layer, dataset, date), so a renamed directory or
another day's files copied in are refused too.

The first check of a file is fast when its commit records an xxh3-128 digest (every
commit since 2026-12-08): the file's xxh3-128 (≈ 6 GB/s here, 4× sha256 with its read)
must equal a commit's, with its size. Anything else (no such digest, no match, a
commit racing the check) takes the sha256 path below, which decides. xxh3 is not
cryptographic: it detects bit rot and accidental edits, not a forger, and the sha256
stays in the manifest for ``ticklake lake verify``.

A verified file is remembered per process by (path, device, inode, size, mtime): a
commit replaces the inode and an outside edit changes the mtime, so either is hashed
again. Damage that changes neither (the device flipping a bit under a file already
read by this process) is found by the next process, and by ``ticklake lake verify``.

A mismatch seen without the partition lock may be a commit racing the check; it is
re-checked under the lock (commits hold it from first to last step) before
:class:`CorruptPartitionError` is raised. The cost: sha256 runs at ≈ 1.2 GB/s per
core here, files are hashed on up to ``os.cpu_count()`` threads (hashlib releases
the GIL), see docs/storage.md for the measured figure.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ticklake.errors import CorruptPartitionError
from ticklake.lake.layout import PartitionRef
from ticklake.lake.locking import file_lock
from ticklake.lake.manifest import Manifest
from ticklake.lake.records import matches, try_read_record

_CHUNK = 1 << 20
_FAST_CHUNK = 1 << 22
_verified: set[tuple[str, int, int, int, int]] = set()
_verified_lock = threading.Lock()

REPAIR_HINT = (
    "run `ticklake lake verify --repair`: it moves the damaged file aside and prints the "
    "command that rebuilds the day"
)


def _key(path: Path, st: os.stat_result) -> tuple[str, int, int, int, int]:
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def forget_verified() -> None:
    """Drop this process's memory of verified files (tests; after a repair)."""
    with _verified_lock:
        _verified.clear()


def hash_file(path: Path) -> tuple[str, os.stat_result]:
    """The sha256 of the file ``path`` names now, and that file's stat (one open)."""
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), st


def fast_hash_file(path: Path) -> tuple[str, os.stat_result]:
    """The xxh3-128 of the file ``path`` names now, and that file's stat (one open)."""
    import xxhash

    digest = xxhash.xxh3_128()
    with path.open("rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        while chunk := fh.read(_FAST_CHUNK):
            digest.update(chunk)
    return str(digest.hexdigest()), st


def _fast_commit(ref: PartitionRef, target: Path) -> tuple[Manifest, os.stat_result] | None:
    """The commit whose xxh3-128 and size the file has, else None (the sha256 path decides)."""
    candidates = [c for c in _commits(ref) if c.file_xxh3_128]
    if not candidates:
        return None
    digest, st = fast_hash_file(target)
    for candidate in candidates:
        if candidate.file_xxh3_128 == digest and candidate.file_bytes == st.st_size:
            return candidate, st
    return None


def _read_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest.read(path) if path.is_file() else None
    except CorruptPartitionError:
        return None


def committed_for(ref: PartitionRef, sha: str) -> Manifest | None:
    """The commit (manifest, pending manifest or record) whose file sha256 is ``sha``."""
    for candidate in _commits(ref):
        if candidate.file_sha256 == sha:
            return candidate
    return None


def _commits(ref: PartitionRef) -> Iterator[Manifest]:
    """The readable commits of a partition, read one at a time: its manifest, the pending
    manifest of a commit in flight, its partition record."""
    for path in (ref.manifest_path, ref.pending_manifest_path):
        manifest = _read_manifest(path)
        if manifest is not None:
            yield manifest
    record = try_read_record(ref)
    if record is not None:
        yield record


def _misplaced(ref: PartitionRef, manifest: Manifest) -> CorruptPartitionError:
    return CorruptPartitionError(
        f"{ref.relative}: holds the partition of {manifest.layer}/{manifest.dataset}/"
        f"date={manifest.date} (its manifest), not this one: the directory was renamed or "
        f"another day's files were copied in; ticklake refuses to read it. {REPAIR_HINT}.",
        partition=ref.relative,
        path=str(ref.data_path),
    )


def _altered(ref: PartitionRef, sha: str) -> CorruptPartitionError:
    return CorruptPartitionError(
        f"{ref.relative}/data.parquet: its sha256 ({sha[:12]}…) is not the one committed "
        "(bit rot or an outside edit); ticklake refuses to return altered values. "
        f"{REPAIR_HINT}.",
        partition=ref.relative,
        path=str(ref.data_path),
    )


def check_partition(
    ref: PartitionRef,
    *,
    lock_timeout: float,
    pinned: Path | None = None,
    locked: bool = False,
) -> None:
    """Raise :class:`CorruptPartitionError` unless the partition's data file is as committed.

    ``pinned`` is a hard link of the data file (an SQL snapshot) to check instead of
    the live path; it is re-linked if a commit replaced the file since it was pinned.
    ``locked`` says the caller holds the partition lock already.
    """
    target = pinned or ref.data_path
    try:
        if _key(ref.data_path, os.stat(target)) in _verified:
            return
    except FileNotFoundError:
        return  # the partition went away since it was listed: nothing is read from it
    fast = _fast_commit(ref, target)
    if fast is not None:
        committed, fast_st = fast
        if not matches(committed, ref):
            raise _misplaced(ref, committed)
        with _verified_lock:
            _verified.add(_key(ref.data_path, fast_st))
        return
    sha, st = hash_file(target)
    manifest = committed_for(ref, sha)
    if manifest is None and not locked:
        with file_lock(ref.lock_path, lock_timeout, ref.relative):
            # Under the lock no commit is half done: the live file and its commit agree.
            if pinned is not None:
                live = os.stat(ref.data_path)
                if live.st_ino != st.st_ino:
                    pinned.unlink()
                    os.link(ref.data_path, pinned)
            sha, st = hash_file(target)
            manifest = committed_for(ref, sha)
    if manifest is None:
        raise _altered(ref, sha)
    if not matches(manifest, ref):
        raise _misplaced(ref, manifest)
    with _verified_lock:
        _verified.add(_key(ref.data_path, st))


def check_partitions(
    refs: Sequence[tuple[PartitionRef, Path | None]], *, lock_timeout: float
) -> None:
    """:func:`check_partition` for many partitions, hashed on several threads."""
    todo = []
    for ref, pinned in refs:
        try:
            if _key(ref.data_path, os.stat(pinned or ref.data_path)) in _verified:
                continue
        except FileNotFoundError:
            continue
        todo.append((ref, pinned))
    if not todo:
        return
    if len(todo) == 1:
        check_partition(todo[0][0], pinned=todo[0][1], lock_timeout=lock_timeout)
        return
    workers = min(len(todo), os.cpu_count() or 1, 8)
    with ThreadPoolExecutor(workers, thread_name_prefix="ticklake-verify") as pool:
        futures = [
            pool.submit(check_partition, ref, pinned=pinned, lock_timeout=lock_timeout)
            for ref, pinned in todo
        ]
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error


def committed_manifest(ref: PartitionRef) -> Manifest | None:
    """The partition's manifest, or None when it is missing or unreadable."""
    return _read_manifest(ref.manifest_path)


def looks_committed(ref: PartitionRef) -> bool:
    """Cheap check (no hashing): data file present, manifest names it, record agrees."""
    if not ref.data_path.is_file():
        return False
    manifest = _read_manifest(ref.manifest_path)
    if manifest is None or not matches(manifest, ref):
        return False
    if not ref.record_path.is_file():
        return True  # a lake written before partition records: nothing to compare
    record = try_read_record(ref)
    return record is not None and record.file_sha256 == manifest.file_sha256


def check_listed(root: Path, parts: Iterable[Any], *, lock_timeout: float) -> None:
    """Check partitions listed by ``Lake.partitions`` (``.layer``, ``.dataset``, ``.date``)
    before reading their ``.path`` directly: the same check ``Lake.partition_files`` does."""
    refs = [(PartitionRef(root, p.layer, p.dataset, p.date), None) for p in parts]
    check_partitions(refs, lock_timeout=lock_timeout)
