"""``verify`` and ``vacuum``: find and fix what crashes and bit rot leave behind.

Both take each partition's lock while they look at it, so a commit in flight is
never mistaken for damage, and a temp file being written is never deleted.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from ticklake._version import __version__
from ticklake.errors import CorruptPartitionError
from ticklake.lake import commit
from ticklake.lake.lake import Lake
from ticklake.lake.layout import (
    DATA_FILE,
    DATASET_FILE,
    LAYERS,
    MANIFEST_FILE,
    PENDING_MANIFEST,
    SOURCES_FILE,
    PartitionRef,
    is_temp_file,
    parse_partition_dirname,
)
from ticklake.lake.locking import file_lock
from ticklake.lake.manifest import DatasetInfo, Lineage, Manifest, sha256_file

#: Kinds of problems, in the order they are reported.
KINDS = (
    "hash_mismatch",
    "unreadable_file",
    "rows_mismatch",
    "schema_mismatch",
    "missing_data",
    "missing_manifest",
    "pending_commit",
    "orphan_temp",
    "stray_file",
    "empty_partition",
    "missing_descriptor",
)


@dataclass(frozen=True)
class Problem:
    kind: str
    path: str
    detail: str


@dataclass
class VerifyReport:
    partitions_checked: int = 0
    bytes_hashed: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, path: Path, detail: str) -> None:
        self.problems.append(Problem(kind, str(path), detail))


def _dataset_dirs(lake: Lake) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for layer in LAYERS:
        base = lake.root / layer
        if base.is_dir():
            out.extend((layer, entry) for entry in sorted(base.iterdir()) if entry.is_dir())
    return out


def _rebuild_manifest(ref: PartitionRef, info: DatasetInfo) -> Manifest:
    meta = pq.read_metadata(ref.data_path)
    ts_col = info.dataset_schema.ts_column
    ts = pq.read_table(ref.data_path, columns=[ts_col]).column(ts_col)
    import pyarrow.compute as pc

    lo, hi = pc.min_max(ts.cast("int64")).values()
    return Manifest(
        layer=ref.layer,
        dataset=ref.dataset,
        date=ref.day,
        rows=meta.num_rows,
        min_ts_ns=lo.as_py(),
        max_ts_ns=hi.as_py(),
        schema_fingerprint=info.dataset_schema.fingerprint(),
        file_bytes=ref.data_path.stat().st_size,
        file_sha256=sha256_file(ref.data_path),
        lineage=Lineage(ticklake_version=__version__),
    )


def _check_partition(
    lake: Lake, ref: PartitionRef, info: DatasetInfo, report: VerifyReport, repair: bool
) -> None:
    directory = ref.directory
    names = {entry.name for entry in directory.iterdir()}
    for name in sorted(names):
        if is_temp_file(name):
            report.add("orphan_temp", directory / name, "temp file of an interrupted commit")
        elif name not in (DATA_FILE, MANIFEST_FILE, PENDING_MANIFEST):
            report.add("stray_file", directory / name, "not written by ticklake; move it out")
    if PENDING_MANIFEST in names:
        report.add("pending_commit", ref.pending_manifest_path, "interrupted commit")
    if repair and (PENDING_MANIFEST in names or any(is_temp_file(n) for n in names)):
        report.repaired.extend(commit.recover_partition(ref))
        names = {entry.name for entry in directory.iterdir()}
    if DATA_FILE not in names:
        if MANIFEST_FILE in names:
            report.add("missing_data", ref.manifest_path, "manifest without its data file")
        elif not {n for n in names if not is_temp_file(n) and n != PENDING_MANIFEST}:
            report.add("empty_partition", directory, "partition directory holds no data")
            # A commit into a new partition that crashed before its rename leaves this.
            if repair and not any(directory.iterdir()):
                directory.rmdir()
                report.repaired.append(f"{ref.relative}: removed empty partition directory")
        return
    report.partitions_checked += 1
    if MANIFEST_FILE not in names:
        report.add("missing_manifest", ref.data_path, "data file without a manifest")
        if repair:
            commit.write_text_atomic(ref.manifest_path, _rebuild_manifest(ref, info).to_json())
            report.repaired.append(f"{ref.relative}: rebuilt the manifest from the data file")
        return
    try:
        manifest = Manifest.read(ref.manifest_path)
    except CorruptPartitionError:
        # A flipped bit or a torn outside edit: report it like a damaged data file
        # instead of aborting the whole verify run.
        report.add(
            "unreadable_file",
            ref.manifest_path,
            "manifest is not a valid ticklake manifest (bit rot or an outside edit); "
            "`ticklake lake verify --repair` rebuilds it from the data file",
        )
        if repair:
            commit.write_text_atomic(ref.manifest_path, _rebuild_manifest(ref, info).to_json())
            report.repaired.append(f"{ref.relative}: rebuilt the unreadable manifest")
        return
    sha = sha256_file(ref.data_path)
    report.bytes_hashed += ref.data_path.stat().st_size
    if sha != manifest.file_sha256:
        report.add(
            "hash_mismatch",
            ref.data_path,
            f"sha256 {sha[:12]}… differs from the manifest's {manifest.file_sha256[:12]}…: the "
            "file changed after commit (bit rot or an outside edit); restore it from the "
            "source by re-ingesting that day",
        )
        return
    try:
        meta = pq.read_metadata(ref.data_path)
    except (OSError, ValueError) as exc:
        report.add("unreadable_file", ref.data_path, f"Parquet footer unreadable: {exc}")
        return
    if meta.num_rows != manifest.rows:
        report.add(
            "rows_mismatch", ref.data_path, f"{meta.num_rows} rows, manifest says {manifest.rows}"
        )
    if manifest.schema_fingerprint != info.dataset_schema.fingerprint():
        report.add(
            "schema_mismatch",
            ref.manifest_path,
            f"schema {manifest.schema_fingerprint} differs from the dataset's "
            f"{info.dataset_schema.fingerprint()}",
        )


def verify_lake(lake: Lake, *, repair: bool = False) -> VerifyReport:
    """Check every partition's file hash, manifest, temp and stray files."""
    report = VerifyReport()
    timeout = lake.settings.lake.lock_timeout_seconds
    for layer, dataset_dir in _dataset_dirs(lake):
        descriptor = dataset_dir / DATASET_FILE
        if not descriptor.is_file():
            report.add("missing_descriptor", dataset_dir, f"no {DATASET_FILE}: not a dataset")
            continue
        try:
            info = DatasetInfo.read(descriptor)
        except CorruptPartitionError:
            report.add(
                "unreadable_file",
                descriptor,
                "dataset descriptor is unreadable (bit rot or an outside edit); restore it "
                "from a backup or re-create the dataset with the same schema",
            )
            continue
        for entry in sorted(dataset_dir.iterdir()):
            if entry.name in (DATASET_FILE, SOURCES_FILE):
                continue
            day = parse_partition_dirname(entry.name)
            if day is None or not entry.is_dir():
                report.add("stray_file", entry, "not a partition directory")
                continue
            ref = PartitionRef(lake.root, layer, dataset_dir.name, day)
            with file_lock(ref.lock_path, timeout, ref.relative):
                _check_partition(lake, ref, info, report, repair)
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), p.path))
    return report


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def vacuum_lake(lake: Lake) -> list[str]:
    """Remove orphan temp files, pending records and empty partition directories."""
    actions: list[str] = []
    timeout = lake.settings.lake.lock_timeout_seconds
    for layer, dataset_dir in _dataset_dirs(lake):
        for entry in sorted(dataset_dir.iterdir()):
            day = parse_partition_dirname(entry.name)
            if day is None or not entry.is_dir():
                continue
            ref = PartitionRef(lake.root, layer, dataset_dir.name, day)
            with file_lock(ref.lock_path, timeout, ref.relative):
                actions.extend(commit.recover_partition(ref))
                if not any(entry.iterdir()):
                    entry.rmdir()
                    actions.append(f"{ref.relative}: removed empty partition directory")
    snapshots = lake.root / "cache" / "sql"
    if snapshots.is_dir():
        for entry in sorted(snapshots.iterdir()):
            pid_text = entry.name.split("-", 1)[0]
            if pid_text.isdigit() and not _alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)
                actions.append(f"removed SQL snapshot {entry.name} of a reader that is gone")
    stale = lake.root / "warehouse.duckdb.tmp"
    if stale.exists():
        stale.unlink()
        actions.append("removed stale warehouse.duckdb.tmp")
    return actions
